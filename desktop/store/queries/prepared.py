"""Hot statements with their SQL built once, and multi-row inserts for the hot path.

The compiled-statement cache (``_compiled``) lives here and only here: every module of the
package shares it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import peewee

from desktop.store.models import database_proxy
from desktop.store.queries.common import _is_sqlite

# Parameters per INSERT statement: SQLite before 3.32 allows 999, SQL Server 2100, PostgreSQL
# 65535; fewer, larger statements matter most over a network.
ROW_PARAMS_LIMIT = {"sqlite": 990, "postgresql": 20_000}

IN_BATCH = 500  # ids per IN (...): under every database's parameter limit
PAGE = 100  # executions per round trip on PostgreSQL (_execute_each)


# --- hot statements with their SQL built once -------------------------------------------------
# peewee rebuilds a query's SQL on every execution; for the scheduler's and the hub's per-run
# statements that was most of their cost (get_job 1.2 ms, of which ~1 ms building SQL; a third
# of the database thread's time at 450 runs/s).  The statement is built once per kind of
# database with placeholder values standing for the parameters, then only executed.

_ID = -7_654_321  # placeholder k stands for _ID - k while the SQL is built
_compiled: dict[tuple, tuple[str, list[tuple[bool, Any]]]] = {}


def _compile(key: tuple, build: Callable[..., Any], n: int) -> tuple[str, list[tuple[bool, Any]]]:
    """``build(*n placeholders)``'s SQL, once per (database type, key), and for each parameter
    either (True, index of the value it stands for) or (False, the constant peewee put there).
    Each placeholder is distinct because peewee may reorder them (UPDATE sorts its columns)."""
    full = (type(database_proxy.obj), *key)
    if full not in _compiled:
        # converter=False: the placeholder reaches the parameters as it is (a text column
        # would otherwise turn it into a string); values are passed as the driver takes them
        marks = [peewee.Value(_ID - k, converter=False) for k in range(n)]
        sql, params = build(*marks).sql()
        slots = []
        for param in params:
            is_mark = type(param) is int and _ID - n < param <= _ID
            slots.append((True, _ID - param) if is_mark else (False, param))
        _compiled[full] = (sql, slots)
    return _compiled[full]


def _bind(slots: list[tuple[bool, Any]], values: Sequence[Any]) -> list[Any]:
    return [values[v] if is_value else v for is_value, v in slots]


def _prepared(key: tuple, build: Callable[..., Any], values: Sequence[Any]) -> Any:
    """Execute ``build(*placeholders)``'s SQL, compiled once per (database type, key), with
    ``values`` in the placeholders' places.  Returns the cursor."""
    sql, slots = _compile(key, build, len(values))
    return database_proxy.execute_sql(sql, _bind(slots, values))


def _inserted_id(cursor) -> int:
    """The new row's id: RETURNING where the database has it (PostgreSQL), else lastrowid."""
    if cursor.description:
        return cursor.fetchone()[0]
    return cursor.lastrowid


def _rows(cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def _by_id(name: str, build: Callable[[int], Any], row_id: int) -> list[dict[str, Any]]:
    """Raw rows of ``build(row_id)``, whose SQL is compiled once per database type."""
    return _rows(_prepared((name,), build, [row_id]))


def _by_ids(name: str, build: Callable[[list], Any], ids: Iterable[int]) -> list[dict[str, Any]]:
    """Raw rows of ``build(ids)`` (an IN list), in chunks of IN_BATCH; the SQL is compiled once
    per list length."""
    wanted = sorted(set(ids))
    out: list[dict[str, Any]] = []
    for start in range(0, len(wanted), IN_BATCH):
        chunk = wanted[start : start + IN_BATCH]
        out += _rows(_prepared((name, len(chunk)), lambda *p: build(list(p)), chunk))
    return out


def _execute_many(sql: str, rows: list[list[Any]]) -> None:
    """One statement executed for each row (see :func:`_execute_each`)."""
    _execute_each([(sql, rows)])


def _execute_each(statements: Sequence[tuple[str, list[list[Any]]]]) -> None:
    """Each (statement, rows) executed for each of its rows, in order.  psycopg2's executemany
    sends every row in a round trip of its own (19 ms per commit batch on PostgreSQL, most of
    it waiting); here up to 100 executions, of whichever statements, share one trip (what
    psycopg2's execute_batch does for one statement), each still its own statement."""
    if not any(rows for _, rows in statements):
        return
    cursor = database_proxy.cursor()
    # driver errors as peewee's, like execute_sql (the wrapper is missing from peewee's stubs)
    with peewee.__exception_wrapper__:  # type: ignore[attr-defined]
        if isinstance(database_proxy.obj, peewee.PostgresqlDatabase):
            parts = [cursor.mogrify(sql, row) for sql, rows in statements for row in rows]
            for start in range(0, len(parts), PAGE):
                cursor.execute(b";".join(parts[start : start + PAGE]))
        else:
            for sql, rows in statements:
                if rows:
                    cursor.executemany(sql, rows)


def returning_supported() -> bool:
    """INSERT ... RETURNING: PostgreSQL, and SQLite from 3.35."""
    database = database_proxy.obj
    if isinstance(database, peewee.SqliteDatabase):
        return sqlite3.sqlite_version_info >= (3, 35, 0)
    return isinstance(database, peewee.PostgresqlDatabase)


def _insert_returning(
    model, fields, rows: list[tuple], returning: Sequence[str], on_conflict_skip: bool = False
) -> list[tuple]:
    """One multi-row INSERT per batch under the parameter limit; the RETURNING columns of the
    new rows, in no promised order (only where :func:`returning_supported`).  With
    ``on_conflict_skip`` a row a unique index refuses is left out (ON CONFLICT DO NOTHING:
    SQLite 3.24+, PostgreSQL)."""
    database = database_proxy.obj
    left, right = database.quote
    table = f"{left}{model._meta.table_name}{right}"
    columns = ", ".join(f"{left}{f.column_name}{right}" for f in fields)
    placeholder = "(" + ", ".join([database.param] * len(fields)) + ")"
    back = ", ".join(f"{left}{name}{right}" for name in returning)
    limit = ROW_PARAMS_LIMIT["sqlite" if _is_sqlite() else "postgresql"]
    per_statement = max(1, limit // len(fields))
    out: list[tuple] = []
    for start in range(0, len(rows), per_statement):
        batch = rows[start : start + per_statement]
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES "
            + ", ".join([placeholder] * len(batch))
            + (" ON CONFLICT DO NOTHING" if on_conflict_skip else "")
            + f" RETURNING {back}"
        )
        cursor = database.execute_sql(sql, [value for row in batch for value in row])
        out += [tuple(row) for row in cursor.fetchall()]
    return out


def _insert_rows(model, fields, rows: list[tuple]) -> None:
    """Plain multi-row INSERTs for the hot path: peewee's insert_many spends most of its time
    building SQL for each value; this builds the statement once per batch size.  Portable SQL
    (SQLite, PostgreSQL, SQL Server); batches stay under every driver's parameter limit."""
    if not rows:
        return
    database = database_proxy.obj
    left, right = database.quote  # the database's identifier quotes, e.g. '""'
    table = f"{left}{model._meta.table_name}{right}"
    columns = ", ".join(f"{left}{f.column_name}{right}" for f in fields)
    placeholder = "(" + ", ".join([database.param] * len(fields)) + ")"
    limit = ROW_PARAMS_LIMIT["sqlite" if _is_sqlite() else "postgresql"]
    per_statement = max(1, limit // len(fields))
    statements: dict[int, str] = {}
    for start in range(0, len(rows), per_statement):
        batch = rows[start : start + per_statement]
        sql = statements.get(len(batch))
        if sql is None:
            sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([placeholder] * len(batch))
            statements[len(batch)] = sql
        database.execute_sql(sql, [value for row in batch for value in row])
