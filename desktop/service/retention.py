"""Retention: the age and runs-per-job limits applied to stored runs, shortly after start (not
during it: a large prune must not delay the window) and then hourly.  Each prune works in short
batches (desktop.store), so writers are never held up for long."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from desktop.core.events import EventBus, JobChanged
from desktop.store import audit, queries
from desktop.store.executor import DbExecutor

log = logging.getLogger(__name__)

# read at each turn, so a test can change them
RETENTION_FIRST_DELAY = 30.0
RETENTION_EVERY = 3600.0


class Retention:
    def __init__(self, db: DbExecutor, events: EventBus, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.events = events
        self.clock = clock
        self._task: asyncio.Task | None = None

    async def prune(self) -> dict[str, int]:
        """Apply the retention settings (age, runs per job) to the runs already stored."""
        counts = await self.db.call(_prune, self.clock())
        if any(counts.values()):
            log.info("retention pruned %s", counts)
            self.events.publish(JobChanged(0))
        return counts

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="core-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        await asyncio.sleep(RETENTION_FIRST_DELAY)
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pruning old runs failed; trying again in an hour")
            await asyncio.sleep(RETENTION_EVERY)


def _prune(now: datetime) -> dict[str, int]:
    """On the database thread: runs, then audit rows, in one call (one wake-up of the thread
    and of the loop, not two)."""
    counts = queries.prune(now)
    counts["audit_rows"] = audit.prune(now)
    return counts
