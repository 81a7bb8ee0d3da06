"""The chaos suite's TCP proxy, plus a silent cut: while frozen, nothing is forwarded either way
but no connection is closed (a network that drops packets, not one that resets them).  The
bytes held back are delivered when the freeze ends, as TCP retransmission would."""

from __future__ import annotations

import asyncio
import contextlib

from tests.chaos.proxy import ChaosProxy


class SilentProxy(ChaosProxy):
    def __init__(self, target_port: int, seed: int) -> None:
        super().__init__(target_port, seed)
        self._thawed: asyncio.Event | None = None

    def freeze_for(self, down: float) -> None:
        """Freeze now; thaw after ``down`` seconds (returns at once)."""
        asyncio.run_coroutine_threadsafe(self._freeze(down), self._loop).result(10)

    async def _freeze(self, down: float) -> None:
        self.cuts += 1
        self._thaw_event().clear()
        self._loop.call_later(down, self._thaw_event().set)

    def _thaw_event(self) -> asyncio.Event:
        if self._thawed is None:
            self._thawed = asyncio.Event()
            self._thawed.set()
        return self._thawed

    @property
    def frozen(self) -> bool:
        return self._thawed is not None and not self._thawed.is_set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._thaw_event().wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
