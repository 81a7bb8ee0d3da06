"""Jobs and runs: every change is stored, published on the event bus and wakes the scheduler,
so the next due time is recomputed at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from desktop.core.events import EventBus, JobChanged
from desktop.scheduler.service import Scheduler
from desktop.service.lifecycle import Stack
from desktop.store import links as links_store
from desktop.store import queries, scheduling
from desktop.store.executor import DbExecutor
from desktop.store.records import JobRecord, OutputChunk


class JobService:
    def __init__(
        self,
        db: DbExecutor,
        events: EventBus,
        stack: Stack,
        actor: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.events = events
        self.stack = stack
        self.actor = actor  # the audit trail's "who"
        self.clock = clock
        # True on a standby console (docs/HA.md): requests go to the leader through the database
        self.standby: Callable[[], bool] = lambda: False

    @property
    def _scheduler(self) -> Scheduler:
        assert self.stack.scheduler is not None, "Core.start() first"
        return self.stack.scheduler

    async def get(self, job_id: int) -> JobRecord | None:
        return await self.db.call(queries.get_job, job_id)

    async def save(
        self,
        spec: dict,
        job_id: int | None = None,
        links: tuple[list[dict], list[dict]] | None = None,
    ) -> JobRecord:
        """Create or update a job; ``links`` (notification rules, chains) are saved in the same
        transaction (a refused chain or rule leaves the job unsaved too)."""
        if links is not None:
            record = await self.db.call(
                links_store.save_job_with_links,
                spec,
                job_id,
                links[0],
                links[1],
                self.clock(),
                self.actor,
            )
        elif job_id is None:
            record = await self.db.call(queries.create_job, spec, self.actor)
        else:
            record = await self.db.call(queries.update_job, job_id, spec, self.actor)
        self.events.publish(JobChanged(record.id))
        self._scheduler.wake()
        return record

    async def delete(self, job_id: int) -> None:
        await self.db.call(queries.delete_job, job_id, self.actor)
        self.events.publish(JobChanged(job_id, deleted=True))
        self._scheduler.wake()

    async def set_enabled(self, job_id: int, enabled: bool) -> None:
        await self.db.call(queries.set_job_enabled, job_id, enabled, self.actor)
        self.events.publish(JobChanged(job_id))
        self._scheduler.wake()

    async def run_now(self, job_id: int, args: list[str] | None = None) -> int:
        record = await self._scheduler.run_now(job_id, args)
        if self.standby():  # the leader reads the change counter every second
            await self.db.call(scheduling.bump)
        self.events.publish(JobChanged(job_id))
        return record.id

    async def cancel_run(self, run_id: int) -> None:
        if self.standby():  # as the CLI does: the leader carries it out (it reaches the worker)
            await self.db.call(scheduling.request_cancel, run_id)
            return
        await self._scheduler.cancel(run_id)

    async def read_output(
        self, run_id: int, after_seq: int = 0, limit: int | None = None
    ) -> list[OutputChunk]:
        return await self.db.call(queries.read_output, run_id, after_seq, limit)
