"""The hub's watch for connections that fell silent (no heartbeat for SILENCE_FACTOR
intervals)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from desktop.hub.connection import Conn

SILENCE_FACTOR = 3  # heartbeats a worker may miss before it counts as offline
# connections looked at per turn of the loop: 10,000 in one go held the loop for tens of
# milliseconds (hundreds on a busy machine), and every dispatch waiting behind it with it
SLICE = 500


async def watch_silence(
    conns: Callable[[], Iterable[Conn]],
    heartbeat_interval: float,
    paused: Callable[[Conn], bool],
    end: Callable[[Conn, float], Awaitable[None]],
) -> None:
    """Forever: ``end(conn, seconds silent)`` for each of ``conns()`` silent too long, unless
    ``paused(conn)`` (the hub stopped reading it: back-pressure, not the worker's silence)."""
    loop = asyncio.get_running_loop()
    grace = SILENCE_FACTOR * heartbeat_interval
    wait = min((grace - c.session.silent_for(loop.time()) for c in conns()), default=grace)
    while True:
        # sleep until the first connection could have been silent too long, not on a tick:
        # an idle console with quiet workers wakes about once per grace period
        await asyncio.sleep(max(0.05, wait))
        # one look at each connection, a slice per turn of the loop, both ending the silent
        # ones and finding when the next one could be (one scan, not two)
        wait = grace
        for i, conn in enumerate(list(conns())):
            if i % SLICE == 0:
                if i:
                    await asyncio.sleep(0)
                now = loop.time()
            silent = conn.session.silent_for(now)
            if not paused(conn) and conn.session.is_silent(now, grace):
                await end(conn, silent)
                continue
            wait = min(wait, grace - silent)
