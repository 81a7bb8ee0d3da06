"""The hub's watch for connections that fell silent (no heartbeat for SILENCE_FACTOR
intervals)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from desktop.core.beat import wait_until
from desktop.hub.connection import Conn

SILENCE_FACTOR = 3  # heartbeats a worker may miss before it counts as offline
# how much later than the first possible silence the watch wakes by its own timer, as a share
# of the heartbeat interval: the time an ordinary heartbeat has to arrive and carry the look
SLACK_FACTOR = 0.5
MIN_WAIT = 0.05  # between two looks while a silent connection is paused (back-pressure)
# connections looked at per turn of the loop: 10,000 in one go held the loop for tens of
# milliseconds (hundreds on a busy machine), and every dispatch waiting behind it with it
SLICE = 500


class SilenceWatch:
    """Forever (``run``): ``end(conn, seconds silent)`` for each of ``conns()`` silent too long,
    unless ``paused(conn)`` (the hub stopped reading it: back-pressure, not the worker's
    silence).

    It looks when the first connection could have been silent too long, not on a tick.  That
    instant is, for a worker heartbeating on time, just before its next heartbeat arrives:
    a timer of its own would be one more wake-up of an idle console per grace period.  So a
    heartbeat that arrives once the look is due (``heard``) brings the look forward into its
    own wake-up, and the watch's timer is only a backstop SLACK_FACTOR intervals later, for
    when no heartbeat comes at all: a dead worker is closed between SILENCE_FACTOR and
    SILENCE_FACTOR + SLACK_FACTOR intervals after its last message."""

    def __init__(
        self,
        conns: Callable[[], Iterable[Conn]],
        heartbeat_interval: float,
        paused: Callable[[Conn], bool],
        end: Callable[[Conn, float], Awaitable[None]],
    ) -> None:
        self.conns = conns
        self.grace = SILENCE_FACTOR * heartbeat_interval
        self.slack = SLACK_FACTOR * heartbeat_interval
        self.paused = paused
        self.end = end
        self.due = float("inf")  # loop time of the next look
        self._now = asyncio.Event()

    def heard(self, now: float) -> None:
        """A heartbeat arrived at NOW (loop time; its connection's silence already reset)."""
        if now >= self.due:
            self._now.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = min(
            (self.grace - c.session.silent_for(now) for c in self.conns()), default=self.grace
        )
        while True:
            self.due = loop.time() + max(MIN_WAIT, wait)
            self._now.clear()
            await wait_until(self._now, self.due + self.slack)
            self.due = float("inf")
            # one look at each connection, a slice per turn of the loop, both ending the silent
            # ones and finding when the next one could be (one scan, not two)
            wait = self.grace
            for i, conn in enumerate(list(self.conns())):
                if i % SLICE == 0:
                    if i:
                        await asyncio.sleep(0)
                    now = loop.time()
                silent = conn.session.silent_for(now)
                if not self.paused(conn) and conn.session.is_silent(now, self.grace):
                    await self.end(conn, silent)
                    continue
                wait = min(wait, self.grace - silent)
