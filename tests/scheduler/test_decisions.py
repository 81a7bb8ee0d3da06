"""Pure scheduler decisions: eligibility, least busy, slots, concurrency, deadlines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from desktop.scheduler import decisions as d
from desktop.scheduler.pool import WorkerPool
from desktop.store.records import JobRecord, RunRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def w(name, busy=0, slots=1, tags=(), scripts=("a.py",)):
    return d.WorkerView(name, frozenset(tags), frozenset(scripts), slots, busy)


def choose(kind, value, script, workers, exclude=()):
    """The scheduler's choice among WORKERS, each busy as its view says."""
    return WorkerPool(workers).choose(
        kind, value, script, {x.name: x.busy for x in workers}, exclude
    )


def test_worker_must_have_the_script():
    workers = [w("w1", scripts=("other.py",)), w("w2")]
    assert choose("any", "", "a.py", workers) == "w2"
    assert choose("any", "", "missing.py", workers) is None


def test_named_worker_only():
    workers = [w("w1"), w("w2")]
    assert choose("worker", "w2", "a.py", workers) == "w2"
    assert choose("worker", "w3", "a.py", workers) is None


def test_tag_only_matching_workers():
    workers = [w("w1", tags=("linux",)), w("w2", tags=("windows", "sql"))]
    assert choose("tag", "sql", "a.py", workers) == "w2"
    assert choose("tag", "mac", "a.py", workers) is None


def test_least_busy_per_slot_then_name():
    workers = [w("b", busy=1, slots=4), w("a", busy=1, slots=2), w("c", busy=0, slots=1)]
    assert choose("any", "", "a.py", workers) == "c"
    workers = [w("b", busy=1, slots=4), w("a", busy=1, slots=2)]
    assert choose("any", "", "a.py", workers) == "b"  # 25% busy beats 50%
    assert choose("any", "", "a.py", [w("b"), w("a")]) == "a"  # ties by name


def test_slots_are_respected_and_declined_workers_excluded():
    assert choose("any", "", "a.py", [w("w1", busy=2, slots=2)]) is None
    workers = [w("w1"), w("w2", busy=0)]
    assert choose("any", "", "a.py", workers, exclude={"w1"}) == "w2"


def test_reasons_for_no_worker():
    assert d.why_no_worker("any", "", "a.py", []) == "no worker is online"
    assert "has the script 'x.py'" in d.why_no_worker("any", "", "x.py", [w("w1")])
    assert "tagged 'sql'" in d.why_no_worker("tag", "sql", "a.py", [w("w1")])
    assert "busy" in d.why_no_worker("any", "", "a.py", [w("w1", busy=1)])


@pytest.mark.parametrize(
    "policy, active, expected",
    [
        ("allow", ["running"], "run"),
        ("skip", [], "run"),
        ("skip", ["succeeded"], "run"),  # ended runs do not count
        ("skip", ["running"], "skip"),
        ("skip", ["queued"], "skip"),
        ("queue", ["running"], "run"),  # one may wait
        ("queue", ["running", "queued"], "skip"),  # but only one
        ("queue", [], "run"),
    ],
)
def test_on_occurrence(policy, active, expected):
    assert d.on_occurrence(policy, active) == expected


def test_may_dispatch_holds_queue_runs_behind_the_running_one():
    assert not d.may_dispatch("queue", ["running"])
    assert not d.may_dispatch("queue", ["dispatched"])
    assert d.may_dispatch("queue", ["queued"])
    assert d.may_dispatch("allow", ["running"])
    assert d.may_dispatch("skip", [])


def test_queue_deadline_counts_from_when_the_run_could_start():
    assert d.queue_deadline(T0, None, None) is None
    assert d.queue_deadline(T0, None, 30) == T0 + timedelta(seconds=30)
    later = T0 + timedelta(minutes=5)  # a retry waiting for its backoff is not "queued" yet
    assert d.queue_deadline(T0, later, 30) == later + timedelta(seconds=30)


