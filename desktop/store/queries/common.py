"""The shared helpers of the store's operations: transactions, time conversions, the change
marker and the audit writer.  The underscore names are the package's internals, shared by its
modules; code outside desktop.store uses the package face (``queries.create_job``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, overload

import peewee

from desktop.core.timeutil import from_naive_utc, to_naive_utc, utcnow
from desktop.store.migrations import joined_transaction, write_transaction
from desktop.store.models import AuditEvent, ChangeCounter, database_proxy


def _tuples(query: Any) -> Iterator[tuple[Any, ...]]:
    """``query.tuples()``: peewee's bundled stubs type its rows as models, not tuples."""
    return iter(query.tuples())


def _write():
    return write_transaction(database_proxy)


def _joined():
    """The caller's transaction, or a new one: writes that need no savepoint of their own."""
    return joined_transaction(database_proxy)


def _read():
    """Reads in one transaction (one snapshot), or in the caller's: a savepoint around reads
    would undo nothing and costs two round trips on PostgreSQL (a scheduler pass makes several
    reads inside its transaction)."""
    if database_proxy.transaction_depth() > 0:
        return contextlib.nullcontext()
    return database_proxy.atomic()


def _now() -> datetime:
    return to_naive_utc(utcnow())


@overload
def _naive(dt: datetime) -> datetime: ...
@overload
def _naive(dt: None) -> None: ...
def _naive(dt: datetime | None) -> datetime | None:
    return to_naive_utc(dt)


@overload
def _aware(dt: datetime) -> datetime: ...
@overload
def _aware(dt: None) -> None: ...
def _aware(dt: datetime | None) -> datetime | None:
    return from_naive_utc(dt)


def _bump() -> None:
    ChangeCounter.update(counter_value=ChangeCounter.counter_value + 1).where(
        ChangeCounter.id == 1
    ).execute()


def _audit(actor: str, action: str, kind: str, name: str, detail: str = "") -> None:
    AuditEvent.create(
        at=_now(),
        actor=(actor or "unknown")[:200],
        action=action[:50],
        entity_kind=kind[:20],
        entity_name=name[:200],
        detail=detail[:4000],
    )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _dt(value: Any) -> datetime | None:
    """A raw driver value -> aware UTC (SQLite hands back text, PostgreSQL naive datetimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc)


def _dt_set(value: Any) -> datetime:
    """_dt for a NOT NULL column."""
    when = _dt(value)
    if when is None:
        raise ValueError("a NOT NULL time column holds NULL")
    return when


def _raw_dicts(query) -> Iterator[dict[str, Any]]:
    """Rows as dicts of raw driver values, skipping peewee's per-field conversion: with
    100,000 jobs that conversion was most of list_jobs' time."""
    cursor = database_proxy.execute(query)
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row))


def _is_sqlite() -> bool:
    return isinstance(database_proxy.obj, peewee.SqliteDatabase)


def change_marker() -> int:
    """A number that grows with every job, worker and setting change made by any process."""
    value = ChangeCounter.select(ChangeCounter.counter_value).where(ChangeCounter.id == 1).scalar()
    return int(value or 0)
