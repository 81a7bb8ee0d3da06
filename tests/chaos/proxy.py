"""A TCP proxy between worker and hub that cuts the network: every open connection is aborted
(no close handshake, as a dropped link looks) and new ones are refused for a while, at moments
drawn from a seeded RNG, so a failing run can be replayed with the same seed.

It runs its own asyncio loop in a thread, so the test around it stays plain and synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading


class ChaosProxy:
    def __init__(self, target_port: int, seed: int) -> None:
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.port = 0
        self.cuts = 0
        self.connections = 0
        self._up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.Task] = set()
        self._connected: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="chaos-proxy")

    # --- the test's side ------------------------------------------------------------------------

    def start(self) -> ChaosProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def cut_for(self, down: float) -> None:
        """Cut now; restore after ``down`` seconds (returns at once)."""
        asyncio.run_coroutine_threadsafe(self._cut(down), self._loop).result(10)

    def random_cuts(self, count: int, gap: tuple[float, float], down: tuple[float, float]):
        """``count`` cuts, each after a random gap and down for a random time (blocks)."""
        return asyncio.run_coroutine_threadsafe(
            self._random_cuts(count, gap, down), self._loop
        ).result(count * (gap[1] + down[1] + 30))

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # --- the proxy's loop -----------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            self._abort_all()
            for task in self._clients:
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._connected.set()
        self._writers |= {writer, up_writer}
        self._clients.add(asyncio.current_task())
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._clients.discard(asyncio.current_task())
            self._writers -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _cut(self, down: float) -> None:
        self.cuts += 1
        self._up = False
        self._connected.clear()
        self._abort_all()
        self._loop.call_later(down, self._restore)

    def _restore(self) -> None:
        self._up = True

    async def _random_cuts(self, count, gap, down) -> None:
        for _ in range(count):
            # each cut hits a live link: wait for the worker to be back first
            await asyncio.wait_for(self._connected.wait(), 30)
            await asyncio.sleep(self.rng.uniform(*gap))  # the chaos schedule itself
            down_for = self.rng.uniform(*down)
            await self._cut(down_for)
            await asyncio.sleep(down_for)