def test_lost_deadline_from_the_latest_sign_of_life():
    grace = timedelta(seconds=60)
    start = T0 - timedelta(hours=1)
    assert d.lost_deadline(T0, None, start, grace) == T0 + grace
    report = T0 + timedelta(seconds=45)
    assert d.lost_deadline(T0, report, start, grace) == report + grace
    # a console that just started gives every in-flight run a full grace period
    restart = T0 + timedelta(hours=2)
    assert d.lost_deadline(T0, report, restart, grace) == restart + grace


def test_earliest_ignores_none():
    assert d.earliest([None, T0 + timedelta(1), T0, None]) == T0
    assert d.earliest([None]) is None


def test_sleep_until_a_near_deadline_then_pass():
    timeout, capped = d.sleep_for(T0 + timedelta(seconds=4), T0, 15.0)
    assert (timeout, capped) == (4.0, False)
    # the timer may end a hair early on the wall clock: the pass runs all the same
    assert d.pass_due(T0 + timedelta(seconds=4), T0 + timedelta(seconds=3.999), capped)


def test_sleep_is_cut_at_max_sleep_and_past_deadlines_mean_now():
    assert d.sleep_for(T0 + timedelta(days=1), T0, 15.0) == (15.0, True)
    assert d.sleep_for(None, T0, 15.0) == (15.0, True)
    assert d.sleep_for(T0 - timedelta(seconds=1), T0, 15.0) == (0.0, False)


def test_idle_capped_sleep_runs_no_pass():
    # a daily job, nothing else: the end of each MAX_SLEEP is a look at the clock, no pass
    # (no database call: benchmarks, idle wake-ups)
    daily = T0 + timedelta(hours=15)
    assert not d.pass_due(daily, T0 + timedelta(seconds=15), capped=True)
    assert not d.pass_due(None, T0 + timedelta(seconds=15), capped=True)


def test_capped_sleep_runs_a_pass_when_the_wall_clock_reached_the_deadline():
    # the wall clock was stepped forward past the deadline during the capped sleep
    deadline = T0 + timedelta(hours=1)
    assert d.pass_due(deadline, T0 + timedelta(hours=1, seconds=10), capped=True)
    assert d.pass_due(deadline, deadline, capped=True)


# --- plan_dispatch: one pass over the active runs ---------------------------------------------


def job(job_id=1, concurrency="allow", queue_timeout=None, target=("any", ""), script="a.py"):
    return JobRecord(
        id=job_id,
        name=f"job{job_id}",
        description="",
        script=script,
        args=(),
        env={},
        target_kind=target[0],
        target_value=target[1],
        schedule={"kind": "manual"},
        time_zone="UTC",
        enabled=True,
        misfire_policy="run_once",
        misfire_cap=10,
        concurrency=concurrency,
        timeout_seconds=None,
        max_retries=0,
        retry_delay_seconds=10,
        retry_backoff=2.0,
        retry_max_delay_seconds=3600,
        queue_timeout_seconds=queue_timeout,
        next_fire_at=None,
        last_scheduled_at=None,
        created_at=T0,
        updated_at=T0,
    )


def run(run_id, job_id=1, state="queued", worker=None, created=T0, not_before=None):
    return RunRecord(
        id=run_id,
        job_id=job_id,
        job_name=f"job{job_id}",
        scheduled_at=created,
        attempt=1,
        trigger="manual",
        state=state,
        worker_name=worker,
        exit_code=None,
        reason="",
        args=None,
        not_before=not_before,
        created_at=created,
        dispatched_at=T0 if state != "queued" else None,
        started_at=None,
        finished_at=None,
        last_seq=0,
        output_bytes=0,
        output_truncated=False,
    )


