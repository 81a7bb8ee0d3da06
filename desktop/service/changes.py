"""Noticing what other processes (the CLI) changed, and saying that this console is alive.

The CLI nudges a running console (desktop/poke.py); a fallback poll of the store's change
marker catches a CLI on another machine sharing a server database.  On a change: the known
workers are re-read (revoked or disabled ones are disconnected), CLI cancel requests are carried
out, JobChanged(0) ("reload") is published and the scheduler is woken."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from desktop import poke
from desktop.core.beat import last_beat_within, next_beat, wait_until
from desktop.core.events import EventBus, JobChanged
from desktop.service.lifecycle import Stack
from desktop.store import queries, scheduling
from desktop.store.executor import DbExecutor

log = logging.getLogger(__name__)

# the fallback poll (read at each turn, so a test can change it)
POLL_SECONDS = 30.0
# how early a timer may end (asyncio runs one up to its clock resolution early: 15.6 ms on
# Windows) and still count as due, or the mark would wait a whole beat more
EARLY = 0.02


class ChangePoll:
    def __init__(
        self,
        db: DbExecutor,
        events: EventBus,
        stack: Stack,
        clock: Callable[[], datetime],
        refresh_workers: Callable[[], Awaitable[None]],
    ) -> None:
        self.db = db
        self.events = events
        self.stack = stack
        self.clock = clock
        self.refresh_workers = refresh_workers
        # cancel requests are carried out by the console that leads (desktop/service/cluster.py)
        self.leading: Callable[[], bool] = lambda: True
        # more "this console is alive" to write with each alive mark: called on the loop, it
        # returns a function for the database thread (SQLite: the cluster service's status
        # line).  In the same database call as the mark, so an idle console wakes its database
        # thread once per ALIVE_EVERY, not once per such mark (benchmarks: idle wake-ups).
        self.also_alive: Callable[[], Callable[[], None]] | None = None
        self._poked = asyncio.Event()  # set by a nudge from the CLI
        self.poke: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        poke_key = poke.new_key()  # new at each start: a key from an old run proves nothing
        self.poke, poke_port = await poke.listen(self._poked.set, poke_key)
        await self.db.call(scheduling.mark_alive, self.clock(), poke_port, poke_key)
        # the baseline is read now, so a change made right after start() is not absorbed into it
        marker = await self.db.call(queries.change_marker)
        self._task = asyncio.create_task(self._loop(marker), name="core-poll")

    def nudge(self) -> None:
        """Read the change marker now (the leader does on every cluster tick: a standby's edits
        and requests reach it through the database)."""
        self._poked.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.poke is not None:
            self.poke.close()

    async def _loop(self, marker: int) -> None:
        loop = asyncio.get_running_loop()
        every = scheduling.ALIVE_EVERY.total_seconds()
        # both on the shared beat (core/beat.py): the scheduler's capped sleep ends on the same
        # instants, and the fallback poll on every other mark, so an idle console wakes once
        # per ALIVE_EVERY for all three
        mark_at = next_beat(loop.time(), every)
        poll_at = last_beat_within(loop.time(), POLL_SECONDS, every)
        while True:
            poked = await wait_until(self._poked, min(mark_at, poll_at))
            self._poked.clear()
            try:
                t = loop.time()
                mark = t >= mark_at - EARLY
                poll = poked or t >= poll_at - EARLY
                if not (mark or poll):
                    continue
                if mark:
                    mark_at = next_beat(max(t, mark_at), every)
                if poll:
                    poll_at = last_beat_within(t, POLL_SECONDS, every)
                extra = self.also_alive() if mark and self.also_alive is not None else None
                # the mark, the extra line and the marker read: one trip to the database thread
                current = await self.db.call(_beat, self.clock() if mark else None, extra, poll)
                if current is None or current == marker:
                    continue
                marker = current
                await self._apply()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("noticing changes from other processes failed; trying again")

    async def _apply(self) -> None:
        scheduler = self.stack.scheduler
        assert scheduler is not None  # the poll runs only between start and stop
        await self.refresh_workers()
        requests = await self.db.call(scheduling.take_cancel_requests) if self.leading() else []
        for run_id in requests:
            try:
                await scheduler.cancel(run_id, "cancelled from the CLI")
            except Exception as exc:
                log.info("CLI cancel of run %s: %s", run_id, exc)
        self.events.publish(JobChanged(0))
        scheduler.wake()
        if self.stack.sender is not None:
            self.stack.sender.wake()  # another process may have ended runs (CLI cancel)


def _beat(alive_at: datetime | None, extra: Callable[[], None] | None, poll: bool) -> int | None:
    """On the database thread: the alive mark (if ALIVE_AT), EXTRA, and the change marker (if
    POLL, else None)."""
    if alive_at is not None:
        scheduling.mark_alive(alive_at)
    if extra is not None:
        extra()
    return queries.change_marker() if poll else None
