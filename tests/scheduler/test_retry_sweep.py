"""A retry is never lost: a scheduler that stops (crash, stop, lost lead) between a run's end and
its next pass kept that run only in memory; the next scheduler to start on the database plans
the retry, once, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from desktop.core.events import EventBus
from desktop.core.timeutil import utcnow
from desktop.hub.commit import CommitResult
from desktop.scheduler import firing
from desktop.scheduler.service import Scheduler
from desktop.store import queries
from desktop.store.executor import DbExecutor
from tests.conftest import timeout
from tests.scheduler.conftest import Clock, RecordingHub
from tests.store.conftest import pg_schema_url  # noqa: F401 - the fixture, by name


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("pg_schema_url")
    return f"sqlite:///{tmp_path / 'sweep.db'}"


class Console:
    """One console's scheduler on its own connection: what a restart or another console gets."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.db = DbExecutor(url)
        self.hub = RecordingHub()
        self.scheduler = Scheduler(
            self.db, self.hub, EventBus(), clock, lost_grace=timedelta(hours=1)
        )

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.db.close()


@pytest.fixture
def passes(monkeypatch):
    """Set when a scheduler pass has committed (the loop's passes run on the database thread)."""
    done = threading.Event()
    real = firing.run_pass

    def run_pass(*args, **kwargs):
        result = real(*args, **kwargs)
        done.set()
        return result

    monkeypatch.setattr(firing, "run_pass", run_pass)
    return done


async def started_pass(console: Console, passes: threading.Event) -> None:
    """Start the console's scheduler as the console does and wait for its first pass."""
    passes.clear()
    await console.scheduler.start()
    assert await asyncio.to_thread(passes.wait, timeout(20)), "no scheduler pass"


async def ended_before_the_pass(console: Console, max_retries: int = 2) -> tuple[int, int]:
    """A run that failed with retries left, reported to the scheduler, whose pass never came."""
    job = await console.db.call(
        queries.create_job,
        {
            "name": "flaky",
            "script": "a.py",
            "schedule": {"kind": "manual"},
            "max_retries": max_retries,
            "retry_delay_seconds": 10,
        },
    )
    console.hub.join("w1")
    run = await console.scheduler.run_now(job.id, ["--x"])
    await console.scheduler.step()
    await console.db.call(queries.transition_run, run.id, "running", worker_name="w1")
    failed = await console.db.call(queries.transition_run, run.id, "failed", worker_name="w1")
    console.scheduler.runs_committed(CommitResult(changed=[failed], ended=[failed]))
    while console.scheduler._side_tasks:  # the run is now in the scheduler's memory only
        await asyncio.gather(*list(console.scheduler._side_tasks))
    assert [r.id for r in console.scheduler._ended] == [run.id]
    return job.id, run.id


@pytest.mark.asyncio
async def test_a_retry_owed_when_the_scheduler_stopped_is_planned_at_the_next_start(url, passes):
    clock = Clock(utcnow().replace(microsecond=0))
    first = Console(url, clock)
    await first.db.start()
    try:
        job_id, run_id = await ended_before_the_pass(first)
    finally:
        await first.close()  # stopped (or crashed) before the pass that plans the retry

    clock.advance(minutes=5)  # down longer than the retry delay: the retry is due at once
    again = Console(url, clock)
    try:
        await again.db.start()
        await started_pass(again, passes)
        runs = sorted(await again.db.call(queries.list_runs, job_id), key=lambda r: r.id)
        assert [(r.attempt, r.trigger, r.state) for r in runs] == [
            (1, "manual", "failed"),
            (2, "retry", "queued"),
        ]
        retry = runs[1]
        assert retry.scheduled_at == runs[0].scheduled_at and retry.args == ("--x",)
        assert retry.not_before == clock()  # its delay passed while the console was down
    finally:
        await again.close()

    # a second start (a restart, or another console taking the lead) plans nothing more
    third = Console(url, clock)
    try:
        await third.db.start()
        await started_pass(third, passes)
        runs = await third.db.call(queries.list_runs, job_id)
        assert sorted((r.attempt, r.state) for r in runs) == [(1, "failed"), (2, "queued")]
        assert run_id in {r.id for r in runs}
    finally:
        await third.close()


@pytest.mark.asyncio
async def test_the_sweep_leaves_runs_without_a_retry_owed_alone(url, passes):
    """No attempts left, an outcome not retried, or a run ended before the sweep's window."""
    clock = Clock(utcnow().replace(microsecond=0))
    first = Console(url, clock)
    await first.db.start()
    try:
        job_id, _ = await ended_before_the_pass(first, max_retries=0)
        other = await first.db.call(
            queries.create_job,
            {"name": "ok", "script": "a.py", "schedule": {"kind": "manual"}, "max_retries": 3},
        )
        done = await first.scheduler.run_now(other.id)
        await first.db.call(queries.transition_run, done.id, "cancelled")
    finally:
        await first.close()

    later = Console(url, clock)
    try:
        await later.db.start()
        await started_pass(later, passes)
        assert len(await later.db.call(queries.list_runs, job_id)) == 1
        assert len(await later.db.call(queries.list_runs, other.id)) == 1
    finally:
        await later.close()


@pytest.mark.asyncio
async def test_a_run_that_ended_before_the_window_is_not_swept(url, passes):
    clock = Clock(utcnow().replace(microsecond=0))
    first = Console(url, clock)
    await first.db.start()
    try:
        job_id, _ = await ended_before_the_pass(first)
    finally:
        await first.close()

    clock.advance(days=firing.RETRY_SWEEP_WINDOW.days, minutes=1)
    later = Console(url, clock)
    try:
        await later.db.start()
        await started_pass(later, passes)
        assert len(await later.db.call(queries.list_runs, job_id)) == 1
    finally:
        await later.close()