def test_plan_fills_free_slots_oldest_first_and_counts_busy_from_runs():
    runs = [run(1, state="running", worker="w1"), run(2), run(3), run(4)]
    workers = [w("w1", slots=2), w("w2", slots=1)]
    plan = d.plan_dispatch(runs, {1: job()}, workers, {}, T0)
    # w1 has one of two slots busy (50%), w2 none: run 2 -> w2, run 3 -> w1, run 4 waits
    assert plan.choices == [(2, "w2"), (3, "w1")]
    assert plan.expired == []


def test_plan_queue_policy_holds_the_second_run_back():
    runs = [run(1, state="running", worker="w1"), run(2)]
    plan = d.plan_dispatch(runs, {1: job(concurrency="queue")}, [w("w1", slots=4)], {}, T0)
    assert plan.choices == []
    runs = [run(1), run(2)]
    plan = d.plan_dispatch(runs, {1: job(concurrency="queue")}, [w("w1", slots=4)], {}, T0)
    assert plan.choices == [(1, "w1")]  # the first goes, the second waits behind it


def test_plan_expires_runs_past_their_queue_timeout_with_the_reason():
    runs = [run(1, created=T0 - timedelta(seconds=61)), run(2, created=T0 - timedelta(seconds=5))]
    plan = d.plan_dispatch(runs, {1: job(queue_timeout=60)}, [], {}, T0)
    assert [rid for rid, _ in plan.expired] == [1]
    assert "waited 60 s for a worker (no worker is online)" in plan.expired[0][1]
    assert plan.wake_at == [T0 + timedelta(seconds=55)]  # run 2's deadline


def test_plan_waits_for_retry_backoff_and_skips_declining_workers_and_unknown_jobs():
    later = T0 + timedelta(seconds=30)
    runs = [run(1, not_before=later), run(2), run(3, job_id=99)]
    plan = d.plan_dispatch(runs, {1: job()}, [w("w1"), w("w2")], {2: {"w1"}}, T0)
    assert plan.choices == [(2, "w2")]
    assert later in plan.wake_at


def test_plan_fails_a_run_every_able_worker_refused_for_good_and_only_then():
    runs = [run(1)]
    refused = {1: {"w1": "environment refused: PATH"}}
    # another able worker is left: it gets the run
    plan = d.plan_dispatch(runs, {1: job()}, [w("w1"), w("w2")], {1: {"w1"}}, T0, refused)
    assert plan.choices == [(1, "w2")] and plan.refused == []
    # the one left is busy: the run waits for it
    busy = [run(2, state="running", worker="w2"), run(1)]
    plan = d.plan_dispatch(busy, {1: job()}, [w("w1"), w("w2")], {1: {"w1"}}, T0, refused)
    assert plan.choices == [] and plan.refused == []
    # nobody able is online: it waits (a worker may come), as any run does
    plan = d.plan_dispatch(runs, {1: job()}, [w("w3", scripts=())], {}, T0, refused)
    assert plan.refused == []
    # every able online worker refused for good: failed now, with their reasons
    both = {1: {"w1": "environment refused: PATH", "w2": "argument 1 holds a NUL"}}
    plan = d.plan_dispatch(runs, {1: job()}, [w("w1"), w("w2")], {1: {"w1", "w2"}}, T0, both)
    assert plan.refused == [
        (
            1,
            "refused by worker w1: environment refused: PATH; "
            "refused by worker w2: argument 1 holds a NUL",
        )
    ]
    assert plan.choices == []


def test_a_retry_swept_up_late_waits_its_delay_from_the_end_of_its_run():
    delay = timedelta(seconds=60)
    # ended long ago: due now
    assert d.retry_after_end(T0 - timedelta(hours=2), delay, T0) == T0
    # ended 20 s ago: the rest of its delay
    assert d.retry_after_end(T0 - timedelta(seconds=20), delay, T0) == T0 + timedelta(seconds=40)
    # an end stamped ahead of this clock: no longer than a retry planned now
    assert d.retry_after_end(T0 + timedelta(hours=1), delay, T0) == T0 + delay
