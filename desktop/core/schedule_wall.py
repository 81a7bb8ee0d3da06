"""Local wall time -> UTC instant, with the scheduler's DST rules (pure, no I/O).

DESIGN.md: a local time that does not exist (spring forward) fires at the first instant after
the gap; a local time that happens twice (fall back) fires once, at its first occurrence.

``resolve`` is monotone non-decreasing in wall time, which is what lets the schedule kinds walk
wall times in order and stop at the first one that resolves strictly after a given instant.

These run for every next-fire computation, so they avoid ``datetime.replace`` (slow) and work
with naive datetimes plus ``tzinfo.utcoffset`` (PEP 495: ``fold=0`` gives the offset before a
transition, ``fold=1`` the offset after it).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

UTC = timezone.utc
_SECOND = timedelta(seconds=1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def local_wall(instant: datetime, tz: tzinfo) -> datetime:
    """The naive local wall time of an aware instant."""
    offset = instant.astimezone(tz).utcoffset()
    return _NAIVE_EPOCH + (instant - _UTC_EPOCH) + offset  # type: ignore[operator]


def resolve(wall: datetime, tz: tzinfo) -> datetime:
    """The aware-UTC instant at which the naive local ``wall`` time fires in ``tz``."""
    before = tz.utcoffset(wall)  # naive wall, fold=0: the offset before any transition here
    after = tz.utcoffset(_with_fold(wall))
    if before >= after:  # type: ignore[operator]
        # Not in a gap.  When the time is ambiguous, the offset before the fall-back is the
        # first occurrence.
        return _UTC_EPOCH + (wall - _NAIVE_EPOCH - before)  # type: ignore[operator,no-any-return]
    return _gap_end(wall, tz, before, after)  # type: ignore[arg-type]


def _with_fold(wall: datetime) -> datetime:
    return datetime(
        wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, wall.microsecond,
        fold=1,
    )  # fmt: skip


def _gap_end(wall: datetime, tz: tzinfo, before: timedelta, after: timedelta) -> datetime:
    """The transition instant that ends the gap ``wall`` falls in (a rare path)."""
    # Read with the old offset the wall time is at or after the jump; read with the new one it
    # is before it.  Zone transitions are on whole seconds, so bisect seconds in between.
    lo = _UTC_EPOCH + (wall - _NAIVE_EPOCH - after)
    hi = _UTC_EPOCH + (wall - _NAIVE_EPOCH - before)
    while hi - lo > _SECOND:
        mid = lo + timedelta(seconds=(hi - lo) // _SECOND // 2)
        if mid.astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi
