"""Chaos case 6: the wall clock stepped back one hour, then forward (to the true time), then
forward one more hour, under a running scheduler with real worker processes.  The clock is
injected into the console's core (the machine's clock is not touched).

Promise: at most one start per occurrence, and no occurrence silently lost: every occurrence
of each job's interval grid, from its first to its last, is a run or is recorded missed (a
listed row, or counted in the "N earlier ones not listed" of the row after it), per the job's
misfire policy.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta

import pytest

from desktop.core.timeutil import utcnow
from desktop.scheduler.service import MAX_SLEEP
from desktop.service import Core, changes
from desktop.store import queries
from tests.chaos.conftest import SETTINGS, record
from tests.e2e.conftest import WorkerProcs, prepare_db, wait_until

STEP = timedelta(seconds=2)
HOUR = timedelta(hours=1)
POLICIES = {"skip": 1, "run_once": 1, "run_all": 3}  # runs fired after a late hour (cap 3)


class SteppedClock:
    """The true UTC time plus an offset the test steps, as an NTP step or an admin would."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


async def rows(core: Core, job_id: int):
    return await core.db.call(queries.list_runs, job_id, 100_000)


def not_listed(reason: str) -> int:
    found = re.search(r"; (\d+) earlier ones not listed", reason or "")
    return int(found.group(1)) if found else 0


def account(records, step: timedelta) -> tuple[int, int]:
    """(occurrences on the grid from first to last, occurrences accounted for)."""
    times = sorted(r.scheduled_at for r in records)
    assert len(times) == len(set(times)), "an occurrence recorded twice"
    grid = (times[-1] - times[0]) // step + 1
    for t in times:
        assert (t - times[0]) % step == timedelta(0), f"{t} is off the grid"
    # the rows one pass recorded missed share its reason, which counts the unlisted ones once
    unlisted = sum(not_listed(reason) for reason in {r.reason for r in records})
    return grid, len(records) + unlisted


@pytest.mark.timeout(180)
@pytest.mark.asyncio
async def test_clock_steps_fire_nothing_twice_and_lose_nothing(tmp_path, monkeypatch):
    # the core's fallback poll for other processes' changes wakes the scheduler too; keep it out
    # so that only the scheduler's own bound (MAX_SLEEP) can notice the clock step
    monkeypatch.setattr(changes, "POLL_SECONDS", 3600.0)
    began = time.monotonic()
    url = f"sqlite:///{tmp_path / 'clock.db'}"
    prepare_db(url, SETTINGS)
    clock = SteppedClock()
    core = Core(url, "127.0.0.1", 0, clock=clock)
    await core.start()
    workers = WorkerProcs(tmp_path)
    try:
        token = await core.add_worker("w1", (), 4)
        workers.prepare("w1", core.hub_url, token, slots=4)
        workers.start("w1")

        async def online():
            return any(s.online for s in core.worker_status())

        await wait_until(core, online, 30, "the worker online")
        jobs = {}
        for policy, cap in (("skip", 1), ("run_once", 1), ("run_all", 3)):
            spec = {
                "name": policy,
                "script": "test_job.py",
                "args": ["0", "1", "0"],
                "schedule": {"kind": "interval", "every": 2, "unit": "seconds"},
                "misfire_policy": policy,
                "misfire_cap": cap,
            }
            jobs[policy] = (await core.save_job(spec)).id

        async def fired(at_least: int, since: int = 0, seconds: float = 60):
            async def check():
                for job_id in jobs.values():
                    done = [r for r in await rows(core, job_id) if r.id > since]
                    if sum(r.state != "missed" for r in done) < at_least:
                        return False
                return True

            await wait_until(core, check, seconds, f"{at_least} more runs of each job")

        async def last_id() -> int:
            ids = [0]
            for job_id in jobs.values():
                ids += [r.id for r in await rows(core, job_id)]
            return max(ids)

        await fired(2)  # true time: the jobs run

        clock.offset = -HOUR
        before = await last_id()
        await asyncio.sleep(5)  # a span of true time with nothing due on the stepped clock
        assert await last_id() == before, "something fired after the clock went back"

        clock.offset = timedelta(0)  # forward one hour, to the true time
        await fired(1, before, MAX_SLEEP + 10)  # noticed within the scheduler's MAX_SLEEP
        back_to_true = await last_id()

        clock.offset = HOUR  # forward one more hour: an hour of occurrences came due at once
        await fired(1, back_to_true)
        await asyncio.sleep(1)  # let the pass that handled the hour finish its writes
        for policy, job_id in jobs.items():
            late = [r for r in await rows(core, job_id) if r.id > back_to_true]
            late_runs = [r for r in late if r.state != "missed"]
            # the first pass after the step: `want` runs, then the grid goes on normally
            assert len(late_runs) >= POLICIES[policy], (policy, late_runs)
        clock.offset = timedelta(0)
        await core.scheduler.stop()  # freeze the ledger before it is checked

        checked = 0
        for policy, job_id in jobs.items():
            records = await rows(core, job_id)
            grid, accounted = account(records, STEP)
            assert accounted == grid, (policy, grid, accounted)
            assert all(r.attempt == 1 for r in records)  # nothing started a second time
            assert grid > HOUR // STEP  # the hour forward is in the ledger
            checked += grid
        record("6 clock steps", None, time.monotonic() - began, occurrences_checked=checked)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, workers.stop_all)
        await core.stop()
