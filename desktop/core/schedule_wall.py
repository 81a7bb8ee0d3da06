"""Local wall time -> UTC instant, with the scheduler's DST rules (pure, no I/O).

DESIGN.md: a local time that does not exist (spring forward) fires at the first instant after
the gap; a local time that happens twice (fall back) fires once, at its first occurrence.

``resolve`` is monotone non-decreasing in wall time, which is what lets the schedule kinds walk
wall times in order and stop at the first one that resolves strictly after a given instant.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

UTC = timezone.utc
_SECOND = timedelta(seconds=1)


def local_wall(instant: datetime, tz: tzinfo) -> datetime:
    """The naive local wall time of an aware instant."""
    return instant.astimezone(tz).replace(tzinfo=None)


def resolve(wall: datetime, tz: tzinfo) -> datetime:
    """The aware-UTC instant at which the naive local ``wall`` time fires in ``tz``."""
    first = wall.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant  # exists; fold=0 is the first of two occurrences when it is ambiguous
    return _gap_end(wall, tz)


def _gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The transition instant that ends the gap ``wall`` falls in."""
    # In a gap, fold=0 uses the offset before the jump and fold=1 the offset after it, so the
    # transition lies in (late, early]; zone transitions are on whole seconds, so bisect seconds.
    before = wall.replace(tzinfo=tz, fold=0).utcoffset()
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    lo, hi = late, early  # offset(lo) == before, offset(hi) != before
    while hi - lo > _SECOND:
        mid = lo + timedelta(seconds=(hi - lo) // _SECOND // 2)
        if mid.astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi
