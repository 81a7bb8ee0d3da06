"""UTC helpers.  The store keeps naive UTC datetimes (portable to every database); the rest of
the code works with aware datetimes.  These two functions are the only crossing point."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload

UTC = timezone.utc


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def to_naive_utc(dt: datetime) -> datetime: ...
@overload
def to_naive_utc(dt: None) -> None: ...
def to_naive_utc(dt: datetime | None) -> datetime | None:
    """Aware (any zone) -> naive UTC for storage.  A naive input is taken to be UTC already."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


@overload
def from_naive_utc(dt: datetime) -> datetime: ...
@overload
def from_naive_utc(dt: None) -> None: ...
def from_naive_utc(dt: datetime | None) -> datetime | None:
    """Naive UTC from storage -> aware UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
