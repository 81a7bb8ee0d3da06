"""Turning due occurrences and ended runs into run rows.  These functions run on the database
thread (``await db.call(fire_due, now)``) and compose the store's queries; the decisions come
from desktop.core (misfire, policies) and decisions.py.

Crash safety: runs are created (unique per job + occurrence + attempt) BEFORE the job's next
fire time moves on.  A crash in between makes the next start see the same occurrences due again,
and the unique index turns the second creation into a no-op, so nothing runs twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from desktop.core import runs as states
from desktop.core import schedules
from desktop.core.misfire import DEFAULT_GRACE, plan_misfire
from desktop.core.policies import retry_delay, should_retry
from desktop.core.secretbox import SecretKeyError
from desktop.scheduler import decisions as d
from desktop.scheduler.decisions import on_occurrence
from desktop.scheduler.pool import WorkerPool
from desktop.store import cluster, queries, scheduling
from desktop.store import secrets as job_secrets
from desktop.store.errors import JobDeletedMeanwhile, NotFound
from desktop.store.records import ActiveRun, JobRecord, RunRecord

log = logging.getLogger(__name__)


@dataclass
class Fired:
    runs: list[RunRecord] = field(default_factory=list)  # new rows (queued or skipped)
    job_ids: list[int] = field(default_factory=list)  # jobs whose next fire time moved
    missed: int = 0


def fire_due(now: datetime, grace: timedelta = DEFAULT_GRACE) -> Fired:
    return fire_jobs(queries.due_jobs(now), now, grace)


def fire_jobs(jobs: list[JobRecord], now: datetime, grace: timedelta = DEFAULT_GRACE) -> Fired:
    """Fire these due jobs (queries.due_jobs) in one transaction."""
    fired = Fired()
    if not jobs:
        return fired
    active: dict[int, list[str]] = {}
    for run in queries.active_run_states():
        active.setdefault(run.job_id, []).append(run.state)
    with scheduling.joined():  # one commit for every job due at this instant (the pass's)
        cluster.fence()
        for job in jobs:
            try:
                _fire_job(job, now, grace, active.setdefault(job.id, []), fired)
            except NotFound:
                continue  # deleted meanwhile
            fired.job_ids.append(job.id)
    return fired


def _fire_job(
    job: JobRecord, now: datetime, grace: timedelta, job_states: list[str], fired: Fired
) -> None:
    try:
        schedule = schedules.parse(job.schedule)
    except schedules.ScheduleError as exc:
        log.error(
            "job %r has an unreadable schedule (%s); it will not fire until edited", job.name, exc
        )
        queries.set_next_fire(job.id, None)
        return
    plan = plan_misfire(schedule, job.next_fire_at, now, job.misfire_policy, job.misfire_cap, grace)
    for at in plan.run:
        if on_occurrence(job.concurrency, job_states) == "run":
            record = queries.create_run(job.id, at)
        else:
            record = queries.create_run(
                job.id,
                at,
                state=states.SKIPPED,
                reason=f"the previous run was still active (concurrency: {job.concurrency})",
            )
        if record is not None:
            fired.runs.append(record)
            job_states.append(record.state)
    if plan.missed:
        more = plan.missed_count - len(plan.missed)
        reason = (
            f"not run: it came due while the console was not running or was late "
            f"(misfire policy {job.misfire_policy})"
        )
        if more > 0:
            reason += f"; {more}{'' if plan.missed_count_exact else '+'} earlier ones not listed"
        fired.missed += queries.record_missed(job.id, plan.missed, reason)
    recorded = plan.run + plan.missed
    queries.set_next_fire(job.id, plan.next_fire, max(recorded) if recorded else None)


@dataclass
class Pass:
    """What one scheduler pass did on the database thread, for the loop to announce and send."""

    fired: Fired
    changed: list[RunRecord]  # dispatched or expired by this pass (fired ones are in fired)
    dispatched: list[RunRecord]  # to send to their workers now
    active: list[ActiveRun]  # the active runs after the pass
    jobs: dict[int, JobRecord]  # the jobs of those runs
    wake_at: datetime | None  # when the next pass is due (None: only when woken)
    retries: list[RunRecord] = field(default_factory=list)  # planned for runs that ended
    # the sweep for retries owed found a full batch: sweep again next pass
    sweep_more: bool = False
    # the dispatched runs' jobs' secrets (job id -> values, or why they cannot be opened)
    secrets: dict[int, dict[str, str] | SecretKeyError] = field(default_factory=dict)


def run_pass(
    now: datetime,
    workers: WorkerPool | Callable[[], WorkerPool] | list[d.WorkerView],
    declined: dict[int, frozenset[str]],
    grace: timedelta = DEFAULT_GRACE,
    lead: timedelta = timedelta(0),
    refused: dict[int, dict[str, str]] | None = None,
    ended: list[RunRecord] | None = None,
    sweep_since: datetime | None = None,
) -> Pass:
    """A whole scheduler pass in ONE trip to the database thread: plan the retries of the
    runs that ENDED since the last pass, fire what is due within ``lead`` from now, then plan
    (decisions.plan_dispatch, with the hub's workers as they were when the pass began) and
    record the dispatches and expired queue waits; once that is committed, read the dispatched
    jobs' secrets.  The loop sends the dispatch frames after this returns; a worker that left
    meanwhile makes the send fail and the run is queued again.  ``wake_at`` is the next fire
    time less ``lead``.  (Retries and secrets were trips of their own, each on the way from a
    run's end to the next dispatch.)  With ``sweep_since`` the pass also plans the retries
    owed by runs that ended since then (sweep_retries)."""
    horizon = now + lead
    # One transaction for all of it: the retries, new runs and their dispatch commit together,
    # and the reads share it (each read in a transaction of its own was three round trips on
    # PostgreSQL: 19 per pass).  Only the leader fires, dispatches and plans retries: each of
    # those writes fences first (desktop/store/cluster.py).
    with scheduling.transaction():
        retries = plan_retries(ended, now) if ended else []
        swept = sweep_retries(sweep_since, now) if sweep_since is not None else None
        if swept is not None:
            retries += swept[0]
        # the earliest fire time first: most passes (a run ended, run now) have nothing due,
        # and then it is also the pass's answer for when to wake
        next_fire = queries.earliest_next_fire()
        fired = Fired()
        if next_fire is not None and next_fire <= horizon:
            due = queries.due_jobs(horizon)
            if due:
                cluster.fence()
                fired = fire_jobs(due, horizon, grace)
                next_fire = queries.earliest_next_fire()  # firing moved it
        done = _pass(now, workers, declined, fired, lead, refused, next_fire)
        done.retries = retries
        done.sweep_more = swept is not None and swept[1]
    if done.dispatched:
        # after the commit, in the same trip: opening the key may wait on the OS keyring (an
        # unlock prompt), and no lock or open transaction may wait with it
        done.secrets = job_secrets.values_for_jobs({r.job_id for r in done.dispatched})
    return done


def _pass(
    now: datetime,
    workers: WorkerPool | Callable[[], WorkerPool] | list[d.WorkerView],
    declined: dict[int, frozenset[str]],
    fired: Fired,
    lead: timedelta,
    refused: dict[int, dict[str, str]] | None = None,
    next_fire: datetime | None = None,
) -> Pass:
    """The dispatch half of a pass; NEXT_FIRE is the earliest next fire time after firing."""
    active = queries.active_run_states()
    jobs = queries.jobs_by_ids({r.job_id for r in active if r.state == states.QUEUED})
    plan = d.plan_dispatch(active, jobs, workers, declined, now, refused)
    changed: list[RunRecord] = []
    dispatched: list[RunRecord] = []
    ends = [(run_id, states.MISSED, reason) for run_id, reason in plan.expired]
    ends += [(run_id, states.FAILED, reason) for run_id, reason in plan.refused]
    if ends or plan.choices:
        with scheduling.joined():  # the pass's transaction
            cluster.fence()  # only the leader dispatches
            for run_id, state, reason in ends:
                try:
                    changed.append(queries.transition_run(run_id, state, reason=reason))
                except (states.TransitionError, NotFound) as exc:
                    log.info("run %s not moved to %s: %s", run_id, state, exc)
            dispatched = scheduling.dispatch_runs(plan.choices, now)
        changed += dispatched
        moved = {r.id: r for r in changed}
        active = [
            r._replace(state=m.state, worker_name=m.worker_name, dispatched_at=m.dispatched_at)
            if (m := moved.get(r.id))
            else r
            for r in active
        ]
        active = [r for r in active if r.state in states.ACTIVE]
    wake_at = d.earliest([next_fire - lead if next_fire else None, *plan.wake_at])
    return Pass(fired, changed, dispatched, active, jobs, wake_at)


def plan_retries(runs: list[RunRecord], now: datetime, from_end: bool = False) -> list[RunRecord]:
    """plan_retry for many ended runs (their records as just committed) in one transaction;
    returns the new retry rows.  Runs of jobs without retries cost one shared query and no
    write; plan_retry reads each candidate again in its transaction, so a record that aged
    meanwhile (lost, then the real result) decides nothing."""
    max_retries = queries.max_retries_of({r.job_id for r in runs})
    wanted = [
        r
        for r in runs
        if r.job_id in max_retries and should_retry(r.state, r.attempt, max_retries[r.job_id])
    ]
    if not wanted:
        return []
    out = []
    with scheduling.joined():  # the pass's transaction, or one of its own
        cluster.fence()
        for run in wanted:
            record = plan_retry(run.id, now, from_end)
            if record is not None:
                out.append(record)
    return out


# How far back a starting scheduler looks for runs whose retry was never planned (it stopped
# between their end and its next pass): a console down over a long weekend loses none.
RETRY_SWEEP_WINDOW = timedelta(days=7)
RETRY_SWEEP_BATCH = 500


def sweep_retries(since: datetime, now: datetime) -> tuple[list[RunRecord], bool]:
    """At a scheduler's start (a console started, or became the leader): plan the retries that
    a scheduler which stopped before its pass owed (the runs it kept in memory are gone).
    Planned once: the unique (job, occurrence, attempt) index turns a second plan, by a racing
    pass or console, into a no-op, and a run with a next attempt is not found again.  Returns
    the new retry rows, and whether a full batch was found (more may be owed)."""
    owed = queries.runs_owed_a_retry(since, RETRY_SWEEP_BATCH)
    if owed:
        log.warning(
            "planning %d retr%s not planned before the scheduler last stopped",
            len(owed),
            "y" if len(owed) == 1 else "ies",
        )
    return plan_retries(owed, now, from_end=True) if owed else [], len(owed) >= RETRY_SWEEP_BATCH


def plan_retry(run_id: int, now: datetime, from_end: bool = False) -> RunRecord | None:
    """After a run ended: the next attempt's row (queued, waiting until its backoff delay has
    passed) if the job's retry policy wants one; None otherwise or when it already exists.
    ``from_end``: the delay counts from the run's end, not from now (a retry swept up after a
    restart waits no longer than it would have, and one already due goes at once)."""
    run = queries.get_run(run_id)
    if run is None:
        return None
    job = queries.get_job(run.job_id)
    if job is None or not should_retry(run.state, run.attempt, job.max_retries):
        return None
    delay = timedelta(
        seconds=retry_delay(
            run.attempt, job.retry_delay_seconds, job.retry_backoff, job.retry_max_delay_seconds
        )
    )
    not_before = now + delay
    if from_end and run.finished_at is not None:
        not_before = d.retry_after_end(run.finished_at, delay, now)
    return queries.create_run(
        job.id,
        run.scheduled_at,
        attempt=run.attempt + 1,
        trigger=states.RETRY,
        args=run.args,
        not_before=not_before,
        reason=f"retry {run.attempt} of {job.max_retries}: attempt {run.attempt} was {run.state}",
    )


def manual_run(job_id: int, now: datetime, args: list[str] | None = None) -> RunRecord:
    """A "run now" row; the occurrence is the request time (unique to the microsecond)."""
    result = manual_runs([(job_id, args)], now)[0]
    if isinstance(result, Exception):
        raise result
    return result


# A group of "run now" requests is written again this often when a job is deleted between the
# group's read of its jobs and its INSERT (each time reads the jobs anew).
MANUAL_TRIES = 3


def manual_runs(
    requests: list[tuple[int, list[str] | None]], now: datetime
) -> list[RunRecord | NotFound]:
    """Many "run now" rows in ONE transaction (requests that arrived together), in order; a
    request for a job that no longer exists gets its NotFound instead of a row.  Each request's
    occurrence is ``now`` plus its index in microseconds, bumped further if already taken.
    A job deleted after the group read it fails only its own request: the transaction is done
    again, and that job is then missing from the read."""
    for _ in range(MANUAL_TRIES - 1):
        try:
            return _manual_runs(requests, now)
        except JobDeletedMeanwhile:
            log.info("a job was deleted while a group of run-now requests was written; again")
    return _manual_runs(requests, now)  # jobs deleted every time: the error is the group's


def _manual_runs(
    requests: list[tuple[int, list[str] | None]], now: datetime
) -> list[RunRecord | NotFound]:
    out: list[RunRecord | NotFound] = []
    with scheduling.transaction():
        batch = [
            (job_id, now + timedelta(microseconds=index), args, _manual_reason(args))
            for index, (job_id, args) in enumerate(requests)
        ]
        made = queries.create_manual_runs(batch, states.MANUAL)
        if made is not None:
            # an occurrence taken meanwhile: create_run bumps it
            return [
                _manual_row(job_id, at, args) if record is None else record
                for (job_id, at, args, _), record in zip(batch, made)
            ]
        # one by one where the database has no INSERT ... RETURNING
        for index, (job_id, args) in enumerate(requests):
            try:
                out.append(_manual_row(job_id, now + timedelta(microseconds=index), args))
            except NotFound as exc:
                out.append(exc)
    return out


def _manual_reason(args: list[str] | None) -> str:
    return "run now" + (" with arguments " + " ".join(args) if args else "")


def _manual_row(job_id: int, at: datetime, args: list[str] | None) -> RunRecord:
    reason = _manual_reason(args)
    for bump in range(1000):
        record = queries.create_run(
            job_id,
            at + timedelta(microseconds=bump),
            trigger=states.MANUAL,
            args=args,
            reason=reason,
        )
        if record is not None:
            return record
    raise RuntimeError("could not record a manual run")
