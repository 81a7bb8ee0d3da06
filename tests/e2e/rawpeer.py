"""A raw WebSocket peer for attack tests: a real socket to the hub on 127.0.0.1, authenticated
with a token the console issued, sending whatever the test wants (no worker logic, no spool)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import timeout

SCRIPT = {"name": "test_job.py", "sha256": "0" * 64}


def hello_frame(name: str, token: str, **over: Any) -> str:
    data = {
        "type": "hello",
        "v": 1,
        "name": name,
        "token": token,
        "host": "raw",
        "os": "test",
        "version": "0",
        "scripts": [SCRIPT],
        "slots": 1,
    }
    data.update(over)
    return json.dumps(data)


class RawPeer:
    """Everything the hub sends is kept in ``frames``; ``closed`` holds (code, reason)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[dict] = []  # not yet taken by expect()
        self.received: list[dict] = []  # everything, in order
        self.closed: tuple[int | None, str] | None = None
        self.running: list[int] = []  # what its heartbeats say it holds
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._beats: asyncio.Task | None = None

    @classmethod
    async def connect(cls, url: str, local: str | None = None) -> RawPeer:
        """``local``: the loopback address (127.x.y.z) to connect from, as another host."""
        extra: dict[str, Any] = {"local_addr": (local, 0)} if local else {}
        return cls(await connect(url, max_size=None, **extra))

    @classmethod
    async def welcomed(
        cls, url: str, name: str, token: str, local: str | None = None, **hello: Any
    ) -> RawPeer:
        peer = await cls.connect(url, local)
        await peer.ws.send(hello_frame(name, token, **hello))
        welcome = await peer.expect("welcome")
        assert welcome["worker"] == name
        # heartbeats like a worker (twice per interval), or the hub closes it as silent
        peer._beats = asyncio.create_task(peer._heartbeats(welcome["heartbeat_interval"] / 2))
        return peer

    async def _heartbeats(self, every: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.send("heartbeat", running=self.running, at=time.time())
                await asyncio.sleep(every)  # the heartbeat period itself

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                data = json.loads(frame)
                self.frames.append(data)
                self.received.append(data)
                self._arrived.set()
        except ConnectionClosed:
            pass
        rcvd = self.ws.protocol.close_rcvd
        self.closed = (rcvd.code, rcvd.reason) if rcvd else (None, "")
        self._arrived.set()

    async def send(self, mtype: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": mtype, "v": 1, **fields}))

    async def expect(self, mtype: str, seconds: float = 10, **match: Any) -> dict:
        """The first frame of ``mtype`` whose fields match (removed from ``frames``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout(seconds)
        while True:
            for frame in self.frames:
                if frame["type"] == mtype and all(frame.get(k) == v for k, v in match.items()):
                    self.frames.remove(frame)
                    return frame
            if self.closed is not None:
                raise AssertionError(f"closed {self.closed} before {mtype} {match}: {self.frames}")
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {mtype} {match} within {seconds} units: {self.frames}")
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def until_closed(self, seconds: float = 10) -> tuple[int | None, str]:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout(seconds))
        assert self.closed is not None
        return self.closed

    def acks(self, run_id: int) -> list[int]:
        return [f["seq"] for f in self.received if f["type"] == "ack" and f["run_id"] == run_id]

    async def close(self) -> None:
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader
