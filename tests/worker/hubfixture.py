"""A small real hub for driving a real worker subprocess: records, acks, dispatches, restarts.

It speaks the real protocol (worker.protocol) over a real websockets server on 127.0.0.1.  It
acks like the real hub: cumulatively per run, the highest seq up to which it has everything, and
it drops duplicates by (run, seq).  Every wait is awaited on a condition, bounded by timeout().
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from tests.conftest import ROOT, timeout
from worker.protocol import Message, ProtocolError, decode, encode


class TestHub:
    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.port = 0
        self.server: Server | None = None
        self.conn: ServerConnection | None = None
        self.messages: list[Message] = []  # everything decoded, in arrival order
        self.bad_frames: list[str] = []
        self.hellos: list[Message] = []
        self.runs: dict[int, dict[int, Message]] = {}  # run -> seq -> message (deduped)
        self.duplicates = 0
        self.reject: tuple[str, str] | None = None
        self.heartbeat_interval = 0.5
        self.auto_ack = True
        self.changed = asyncio.Condition()
        self.after_welcome: list[str] = []  # frames sent right behind the welcome

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/heartbeat"

    async def start(self) -> None:
        self.server = await serve(self._handler, "127.0.0.1", self.port, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go away abruptly, like a console that crashed: connections drop, the port frees."""
        assert self.server is not None
        self.server.close(close_connections=True)
        await self.server.wait_closed()
        self.server = None
        self.conn = None

    async def _handler(self, ws: ServerConnection) -> None:
        try:
            hello = decode(await ws.recv())
        except ProtocolError:
            await ws.close()
            return
        await self._record(hello)
        if self.reject:
            await ws.send(encode("reject", code=self.reject[0], reason=self.reject[1]))
            await ws.close()
            return
        await ws.send(
            encode("welcome", worker=hello["name"], heartbeat_interval=self.heartbeat_interval)
        )
        for frame in self.after_welcome:
            await ws.send(frame)
        self.conn = ws
        async with self.changed:
            self.changed.notify_all()
        with contextlib.suppress(Exception):
            async for frame in ws:
                try:
                    msg = decode(frame)
                except ProtocolError as exc:
                    self.bad_frames.append(str(exc))
                    continue
                await self._record(msg)
                if self.auto_ack and msg.type in ("started", "output", "finished"):
                    await ws.send(encode("ack", run_id=msg["run_id"], seq=self.contiguous(msg)))

    def contiguous(self, msg: Message) -> int:
        seqs = self.runs.get(msg["run_id"], {})
        n = 0
        while n + 1 in seqs:
            n += 1
        return n

    async def _record(self, msg: Message) -> None:
        self.messages.append(msg)
        if msg.type == "hello":
            self.hellos.append(msg)
        if msg.type in ("started", "output", "finished"):
            run = self.runs.setdefault(msg["run_id"], {})
            if msg["seq"] in run:
                self.duplicates += 1
            else:
                run[msg["seq"]] = msg
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], units: float = 10) -> Any:
        async def waiter() -> Any:
            async with self.changed:
                return await self.changed.wait_for(predicate)

        return await asyncio.wait_for(waiter(), timeout(units))

    async def connected(self, units: float = 10) -> None:
        await self.wait_for(lambda: self.conn is not None, units)

    async def send(self, mtype: str, **fields: Any) -> None:
        assert self.conn is not None, "no worker connected"
        await self.conn.send(encode(mtype, **fields))

    async def send_raw(self, frame: str) -> None:
        assert self.conn is not None, "no worker connected"
        await self.conn.send(frame)

    async def dispatch(self, run_id: int, script: str, *args: str, **extra: Any) -> None:
        await self.send("dispatch", run_id=run_id, attempt=1, script=script, args=list(args),
                        **extra)  # fmt: skip

    # --- reading results ---------------------------------------------------------------------

    def of_type(self, mtype: str, run_id: int | None = None) -> list[Message]:
        return [
            m
            for m in self.messages
            if m.type == mtype and (run_id is None or m.get("run_id") == run_id)
        ]

    def finished(self, run_id: int) -> Message | None:
        return next((m for m in self.runs.get(run_id, {}).values() if m.type == "finished"), None)

    async def wait_finished(self, run_id: int, units: float = 20) -> Message:
        await self.wait_for(lambda: self.finished(run_id) is not None, units)
        result = self.finished(run_id)
        assert result is not None
        return result

    def ordered(self, run_id: int) -> list[Message]:
        run = self.runs.get(run_id, {})
        return [run[s] for s in sorted(run)]

    def text(self, run_id: int, stream: str = "stdout") -> str:
        return "".join(
            m["text"] for m in self.ordered(run_id) if m.type == "output" and m["stream"] == stream
        )


def write_config(folder: Path, url: str, **keys: Any) -> Path:
    values = {
        "server_url": url,
        "name": "test-worker",
        "token": "secret-token",
        "scripts_dir": "scripts",
        "slots": 2,
        "heartbeat_interval": 0.5,
        "spool_dir": "spool",
        "shutdown_grace_seconds": 1,
        **keys,
    }
    path = folder / "worker.ini"
    path.write_text("[worker]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


async def start_worker(
    config: Path, *extra: str, env: dict[str, str] | None = None, **popen: Any
) -> asyncio.subprocess.Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBTRIGGER_", "REFLEX_"))}
    env = {**clean, **(env or {})}
    log = open(config.parent / "worker.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "--config", str(config), *extra,
            cwd=str(ROOT), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=log, **popen,
        )  # fmt: skip
    finally:
        log.close()


async def stop_worker(proc: asyncio.subprocess.Process, units: float = 20) -> int:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        return await asyncio.wait_for(proc.wait(), timeout(units))
    except asyncio.TimeoutError:
        proc.kill()
        return await proc.wait()


@contextlib.asynccontextmanager
async def connected_worker(hub, config: Path, *extra: str):
    """A real worker process started with CONFIG and connected to HUB; stopped afterwards."""
    proc = await start_worker(config, *extra)
    try:
        await hub.connected()
        yield proc
    finally:
        await stop_worker(proc)
