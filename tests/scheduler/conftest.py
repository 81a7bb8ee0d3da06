"""The scheduler on a real store (SQLite file) with a clock the test sets, and a hub stand-in that
records what would be sent (the real hub is exercised in tests/e2e)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest_asyncio

from desktop.core.events import EventBus
from desktop.core.timeutil import utcnow
from desktop.hub.masks import RunMasks
from desktop.hub.server import LiveWorker
from desktop.scheduler.service import Scheduler
from desktop.store import queries
from desktop.store.executor import DbExecutor


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@dataclass
class RecordingHub:
    workers: dict[str, LiveWorker] = field(default_factory=dict)
    run_reports: dict[int, datetime] = field(default_factory=dict)
    sent: list[tuple[str, dict]] = field(default_factory=list)
    masks: RunMasks = field(default_factory=RunMasks)

    async def send(self, name: str, message: dict) -> bool:
        if name not in self.workers:
            return False
        self.sent.append((name, message))
        return True

    @property
    def workers_version(self) -> int:
        # the real hub counts its changes; tests edit the dict directly, so derive it
        return hash(tuple((n, w.tags, w.scripts, w.slots) for n, w in sorted(self.workers.items())))

    def join(self, name, *, scripts=("a.py",), slots=1, tags=(), at=None) -> None:
        now = at or utcnow()
        self.workers[name] = LiveWorker(
            name,
            "host",
            "Linux",
            "1",
            slots,
            frozenset(tags),
            frozenset(scripts),
            "127.0.0.1",
            now,
            now,
        )

    def dispatched(self) -> list[tuple[str, int]]:
        return [(n, m["run_id"]) for n, m in self.sent if m["type"] == "dispatch"]


@dataclass
class Env:
    db: DbExecutor
    hub: RecordingHub
    clock: Clock
    scheduler: Scheduler
    events: list

    async def job(self, **spec) -> int:
        base = {"name": "job", "script": "a.py", "schedule": {"kind": "manual"}}
        record = await self.db.call(queries.create_job, {**base, **spec})
        return record.id

    async def runs(self, job_id: int):
        return sorted(await self.db.call(queries.list_runs, job_id, 1000), key=lambda r: r.id)

    async def settle(self) -> None:
        """Let the scheduler's follow-up tasks finish, and run the pass that a run's end wakes
        (it plans the retries; the scheduler's loop does not run in these tests)."""
        import asyncio

        while self.scheduler._side_tasks:
            await asyncio.gather(*list(self.scheduler._side_tasks))
        if self.scheduler._ended:
            await self.scheduler.step()


@pytest_asyncio.fixture
async def env(tmp_path):
    db = DbExecutor(f"sqlite:///{tmp_path / 'sched.db'}")
    await db.start()
    clock = Clock(utcnow().replace(microsecond=0))
    hub = RecordingHub()
    bus = EventBus()
    seen: list = []
    bus.subscribe(seen.append)
    # long enough that policy tests moving the clock by minutes lose nothing; lost tests set it
    # no fire lead: these tests read next fire times off step(); the lead has its own tests
    scheduler = Scheduler(
        db, hub, bus, clock, lost_grace=timedelta(hours=1), fire_lead=timedelta(0)
    )
    try:
        yield Env(db, hub, clock, scheduler, seen)
    finally:
        await scheduler.stop()
        await db.close()
