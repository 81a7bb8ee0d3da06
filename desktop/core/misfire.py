"""What to do with occurrences that came due while the scheduler was not looking (pure).

``due`` is the job's stored next fire time: its first occurrence not yet recorded.  Every
occurrence in ``[due, now]`` is due now (``due`` counts even if the schedule was edited since).

Precisely:

* The **latest** due occurrence is *on time* when ``now - latest <= grace``: it runs under every
  policy (this is the normal case: the scheduler woke a little late).
* Everything else is *late* and the policy decides:

  - ``skip``: late occurrences are missed; the latest runs only if it is on time.
  - ``run_once``: the latest occurrence runs (on time or not); all earlier ones are missed.
  - ``run_all``: the latest ``cap`` occurrences run, oldest first; earlier ones are missed.

* ``missed`` lists at most ``list_cap`` missed occurrences, the most recent ones (those just
  before the runs), in order; ``missed_count`` counts all of them.  The work is bounded: a job
  every second that was down for a month does not build 2.6 million datetimes.  Interval
  schedules are counted by arithmetic; other kinds are counted by walking at most
  ``count_limit`` occurrences, and if there are more, ``missed_count`` is a lower bound and
  ``missed_count_exact`` is False ("at least N missed").
* ``next_fire`` is ``schedule.next_after(now)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from desktop.core.schedules import IntervalSchedule, Schedule

MISFIRE_POLICIES = ("skip", "run_once", "run_all")
DEFAULT_GRACE = timedelta(seconds=60)
MISSED_LIST_CAP = 100
COUNT_LIMIT = 10_000  # ~0.2 s of walking for the slowest kind (cron)


@dataclass(frozen=True)
class MisfirePlan:
    run: list[datetime]
    missed: list[datetime]
    next_fire: datetime | None
    missed_count: int = 0  # every missed occurrence, listed or not
    missed_count_exact: bool = True


def plan_misfire(
    schedule: Schedule,
    due: datetime | None,
    now: datetime,
    policy: str,
    cap: int,
    grace: timedelta = DEFAULT_GRACE,
    *,
    list_cap: int = MISSED_LIST_CAP,
    count_limit: int = COUNT_LIMIT,
) -> MisfirePlan:
    if policy not in MISFIRE_POLICIES:
        raise ValueError(f"unknown misfire policy {policy!r}; use one of {MISFIRE_POLICIES}")
    if cap < 1:
        raise ValueError(f"misfire cap must be at least 1, got {cap}")
    if grace < timedelta(0) or list_cap < 0 or count_limit < 1:
        raise ValueError("grace, list_cap and count_limit must not be negative")
    for name, value in (("due", due), ("now", now)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} is a naive datetime; pass an aware instant")

    next_fire = schedule.next_after(now)
    if due is None or due > now:
        return MisfirePlan(run=[], missed=[], next_fire=next_fire)

    want = {"skip": 1, "run_once": 1, "run_all": cap}[policy]
    recent = _latest(schedule, due, now, want + list_cap)
    total, exact = _count(schedule, due, now, count_limit)
    total = max(total, len(recent))

    latest = recent[-1]
    on_time = now - latest <= grace
    n_run = int(on_time) if policy == "skip" else min(want, len(recent))
    split = len(recent) - n_run
    return MisfirePlan(
        run=recent[split:],
        missed=recent[:split][-list_cap:] if list_cap else [],
        next_fire=next_fire,
        missed_count=total - n_run,
        missed_count_exact=exact,
    )


def _occurrences(
    schedule: Schedule, start: datetime, now: datetime, limit: int | None = None
) -> list[datetime]:
    """``start`` and the occurrences after it up to ``now``, at most ``limit`` items."""
    out = [start]
    current = start
    while limit is None or len(out) < limit:
        following = schedule.next_after(current)
        if following is None or following > now:
            break
        out.append(following)
        current = following
    return out


def _interval_grid(
    schedule: IntervalSchedule, due: datetime, now: datetime
) -> tuple[datetime | None, int]:
    """(first, count): the grid points strictly after ``due`` and up to ``now``."""
    first = schedule.next_after(due)
    if first is None or first > now:
        return first, 0
    return first, (now - first) // schedule.step + 1


def _latest(schedule: Schedule, due: datetime, now: datetime, k: int) -> list[datetime]:
    """The most recent ``k`` occurrences in [due, now] (``due`` itself counts), oldest first."""
    if isinstance(schedule, IntervalSchedule):
        first, count = _interval_grid(schedule, due, now)
        step = schedule.step
        found: list[datetime] = (
            [] if first is None else [first + (count - 1 - i) * step for i in range(min(k, count))]
        )[::-1]
        # `due` may be off the grid after an edit of the schedule; it is due all the same
        return ([due] if len(found) < k else []) + found
    # Look back from `now` over a window that doubles until it holds k occurrences: the walk
    # stays proportional to k, not to the length of the downtime.
    window = timedelta(minutes=1)
    while True:
        start = now - window
        if start <= due:
            return _occurrences(schedule, due, now)[-k:]
        first = schedule.next_after(start - timedelta(microseconds=1))
        found = [] if first is None or first > now else _occurrences(schedule, first, now)
        if len(found) >= k:
            return found[-k:]
        window *= 2


def _count(schedule: Schedule, due: datetime, now: datetime, limit: int) -> tuple[int, bool]:
    """How many occurrences lie in [due, now], and whether that number is exact."""
    if isinstance(schedule, IntervalSchedule):
        return 1 + _interval_grid(schedule, due, now)[1], True
    found = _occurrences(schedule, due, now, limit + 1)
    return min(len(found), limit), len(found) <= limit
