"""Many protocol-level workers in one process that reconnect the way the real worker does, for
the reconnect-storm benchmark (bench_storm.py).

    python tests/benchmarks/sim_reconnect.py URL TOKENS_JSON FIRST_INDEX [--one-address]

TOKENS_JSON holds ``[[name, token], ...]``.  Each simulated worker runs the real worker's
connection loop (worker/client.py ``Worker.serve_forever`` with one server_url) without its
spool and runners: connect with ``open_timeout=WELCOME_TIMEOUT``, hello, wait up to
WELCOME_TIMEOUT for the welcome, heartbeat at the interval the welcome names; when the connection
ends, ``Backoff.next_delay()`` (reset first if it held GOOD_CONNECTION_SECONDS); a refusal
(``reject``) waits REJECT_RETRY; a network error, timeout or WebSocket error waits
``Backoff.next_delay()``.  Constants and the Backoff class are imported from the worker, so a
change there changes this simulation too.  Like the real worker it never gives up; a worker
"gave up" in the benchmark's sense when it is not welcomed by the benchmark's deadline.

Every worker connects from its own loopback address (127.1.x.y; all of 127/8 is local on
Linux), as a real fleet does from its own hosts: the hub's per-address limits on connections
that are not logged in yet (MAX_HANDSHAKING, MAX_UNAUTHENTICATED) are meant for one host, not
for 10,000 workers behind one address.  ``--one-address`` connects them all from 127.0.0.1.

Commands on stdin, one per line, each answered by one JSON line on stdout:
``status SINCE`` (SINCE: a time.time() value) -> how many are online now, how many of those were
welcomed at or after SINCE and the latest such welcome, connection attempts, errors by kind,
refusals by code; ``quit`` (or EOF) -> stop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from worker.backoff import Backoff
from worker.client import (
    BUSY_BEFORE_NEXT,
    GOOD_CONNECTION_SECONDS,
    RECEIVE_LIMIT,
    REJECT_RETRY,
    WELCOME_TIMEOUT,
    Rejected,
)
from worker.deflate import client_deflate
from worker.protocol import decode, encode


def address(index: int) -> str:
    """A loopback address of its own for worker ``index`` (up to 254 * 254 of them)."""
    return f"127.1.{index // 254 + 1}.{index % 254 + 1}"


class Stats:
    def __init__(self) -> None:
        self.online: dict[str, float] = {}  # name -> time.time() of its current welcome
        self.attempts = 0
        self.errors: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.backoff_waits: Counter[str] = Counter()  # the delays slept, rounded down, in s

    def status(self, since: float) -> dict[str, Any]:
        fresh = [t for t in self.online.values() if t >= since]
        return {
            "online": len(self.online),
            "welcomed_since": len(fresh),
            "last_welcome": max(fresh, default=None),
            "attempts": self.attempts,
            "errors": dict(self.errors),
            "rejects": dict(self.rejects),
            "waits": dict(self.backoff_waits),
        }


class SimWorker:
    """One worker's connection loop (worker/client.py serve_forever, one server_url)."""

    def __init__(self, url: str, name: str, token: str, local: str | None, stats: Stats):
        self.url = url
        self.name = name
        self.token = token
        self.local = local
        self.stats = stats
        self.heartbeat_interval = 10.0

    async def serve_forever(self) -> None:
        backoff = Backoff()
        busy_in_a_row = 0
        while True:
            try:
                await self._connect_and_serve(backoff)
                busy_in_a_row = 0
                delay = backoff.next_delay()  # "Connection ... closed; reconnecting"
            except Rejected as exc:
                self.stats.rejects[exc.code] += 1
                delay = REJECT_RETRY
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
                busy = backoff.busy_delay(exc)  # the console's appointment, as the worker keeps
                if busy is not None and busy_in_a_row < BUSY_BEFORE_NEXT:
                    busy_in_a_row += 1
                    self.stats.rejects["busy (503)"] += 1
                    delay = busy
                else:
                    busy_in_a_row = 0
                    self.stats.errors[type(exc).__name__] += 1
                    delay = backoff.next_delay()  # one url: every failure completes a round
            self.stats.backoff_waits[str(int(delay))] += 1
            await asyncio.sleep(delay)

    async def _connect_and_serve(self, backoff: Backoff) -> None:
        self.stats.attempts += 1
        extra: dict[str, Any] = {"local_addr": (self.local, 0)} if self.local else {}
        async with connect(
            self.url,
            max_size=RECEIVE_LIMIT,
            open_timeout=WELCOME_TIMEOUT,
            extensions=[client_deflate()],  # as the real worker
            **extra,
        ) as ws:
            await ws.send(self._hello())
            welcome = await asyncio.wait_for(self._first_reply(ws), WELCOME_TIMEOUT)
            self.heartbeat_interval = max(0.1, float(welcome["heartbeat_interval"]))
            connected_at = time.monotonic()
            self.stats.online[self.name] = time.time()
            tasks = [
                asyncio.create_task(self._receiver(ws)),
                asyncio.create_task(self._heartbeats(ws)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.stats.online.pop(self.name, None)
                if time.monotonic() - connected_at >= GOOD_CONNECTION_SECONDS:
                    backoff.reset()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _hello(self) -> str:
        return encode(
            "hello",
            name=self.name,
            token=self.token,
            host="sim",
            os="sim",
            version="0",
            scripts=[{"name": "a.py", "sha256": "0" * 64}],
            slots=1,
            tags=[],
            runs=[],
        )

    @staticmethod
    async def _first_reply(ws: ClientConnection) -> Any:
        while True:
            msg = decode(await ws.recv())
            if msg.type == "reject":
                raise Rejected(msg["code"], msg["reason"])
            if msg.type == "welcome":
                return msg

    @staticmethod
    async def _receiver(ws: ClientConnection) -> None:
        async for _frame in ws:  # nothing is dispatched to a simulated worker
            pass

    async def _heartbeats(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await ws.send(encode("heartbeat", running=[], at=time.time()))


async def main(argv: list[str]) -> int:
    url, tokens_file, first = argv[0], argv[1], int(argv[2])
    one_address = "--one-address" in argv
    pairs = json.loads(Path(tokens_file).read_text())
    stats = Stats()
    tasks = []
    for i, (name, token) in enumerate(pairs):
        local = None if one_address else address(first + i)
        tasks.append(asyncio.create_task(SimWorker(url, name, token, local, stats).serve_forever()))
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the handshakes already started make progress
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "status":
                out = stats.status(float(arg or 0))
                # a loop that ended is a bug in this simulation, not a worker giving up
                crashed = [repr(t.exception()) for t in tasks if t.done()]
                out["crashed"] = crashed[:3]
                print(json.dumps(out), flush=True)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
