"""The scheduler's decisions as pure functions: which worker, whether a run may start, when a
queued run has waited too long, when an in-flight run counts as lost.  No I/O; time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from desktop.core import runs as states
from desktop.scheduler.pool import WorkerPool

if TYPE_CHECKING:
    from desktop.store.records import ActiveRun, JobRecord

ALLOW, SKIP, QUEUE = "allow", "skip", "queue"


@dataclass(frozen=True)
class WorkerView:
    name: str
    tags: frozenset[str]
    scripts: frozenset[str]
    slots: int
    busy: int  # runs dispatched to it or running on it


def eligible(
    target_kind: str, target_value: str, script: str, workers: Iterable[WorkerView]
) -> list[WorkerView]:
    """Online workers that may run the job at all (ignoring how busy they are)."""
    out = []
    for w in workers:
        if script not in w.scripts:
            continue
        if target_kind == "worker" and w.name != target_value:
            continue
        if target_kind == "tag" and target_value not in w.tags:
            continue
        out.append(w)
    return out


def why_no_worker(
    target_kind: str, target_value: str, script: str, workers: Iterable[WorkerView]
) -> str:
    """A reason for a person, when no worker could be chosen (pool.WorkerPool.choose)."""
    workers = list(workers)
    if not workers:
        return "no worker is online"
    where = {"worker": f"worker {target_value!r}", "tag": f"a worker tagged {target_value!r}"}
    target = where.get(target_kind, "any worker")
    if not eligible(target_kind, target_value, script, workers):
        if target_kind == "any":
            return f"no online worker has the script {script!r}"
        return f"{target} with the script {script!r} is not online"
    return f"every eligible worker ({target}) is busy"


def refusal(
    target_kind: str,
    target_value: str,
    script: str,
    workers: Iterable[WorkerView],
    refused: Mapping[str, str],
) -> str | None:
    """The reason to fail a queued run now, when every online worker that could take it has
    refused it for good (its env policy, unsafe arguments or script name); None while one is
    left.  With nobody online it waits as any run does: a new worker may take it."""
    if not refused:
        return None
    able = eligible(target_kind, target_value, script, workers)
    if not able or any(w.name not in refused for w in able):
        return None
    return "; ".join(f"refused by worker {w.name}: {refused[w.name]}" for w in able)


def on_occurrence(policy: str, job_states: Iterable[str]) -> str:
    """What a new occurrence becomes, given the job's active runs: "run" (a queued run) or
    "skip" (a skipped row with a reason).

    allow: always runs (overlap is fine).  skip: skipped while another run is active.
    queue: one run may wait behind the active one; a second waiting one is skipped."""
    active = [st for st in job_states if st in states.ACTIVE]
    if policy == ALLOW or not active:
        return "run"
    if policy == QUEUE and states.QUEUED not in active:
        return "run"
    return "skip"


def may_dispatch(policy: str, other_states: Iterable[str]) -> bool:
    """Whether a queued run may go to a worker now, given the job's other active runs.  Only
    "queue" holds a run back (until the running one ends); "skip" never has two, "allow"
    overlaps on purpose.  Manual runs follow the same rule."""
    if policy != QUEUE:
        return True
    return not any(st in (states.DISPATCHED, states.RUNNING) for st in other_states)


def queue_deadline(
    created_at: datetime, not_before: datetime | None, queue_timeout_seconds: int | None
) -> datetime | None:
    """When a queued run stops waiting for a worker (counted from when it could first run)."""
    if queue_timeout_seconds is None:
        return None
    start = max(created_at, not_before) if not_before else created_at
    return start + timedelta(seconds=queue_timeout_seconds)


def lost_deadline(
    dispatched_at: datetime | None,
    last_report: datetime | None,
    watching_since: datetime,
    grace: timedelta,
) -> datetime:
    """When an in-flight run becomes lost: ``grace`` after the last sign of it (its dispatch,
    its worker saying it holds it, any message about it, or the console's own start, since a
    console that was down could not hear anything)."""
    signs = [t for t in (dispatched_at, last_report, watching_since) if t is not None]
    return max(signs) + grace


def retry_after_end(ended_at: datetime, delay: timedelta, now: datetime) -> datetime:
    """When a retry planned late (swept up after a restart) may start: ``delay`` after its run
    ended, so one already due goes now; never later than ``delay`` from now (an end stamped
    by a clock ahead of this one must not hold it longer than a retry planned at once)."""
    return min(max(ended_at + delay, now), now + delay)


def earliest(times: Iterable[datetime | None]) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def sleep_for(deadline: datetime | None, now: datetime, max_sleep: float) -> tuple[float, bool]:
    """How long the scheduler loop sleeps before DEADLINE (None: nothing due until a wake),
    never longer than MAX_SLEEP; and whether MAX_SLEEP cut the sleep short ("capped")."""
    if deadline is None:
        return max_sleep, True
    left = max(0.0, (deadline - now).total_seconds())
    if left > max_sleep:
        return max_sleep, True
    return left, False


def pass_due(deadline: datetime | None, now: datetime, capped: bool) -> bool:
    """After a sleep that was not ended by a wake: is a pass due?  A sleep to the deadline
    itself, yes (the timer may end a hair early on the wall clock: the pass is what it was
    for).  A sleep that MAX_SLEEP cut short only if the wall clock reached the deadline
    meanwhile (it was stepped forward); else nothing is due and the loop sleeps again."""
    if not capped:
        return True
    return deadline is not None and now >= deadline


def busy_counts(runs: Iterable[ActiveRun]) -> dict[str, int]:
    """Runs dispatched to or running on each worker, by worker name."""
    busy: dict[str, int] = {}
    for r in runs:
        if r.state in (states.DISPATCHED, states.RUNNING) and r.worker_name:
            busy[r.worker_name] = busy.get(r.worker_name, 0) + 1
    return busy


def _pool_of(workers: WorkerPool | Callable[[], WorkerPool] | Iterable[WorkerView]) -> WorkerPool:
    if isinstance(workers, WorkerPool):
        return workers
    if callable(workers):  # built (or taken from a cache) only when a pass needs it
        return workers()
    return WorkerPool(workers)


@dataclass
class DispatchPlan:
    choices: list[tuple[int, str]] = field(default_factory=list)  # (run id, worker)
    expired: list[tuple[int, str]] = field(default_factory=list)  # (run id, reason): missed
    # (run id, reason): every online worker that could take it refused it for good: failed
    refused: list[tuple[int, str]] = field(default_factory=list)
    wake_at: list[datetime | None] = field(default_factory=list)  # when to look again


def plan_dispatch(
    runs: Iterable[ActiveRun],
    jobs: Mapping[int, JobRecord],
    workers: WorkerPool | Callable[[], WorkerPool] | Iterable[WorkerView],
    declined: Mapping[int, Iterable[str]],
    now: datetime,
    refused: Mapping[int, Mapping[str, str]] | None = None,
) -> DispatchPlan:
    """One pass over the active runs, oldest first: which queued runs go to which worker now,
    which have waited longer than their job's queue timeout, which every online worker that
    could take them refused for good (``refused``: run -> worker -> its reason), and when to
    look again for the rest (retry backoff ends, queue deadline).  Runs of unknown (deleted)
    jobs are left alone."""
    refused = refused or {}
    runs = list(runs)
    plan = DispatchPlan()
    # the pool is only for queued runs: a pass with none (most passes; every pass of a storm
    # of 10,000 workers joining) need not build or even look at it
    pool = _pool_of(workers) if any(r.state == states.QUEUED for r in runs) else WorkerPool(())
    busy = busy_counts(runs)
    job_states: dict[int, dict[int, str]] = {}
    for r in runs:
        job_states.setdefault(r.job_id, {})[r.id] = r.state
    for run in runs:
        job = jobs.get(run.job_id)
        if run.state != states.QUEUED or job is None:
            continue
        deadline = queue_deadline(run.created_at, run.not_before, job.queue_timeout_seconds)
        if deadline is not None and deadline <= now:
            reason = why_no_worker(job.target_kind, job.target_value, job.script, pool)
            plan.expired.append(
                (run.id, f"waited {job.queue_timeout_seconds} s for a worker ({reason})")
            )
            job_states[run.job_id][run.id] = states.MISSED
            continue
        if run.not_before is not None and run.not_before > now:
            plan.wake_at.append(run.not_before)
            continue
        # only the "queue" policy looks at the job's other runs (all of them: O(n) per run)
        others = (
            [st for rid, st in job_states[run.job_id].items() if rid != run.id]
            if job.concurrency == QUEUE
            else ()
        )
        if not may_dispatch(job.concurrency, others):
            plan.wake_at.append(deadline)
            continue
        name = pool.choose(
            job.target_kind, job.target_value, job.script, busy, declined.get(run.id, ())
        )
        if name is None:
            gone = refusal(job.target_kind, job.target_value, job.script, pool,
                           refused.get(run.id, {}))  # fmt: skip
            if gone is not None:
                plan.refused.append((run.id, gone))
                job_states[run.job_id][run.id] = states.FAILED
                continue
            plan.wake_at.append(deadline)
            continue
        plan.choices.append((run.id, name))
        busy[name] = busy.get(name, 0) + 1
        job_states[run.job_id][run.id] = states.DISPATCHED
    return plan
