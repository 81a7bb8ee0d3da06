"""The scheduler's decisions as pure functions: which worker, whether a run may start, when a
queued run has waited too long, when an in-flight run counts as lost.  No I/O; time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from desktop.core import runs as states

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


def choose_worker(
    target_kind: str,
    target_value: str,
    script: str,
    workers: Iterable[WorkerView],
    exclude: Iterable[str] = (),
) -> str | None:
    """The least busy eligible worker with a free slot (fewest busy per slot, then fewest
    busy, then by name so the choice is stable), or None."""
    excluded = set(exclude)
    free = [
        w
        for w in eligible(target_kind, target_value, script, workers)
        if w.busy < w.slots and w.name not in excluded
    ]
    if not free:
        return None
    return min(free, key=lambda w: (w.busy / w.slots, w.busy, w.name)).name


def why_no_worker(
    target_kind: str, target_value: str, script: str, workers: Iterable[WorkerView]
) -> str:
    """A reason for a person, when choose_worker found nobody."""
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


def earliest(times: Iterable[datetime | None]) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None
