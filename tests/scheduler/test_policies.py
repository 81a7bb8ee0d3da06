"""Each scheduling policy against the real store, with the clock passed in: misfire, concurrency,
retries with backoff, timeout, queue timeout, lost runs, cancel, declines, DST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from desktop.core.events import RunChanged
from desktop.hub.commit import CommitResult
from desktop.scheduler.service import DECLINE_BACKOFF, FIRE_LEAD
from desktop.store import queries

pytestmark = pytest.mark.asyncio
UTC = timezone.utc


async def due_now(env, job_id, at=None):
    await env.db.call(queries.set_next_fire, job_id, at or env.clock())


async def finish(env, run_id, outcome, worker="w1"):
    """What the hub does when a worker reports: store the result, tell the scheduler."""
    await env.db.call(queries.transition_run, run_id, "running", worker_name=worker)
    record = await env.db.call(queries.transition_run, run_id, outcome, worker_name=worker)
    env.scheduler.runs_committed(CommitResult(changed=[record], ended=[record]))
    await env.settle()
    return record


async def test_due_job_fires_once_and_is_dispatched_with_args_env_timeout(env):
    env.hub.join("w1")
    job_id = await env.job(
        args=["x", "y z"],
        env={"MODE": "test"},
        timeout_seconds=30,
        schedule={"kind": "interval", "every": 1, "unit": "hours"},
    )
    await due_now(env, job_id)
    await env.scheduler.step()
    await env.scheduler.step()  # a second pass at the same instant adds nothing
    (run,) = await env.runs(job_id)
    assert run.state == "dispatched" and run.worker_name == "w1"
    ((name, message),) = [s for s in env.hub.sent if s[1]["type"] == "dispatch"]
    assert name == "w1"
    assert message["args"] == ["x", "y z"]
    assert message["env"] == {"MODE": "test"}
    assert message["timeout"] == 30
    assert message["script"] == "a.py" and message["job"] == "job"
    job = await env.db.call(queries.get_job, job_id)
    assert job.next_fire_at > env.clock()
    assert RunChanged(run.id, job_id, "dispatched") in env.events


async def test_next_wake_is_the_earliest_next_fire(env):
    job_id = await env.job(schedule={"kind": "interval", "every": 10, "unit": "minutes"})
    job = await env.db.call(queries.get_job, job_id)
    assert await env.scheduler.step() == job.next_fire_at
    env.scheduler.fire_lead = lead = FIRE_LEAD
    assert await env.scheduler.step() == job.next_fire_at - lead


async def test_a_run_fired_ahead_is_dispatched_with_the_rest_of_the_wait(env):
    env.hub.join("w1")
    job_id = await env.job(schedule={"kind": "interval", "every": 10, "unit": "minutes"})
    job = await env.db.call(queries.get_job, job_id)
    env.scheduler.fire_lead = lead = FIRE_LEAD
    env.clock.now = job.next_fire_at - lead - timedelta(milliseconds=1)
    await env.scheduler.step()
    assert env.hub.sent == []  # not yet within the lead
    env.clock.now = job.next_fire_at - timedelta(milliseconds=5)
    await env.scheduler.step()
    ((name, message),) = env.hub.sent
    assert name == "w1" and message["delay"] == pytest.approx(0.005)
    (run,) = await env.db.call(queries.list_runs, job_id)
    assert run.scheduled_at == job.next_fire_at and run.state == "dispatched"
    # a run started by hand, or a retry, is never held
    env.hub.sent.clear()
    env.clock.now = job.next_fire_at + timedelta(seconds=1)
    await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    assert [m for _, m in env.hub.sent if m["type"] == "dispatch" and "delay" in m] == []


@pytest.mark.parametrize(
    "policy, runs, missed",
    [("skip", 0, 6), ("run_once", 1, 5), ("run_all", 3, 3)],
)
async def test_misfire_after_downtime(env, policy, runs, missed):
    job_id = await env.job(
        schedule={"kind": "interval", "every": 5, "unit": "minutes"},
        misfire_policy=policy,
        misfire_cap=3,
        concurrency="allow",
    )
    # the console was down for half an hour; it comes back 2 minutes after the last occurrence
    # (more than the 60 s grace: that one is late too), 6 occurrences in all
    now = env.clock()
    start = now.replace(minute=now.minute - now.minute % 5, second=0)  # on the 5-minute grid
    await due_now(env, job_id, start + timedelta(minutes=5))
    env.clock.now = start + timedelta(minutes=32)
    await env.scheduler.step()
    rows = await env.runs(job_id)
    states = [r.state for r in rows]
    assert states.count("missed") == missed
    assert len(rows) - states.count("missed") == runs
    for r in rows:
        if r.state == "missed":
            assert f"misfire policy {policy}" in r.reason


async def test_skip_policy_runs_a_late_occurrence_within_grace(env):
    job_id = await env.job(
        schedule={"kind": "interval", "every": 1, "unit": "hours"}, misfire_policy="skip"
    )
    await due_now(env, job_id, env.clock() - timedelta(seconds=5))  # a little late: on time
    await env.scheduler.step()
    assert [r.state for r in await env.runs(job_id)] == ["queued"]


async def test_concurrency_skip_records_a_skipped_run(env):
    env.hub.join("w1", slots=5)
    job_id = await env.job(schedule={"kind": "interval", "every": 1, "unit": "minutes"})
    await due_now(env, job_id)
    await env.scheduler.step()
    env.clock.advance(minutes=1)
    await due_now(env, job_id)
    await env.scheduler.step()
    first, second = await env.runs(job_id)
    assert first.state == "dispatched"
    assert second.state == "skipped"
    assert "previous run was still active (concurrency: skip)" in second.reason


async def test_concurrency_queue_waits_for_the_running_one(env):
    env.hub.join("w1", slots=5)
    job_id = await env.job(
        schedule={"kind": "interval", "every": 1, "unit": "minutes"}, concurrency="queue"
    )
    for _ in range(3):
        await due_now(env, job_id)
        await env.scheduler.step()
        env.clock.advance(minutes=1)
    first, second, third = await env.runs(job_id)
    assert (first.state, second.state, third.state) == ("dispatched", "queued", "skipped")
    await finish(env, first.id, "succeeded")
    await env.scheduler.step()
    assert (await env.db.call(queries.get_run, second.id)).state == "dispatched"


async def test_concurrency_allow_overlaps(env):
    env.hub.join("w1", slots=5)
    job_id = await env.job(
        schedule={"kind": "interval", "every": 1, "unit": "minutes"}, concurrency="allow"
    )
    for _ in range(2):
        await due_now(env, job_id)
        await env.scheduler.step()
        env.clock.advance(minutes=1)
    assert [r.state for r in await env.runs(job_id)] == ["dispatched", "dispatched"]


async def test_retries_with_backoff_then_give_up(env):
    env.hub.join("w1")
    job_id = await env.job(max_retries=2, retry_delay_seconds=10, retry_backoff=3.0)
    run_id = (await env.scheduler.run_now(job_id, ["arg"])).id
    await env.scheduler.step()
    await finish(env, run_id, "failed")
    first, retry = await env.runs(job_id)
    assert (retry.attempt, retry.trigger, retry.state) == (2, "retry", "queued")
    assert retry.args == ("arg",)  # the manual override carries over
    assert retry.scheduled_at == first.scheduled_at
    assert retry.not_before == env.clock() + timedelta(seconds=10)
    # not before its time
    assert await env.scheduler.step() == retry.not_before
    assert (await env.db.call(queries.get_run, retry.id)).state == "queued"
    env.clock.advance(seconds=10)
    await env.scheduler.step()
    assert (await env.db.call(queries.get_run, retry.id)).state == "dispatched"
    await finish(env, retry.id, "timed_out")
    third = (await env.runs(job_id))[-1]
    assert third.attempt == 3
    assert third.not_before == env.clock() + timedelta(seconds=30)  # 10 * 3
    env.clock.advance(seconds=30)
    await env.scheduler.step()
    await finish(env, third.id, "failed")
    assert len(await env.runs(job_id)) == 3  # max_retries=2: three attempts in all


async def test_a_retry_is_planned_by_the_pass_after_a_failed_one(env, monkeypatch):
    """The pass plans the retries of runs that ended; one that fails keeps them for the next."""
    from desktop.scheduler import firing
    from desktop.store.errors import StoreError

    env.hub.join("w1")
    job_id = await env.job(max_retries=1, retry_delay_seconds=10)
    run_id = (await env.scheduler.run_now(job_id)).id
    await env.scheduler.step()
    await env.db.call(queries.transition_run, run_id, "running", worker_name="w1")
    record = await env.db.call(queries.transition_run, run_id, "failed", worker_name="w1")
    env.scheduler.runs_committed(CommitResult(changed=[record], ended=[record]))
    real_pass = firing.run_pass

    def broken_pass(*args):
        raise StoreError("database unreachable")

    monkeypatch.setattr(firing, "run_pass", broken_pass)
    with pytest.raises(StoreError):
        await env.scheduler.step()
    assert len(await env.runs(job_id)) == 1
    monkeypatch.setattr(firing, "run_pass", real_pass)
    await env.scheduler.step()
    _, retry = await env.runs(job_id)
    assert (retry.attempt, retry.trigger, retry.state) == (2, "retry", "queued")
    await env.scheduler.step()
    assert len(await env.runs(job_id)) == 2  # planned once


async def test_no_retry_after_success_or_cancel(env):
    env.hub.join("w1", slots=2)
    job_id = await env.job(max_retries=3, retry_delay_seconds=0, concurrency="allow")
    a = (await env.scheduler.run_now(job_id)).id
    env.clock.advance(seconds=1)
    b = (await env.scheduler.run_now(job_id)).id
    await env.scheduler.step()
    await finish(env, a, "succeeded")
    await finish(env, b, "cancelled")
    assert len(await env.runs(job_id)) == 2


async def test_queue_timeout_marks_missed_with_a_reason(env):
    job_id = await env.job(queue_timeout_seconds=30)
    run = await env.scheduler.run_now(job_id)
    deadline = await env.scheduler.step()
    assert deadline == run.created_at + timedelta(seconds=30)
    env.clock.now = run.created_at + timedelta(seconds=31)
    await env.scheduler.step()
    record = await env.db.call(queries.get_run, run.id)
    assert record.state == "missed"
    assert record.reason == "waited 30 s for a worker (no worker is online)"


async def test_queued_run_goes_out_when_a_worker_joins(env):
    job_id = await env.job(target_kind="tag", target_value="sql")
    run = await env.scheduler.run_now(job_id)
    env.hub.join("w1", tags=("web",))
    await env.scheduler.step()
    assert (await env.db.call(queries.get_run, run.id)).state == "queued"
    env.hub.join("w2", tags=("sql",))
    await env.scheduler.step()
    assert env.hub.dispatched() == [("w2", run.id)]


async def test_slots_limit_dispatches(env):
    env.hub.join("w1", slots=2)
    job_id = await env.job(concurrency="allow")
    ids = []
    for _ in range(3):
        ids.append((await env.scheduler.run_now(job_id)).id)
        env.clock.advance(seconds=1)
    await env.scheduler.step()
    assert [r for _, r in env.hub.dispatched()] == ids[:2]
    await finish(env, ids[0], "succeeded")
    await env.scheduler.step()
    assert [r for _, r in env.hub.dispatched()] == ids


async def test_in_flight_run_is_lost_after_grace_then_retried(env):
    env.scheduler.lost_grace = timedelta(seconds=60)
    env.hub.join("w1")
    job_id = await env.job(max_retries=1, retry_delay_seconds=5)
    run = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    del env.hub.workers["w1"]  # the worker vanished
    env.clock.advance(seconds=59)
    await env.scheduler.step()
    assert (await env.db.call(queries.get_run, run.id)).state == "dispatched"
    env.clock.advance(seconds=2)
    await env.scheduler.step()
    await env.settle()
    lost, retry = await env.runs(job_id)
    assert lost.state == "lost" and "no word from w1" in lost.reason
    assert (retry.attempt, retry.state) == (2, "queued")


async def test_a_worker_that_keeps_reporting_the_run_keeps_it(env):
    env.scheduler.lost_grace = timedelta(seconds=60)
    env.hub.join("w1")
    job_id = await env.job()
    run = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    for _ in range(5):
        env.clock.advance(seconds=50)
        env.hub.workers["w1"].running = frozenset({run.id})
        env.hub.workers["w1"].last_heartbeat = env.clock()
        await env.scheduler.step()
    assert (await env.db.call(queries.get_run, run.id)).state == "dispatched"


async def test_restart_gives_in_flight_runs_a_grace_period(env):
    env.scheduler.lost_grace = timedelta(seconds=60)
    job_id = await env.job()
    run = await env.scheduler.run_now(job_id)
    await env.db.call(
        queries.transition_run,
        run.id,
        "running",
        worker_name="w1",
        dispatched_at=env.clock() - timedelta(hours=1),
    )
    await env.scheduler.start()  # watching from now: the worker may still reconnect
    await env.scheduler.stop()
    await env.scheduler.step()
    assert (await env.db.call(queries.get_run, run.id)).state == "running"
    env.clock.advance(seconds=61)
    await env.scheduler.step()
    assert (await env.db.call(queries.get_run, run.id)).state == "lost"


async def test_cancel_queued_and_running(env):
    job_id = await env.job(concurrency="allow")
    queued = await env.scheduler.run_now(job_id)
    await env.scheduler.cancel(queued.id)
    assert (await env.db.call(queries.get_run, queued.id)).state == "cancelled"
    env.hub.join("w1")
    env.clock.advance(seconds=1)
    running = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    await env.scheduler.cancel(running.id)
    assert env.hub.sent[-1][1] == {
        "type": "cancel",
        "v": 1,
        "run_id": running.id,
        "reason": "cancelled from the console",
    }
    # the worker reports the outcome; until then the run stays where it is
    assert (await env.db.call(queries.get_run, running.id)).state == "dispatched"


async def test_cancel_while_the_worker_is_away_is_recorded_at_once(env):
    env.hub.join("w1")
    job_id = await env.job()
    run = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    del env.hub.workers["w1"]
    await env.scheduler.cancel(run.id)
    record = await env.db.call(queries.get_run, run.id)
    assert record.state == "cancelled" and "offline" in record.reason


async def test_declined_run_goes_to_another_worker(env):
    env.hub.join("w1")
    job_id = await env.job()
    run = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    env.hub.join("w2")
    env.scheduler.run_declined("w1", run.id, "the one slot of this worker is busy")
    await env.settle()
    record = await env.db.call(queries.get_run, run.id)
    assert record.state == "queued" and "declined by w1" in record.reason
    await env.scheduler.step()
    assert env.hub.dispatched() == [("w1", run.id), ("w2", run.id)]


async def test_a_run_declined_by_its_only_worker_is_offered_again_later(env):
    env.hub.join("w1")
    job_id = await env.job()
    run = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    env.scheduler.run_declined("w1", run.id, "the one slot of this worker is busy")
    await env.settle()
    wake = await env.scheduler.step()
    assert env.hub.dispatched() == [("w1", run.id)]  # not asked again at once
    assert wake == env.clock() + DECLINE_BACKOFF
    env.clock.advance(seconds=DECLINE_BACKOFF.total_seconds())
    await env.scheduler.step()
    assert env.hub.dispatched() == [("w1", run.id), ("w1", run.id)]


async def test_dst_spring_forward_runs_after_the_gap(env):
    ny = ZoneInfo("America/New_York")
    job_id = await env.job(
        schedule={"kind": "daily", "times": ["02:30"], "tz": "America/New_York"},
        misfire_policy="run_once",
        concurrency="allow",
    )
    # 2026-03-08: 02:00 -> 03:00 in New York; 02:30 does not exist that night.  The scheduler
    # walks two nights on the passed clock: it computes each next fire time itself.
    await due_now(env, job_id, datetime(2026, 3, 7, 2, 30, tzinfo=ny))
    env.clock.now = datetime(2026, 3, 7, 2, 30, 1, tzinfo=ny).astimezone(UTC)
    assert await env.scheduler.step() == datetime(2026, 3, 8, 3, 0, tzinfo=ny)  # after the gap
    env.clock.now = datetime(2026, 3, 8, 3, 0, 1, tzinfo=ny).astimezone(UTC)
    await env.scheduler.step()
    first, second = await env.runs(job_id)
    assert (first.state, second.state) == ("queued", "queued")
    assert first.scheduled_at.astimezone(ny).isoformat() == "2026-03-07T02:30:00-05:00"
    assert second.scheduled_at.astimezone(ny).isoformat() == "2026-03-08T03:00:00-04:00"
    job = await env.db.call(queries.get_job, job_id)
    assert job.next_fire_at.astimezone(ny).isoformat() == "2026-03-09T02:30:00-04:00"


async def test_dst_fall_back_runs_once(env):
    ny = ZoneInfo("America/New_York")
    job_id = await env.job(
        schedule={"kind": "daily", "times": ["01:30"], "tz": "America/New_York"},
        concurrency="allow",
    )
    # 2026-11-01: 01:30 happens twice in New York; the job runs at the first one only
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ny, fold=0)
    await due_now(env, job_id, first)
    env.clock.now = first.astimezone(UTC) + timedelta(seconds=1)
    await env.scheduler.step()
    env.clock.now = first.astimezone(UTC) + timedelta(hours=1, seconds=1)  # the second 01:30
    await env.scheduler.step()
    (run,) = await env.runs(job_id)
    assert run.scheduled_at == first.astimezone(UTC)
    job = await env.db.call(queries.get_job, job_id)
    assert job.next_fire_at.astimezone(ny).isoformat() == "2026-11-02T01:30:00-05:00"


async def test_worker_back_with_a_run_cancelled_meanwhile_is_told_to_stop(env):
    env.hub.join("w1")
    job_id = await env.job(concurrency="allow")
    kept = await env.scheduler.run_now(job_id)
    env.clock.advance(seconds=1)
    dropped = await env.scheduler.run_now(job_id)
    await env.scheduler.step()
    del env.hub.workers["w1"]
    await env.scheduler.cancel(dropped.id)  # recorded at once: the worker is away
    env.hub.join("w1")
    env.hub.sent.clear()
    env.scheduler.worker_joined(env.hub.workers["w1"], [kept.id, dropped.id])
    await env.settle()
    assert env.hub.sent == [
        (
            "w1",
            {
                "type": "cancel",
                "v": 1,
                "run_id": dropped.id,
                "reason": "cancelled while the worker was away",
            },
        )
    ]
