"""The hub's watch for connections that fell silent (no heartbeat for SILENCE_FACTOR
intervals)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from desktop.hub.connection import Conn

SILENCE_FACTOR = 3  # heartbeats a worker may miss before it counts as offline


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
    while True:
        # sleep until the first connection could have been silent too long, not on a tick:
        # an idle console with quiet workers wakes about once per grace period
        now = loop.time()
        wait = min((grace - c.session.silent_for(now) for c in conns()), default=grace)
        await asyncio.sleep(max(0.05, wait))
        now = loop.time()
        for conn in list(conns()):
            if not paused(conn) and conn.session.is_silent(now, grace):
                await end(conn, conn.session.silent_for(now))
