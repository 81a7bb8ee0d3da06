"""The store's operations: plain synchronous functions, each one transaction, run on the
database thread (``await executor.call(queries.create_job, spec)``) or directly by the CLI.

They take and return plain values (records.py, aware UTC datetimes) and raise ValidationError,
NotFound, Conflict, AuthError or TransitionError for input the caller must reject.

Conventions the callers rely on:
- ``change_marker()`` grows with every job, worker and setting change, from any process.
- A run's ``last_seq`` is the highest worker message seq committed for it: ``append_output``
  advances it for output, ``transition_run(..., seq=N)`` or ``advance_seq`` for started/finished.
- Audit events are written in the same transaction as the change they describe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import peewee
from peewee import JOIN, fn

from desktop.core import runs as run_states
from desktop.core.timeutil import from_naive_utc, to_naive_utc, utcnow
from desktop.core.words import plural
from desktop.store import settings as settings_mod
from desktop.store import validation
from desktop.store.errors import AuthError, Conflict, NotFound, ValidationError
from desktop.store.migrations import write_transaction
from desktop.store.models import (
    AuditEvent,
    ChangeCounter,
    Job,
    JobSecret,
    Run,
    RunOutput,
    Setting,
    Worker,
    database_proxy,
)
from desktop.store.records import (
    JOB_SPEC_FIELDS,
    ActiveRun,
    AuditRecord,
    JobRecord,
    OutputChunk,
    RunRecord,
    WorkerRecord,
)

log = logging.getLogger(__name__)

IN_BATCH = 500  # ids per IN (...): under every database's parameter limit
INSERT_BATCH = 500  # rows per INSERT: well under every database's parameter limit
PRUNE_BATCH = 500
# Parameters per INSERT statement: SQLite before 3.32 allows 999, SQL Server 2100, PostgreSQL
# 65535; fewer, larger statements matter most over a network.
ROW_PARAMS_LIMIT = {"sqlite": 990, "postgresql": 20_000}
RUN_FIELDS = ("worker_name", "exit_code", "reason", "dispatched_at", "started_at", "finished_at")
_WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")


# --- helpers ----------------------------------------------------------------------------------


def _write():
    return write_transaction(database_proxy)


def _read():
    return database_proxy.atomic()


def _now() -> datetime:
    return to_naive_utc(utcnow())


def _naive(dt: datetime | None) -> datetime | None:
    return to_naive_utc(dt)


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


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'field: old -> new; ...' for the fields that differ (the audit detail of an update)."""
    parts = [
        f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}"
        for key in JOB_SPEC_FIELDS
        if old.get(key) != new.get(key)
    ]
    return "; ".join(parts)


def _display_tz() -> str:
    row = Setting.get_or_none(Setting.setting_key == "display_tz")
    return row.setting_value if row else settings_mod.DEFAULTS["display_tz"]


# --- jobs -------------------------------------------------------------------------------------

_LAST = Run.alias("last_run")


def _jobs_query():
    """Jobs with their newest run, in ONE statement: a correlated subquery per job walks the
    (job, id) index backwards, so 100,000 jobs list without an N+1 or a scan of all runs."""
    inner = Run.alias("inner_run")
    newest = inner.select(inner.id).where(inner.job == Job.id).order_by(inner.id.desc()).limit(1)
    return Job.select(
        Job,
        _LAST.id.alias("lr_id"),
        _LAST.state.alias("lr_state"),
        _LAST.scheduled_at.alias("lr_scheduled"),
        _LAST.started_at.alias("lr_started"),
        _LAST.finished_at.alias("lr_finished"),
    ).join(_LAST, JOIN.LEFT_OUTER, on=(_LAST.id == newest))


def _dt(value: Any) -> datetime | None:
    """A raw driver value -> aware UTC (SQLite hands back text, PostgreSQL naive datetimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc)


def _json_list(text: str) -> tuple:
    return () if text == "[]" else tuple(json.loads(text))


def _json_dict(text: str) -> dict:
    return {} if text == "{}" else json.loads(text)


def _raw_dicts(query) -> Iterator[dict[str, Any]]:
    """Rows as dicts of raw driver values, skipping peewee's per-field conversion: with
    100,000 jobs that conversion was most of list_jobs' time."""
    cursor = database_proxy.execute(query)
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row))


def _job_from_dict(row: dict[str, Any]) -> JobRecord:
    last_at = row.get("lr_finished") or row.get("lr_started") or row.get("lr_scheduled")
    return JobRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        script=row["script"],
        args=_json_list(row["args_json"]),
        env=_json_dict(row["env_json"]),
        target_kind=row["target_kind"],
        target_value=row["target_value"],
        schedule=json.loads(row["schedule_json"]),
        time_zone=row["time_zone"],
        enabled=bool(row["enabled"]),
        misfire_policy=row["misfire_policy"],
        misfire_cap=row["misfire_cap"],
        concurrency=row["concurrency"],
        timeout_seconds=row["timeout_seconds"],
        max_retries=row["max_retries"],
        retry_delay_seconds=row["retry_delay_seconds"],
        retry_backoff=float(row["retry_backoff"]),
        retry_max_delay_seconds=row["retry_max_delay_seconds"],
        queue_timeout_seconds=row["queue_timeout_seconds"],
        next_fire_at=_dt(row["next_fire_at"]),
        last_scheduled_at=_dt(row["last_scheduled_at"]),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        last_run_id=row.get("lr_id"),
        last_run_state=row.get("lr_state"),
        last_run_at=_dt(last_at),
    )


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


def mark_dispatched(choices: Sequence[tuple[int, str]], when: datetime) -> None:
    """queued -> dispatched for many (run id, worker) pairs; runs no longer queued (cancelled
    meanwhile) are left alone.  One statement, executed for each pair."""
    if not choices:
        return
    sql, slots = _compile(
        ("mark_dispatched",),
        lambda state, worker, at, rid: Run.update(
            {Run.state: state, Run.worker_name: worker, Run.dispatched_at: at}
        ).where((Run.id == rid) & (Run.state == run_states.QUEUED)),
        4,
    )
    at = _naive(when)
    rows = [_bind(slots, (run_states.DISPATCHED, worker, at, rid)) for rid, worker in choices]
    with peewee.__exception_wrapper__:  # driver errors as peewee's, like execute_sql
        database_proxy.cursor().executemany(sql, rows)


def update_runs(columns: tuple[str, ...], rows: list[Sequence[Any]]) -> None:
    """``UPDATE run SET columns... WHERE id = ?`` for many rows of (values..., run id), one
    statement executed many times: the hub writes a batch of reports this way."""
    if not rows:
        return
    sql, slots = _compile(
        ("update_run", columns),
        lambda *p: Run.update(dict(zip(columns, p[:-1]))).where(Run.id == p[-1]),
        len(columns) + 1,
    )
    with peewee.__exception_wrapper__:  # driver errors as peewee's, like execute_sql
        database_proxy.cursor().executemany(sql, [_bind(slots, row) for row in rows])


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


def _by_ids(name: str, build: Callable[[list], Any], ids: Sequence[int]) -> list[dict[str, Any]]:
    """Raw rows of ``build(ids)`` (an IN list), in chunks of IN_BATCH; the SQL is compiled once
    per list length."""
    ids = sorted(set(ids))
    out: list[dict[str, Any]] = []
    for start in range(0, len(ids), IN_BATCH):
        chunk = ids[start : start + IN_BATCH]
        out += _rows(_prepared((name, len(chunk)), lambda *p: build(list(p)), chunk))
    return out


def _fetch_job(job_id: int) -> JobRecord | None:
    rows = _by_id("job", lambda i: _jobs_query().where(Job.id == i), job_id)
    return _job_from_dict(rows[0]) if rows else None


def _job_exists(job_id: int) -> bool:
    return bool(_by_id("job_exists", lambda i: Job.select(Job.id).where(Job.id == i), job_id))


def _require_job(job_id: int) -> Job:
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist (deleted?)")
    return job


def _columns(spec: dict[str, Any]) -> dict[str, Any]:
    """A normalised spec -> Job column values."""
    cols = {k: v for k, v in spec.items() if k not in ("args", "env", "schedule")}
    cols["args_json"] = json.dumps(spec["args"], ensure_ascii=False)
    cols["env_json"] = json.dumps(spec["env"], sort_keys=True, ensure_ascii=False)
    cols["schedule_json"] = validation.schedule_text(spec["schedule"])
    return cols


def _next_fire_for(spec: dict[str, Any]) -> datetime | None:
    if not spec["enabled"]:
        return None
    return _naive(validation.next_fire(spec["schedule"], utcnow()))


def _name_taken(name: str, except_id: int | None = None) -> bool:
    query = Job.select(Job.id).where(Job.name == name)
    if except_id is not None:
        query = query.where(Job.id != except_id)
    return query.exists()


def create_job(spec: dict[str, Any], actor: str = "console") -> JobRecord:
    """Add a job.  Its next fire time is computed from now (None when disabled or manual)."""
    with _write():
        clean = validation.normalize_job_spec(spec, default_tz=_display_tz())
        if _name_taken(clean["name"]):
            raise ValidationError({"name": f"a job named {clean['name']!r} already exists"})
        now = _now()
        job = Job.create(
            **_columns(clean),
            next_fire_at=_next_fire_for(clean),
            created_at=now,
            updated_at=now,
        )
        _audit(actor, "created", "job", clean["name"], f"script {clean['script']}")
        _bump()
        return _fetch_job(job.id)


def _apply_update(job: Job, current: JobRecord, clean: dict[str, Any], actor: str) -> str:
    old = current.to_spec()
    detail = diff_specs(old, clean)
    if not detail:
        return ""
    cols = _columns(clean)
    timing_changed = (
        old["schedule"] != clean["schedule"]
        or old["time_zone"] != clean["time_zone"]
        or old["enabled"] != clean["enabled"]
    )
    if timing_changed:
        cols["next_fire_at"] = _next_fire_for(clean)
    cols["updated_at"] = _now()
    Job.update(**cols).where(Job.id == job.id).execute()
    _audit(actor, "updated", "job", clean["name"], detail)
    _bump()
    return detail


def update_job(job_id: int, changes: dict[str, Any], actor: str = "console") -> JobRecord:
    """Change some fields of a job (the rest stay).  A changed schedule, zone or enabled flag
    recomputes the next fire time from now."""
    with _write():
        job = _require_job(job_id)
        current = _fetch_job(job_id)
        unknown = [k for k in changes if k not in JOB_SPEC_FIELDS]
        if unknown:
            raise ValidationError({k: "is not a job field (typo?)" for k in unknown})
        merged = {**current.to_spec(), **changes}
        if "schedule" in changes and "time_zone" not in changes:
            merged["time_zone"] = (
                changes["schedule"].get("tz") if isinstance(changes["schedule"], dict) else None
            )
            if merged["time_zone"] is None:
                merged.pop("time_zone")
        clean = validation.normalize_job_spec(merged, default_tz=_display_tz())
        if clean["name"] != current.name and _name_taken(clean["name"], except_id=job_id):
            raise ValidationError({"name": f"a job named {clean['name']!r} already exists"})
        _apply_update(job, current, clean, actor)
        return _fetch_job(job_id)


def set_job_enabled(job_id: int, enabled: bool, actor: str = "console") -> JobRecord:
    return update_job(job_id, {"enabled": bool(enabled)}, actor)


def delete_job(job_id: int, actor: str = "console") -> None:
    """Delete a job with its runs and output.  Refused while it has queued or running runs:
    a worker would report results for a run that no longer exists."""
    with _write():
        job = _require_job(job_id)
        active = Run.select().where((Run.job == job_id) & (Run.state.in_(run_states.ACTIVE)))
        count = active.count()
        if count:
            raise Conflict(
                f"job {job.name!r} has {plural(count, 'queued or running run')}; cancel "
                f"{'it' if count == 1 else 'them'} or wait for {'it' if count == 1 else 'them'} "
                "to finish, then delete the job"
            )
        run_ids = Run.select(Run.id).where(Run.job == job_id)
        RunOutput.delete().where(RunOutput.run.in_(run_ids)).execute()
        Run.delete().where(Run.job == job_id).execute()
        JobSecret.delete().where(JobSecret.job == job_id).execute()  # issue 17: its secrets go
        Job.delete().where(Job.id == job_id).execute()
        _audit(actor, "deleted", "job", job.name, f"script {job.script}")
        _bump()


def get_job(job_id: int) -> JobRecord | None:
    with _read():
        return _fetch_job(job_id)


def job_names() -> list[tuple[int, str]]:
    """(id, name) of every job: enough to decide which jobs a first screen shows."""
    with _read():
        return list(Job.select(Job.id, Job.name).tuples())


def jobs_with_last_run(job_ids: Iterable[int]) -> list[JobRecord]:
    """list_jobs for just these jobs (each with its newest run)."""
    with _read():
        rows = _by_ids(
            "jobs_with_last_run", lambda ids: _jobs_query().where(Job.id.in_(ids)), job_ids
        )
        return [_job_from_dict(r) for r in rows]


def jobs_by_ids(job_ids: Iterable[int]) -> dict[int, JobRecord]:
    """The jobs that exist among ``job_ids`` (without their newest run: the scheduler's view)."""
    with _read():
        rows = _by_ids("jobs_by_ids", lambda ids: Job.select().where(Job.id.in_(ids)), job_ids)
        return {r["id"]: _job_from_dict(r) for r in rows}


def get_job_by_name(name: str) -> JobRecord | None:
    with _read():
        rows = list(_raw_dicts(_jobs_query().where(Job.name == name)))
        return _job_from_dict(rows[0]) if rows else None


def list_jobs() -> list[JobRecord]:
    """Every job, by name, each with its newest run's state and time."""
    with _read():
        return [_job_from_dict(r) for r in _raw_dicts(_jobs_query().order_by(Job.name))]


def list_jobs_page(after_id: int = 0, limit: int = 10_000) -> list[JobRecord]:
    """list_jobs in id order, ``limit`` at a time after ``after_id``: a large table read in
    pieces, so other reads on the one database thread are not held up for seconds."""
    with _read():
        query = _jobs_query().where(Job.id > after_id).order_by(Job.id).limit(limit)
        return [_job_from_dict(r) for r in _raw_dicts(query)]


def due_jobs(now: datetime) -> list[JobRecord]:
    """Enabled jobs whose next fire time is at or before ``now``, earliest first (without their
    newest run: the scheduler's view)."""
    with _read():
        cursor = _prepared(
            ("due_jobs",),
            lambda at: (
                Job.select()
                .where(Job.enabled & Job.next_fire_at.is_null(False) & (Job.next_fire_at <= at))
                .order_by(Job.next_fire_at, Job.id)
            ),
            [_naive(now)],
        )
        return [_job_from_dict(r) for r in _rows(cursor)]


def earliest_next_fire() -> datetime | None:
    with _read():
        cursor = _prepared(
            ("earliest_next_fire",),
            lambda: Job.select(fn.MIN(Job.next_fire_at)).where(
                Job.enabled & Job.next_fire_at.is_null(False)
            ),
            [],
        )
        row = cursor.fetchone()
        value = row[0] if row else None
        if isinstance(value, str):  # SQLite returns aggregates as raw text
            value = Job.next_fire_at.python_value(value)
        return _aware(value)


def set_next_fire(
    job_id: int, next_fire_at: datetime | None, last_scheduled_at: datetime | None = None
) -> None:
    """The scheduler's bookkeeping (no audit, no change marker: it is not a definition change).
    ``last_scheduled_at`` None leaves the stored value alone."""
    with _write():
        cols: dict[str, Any] = {"next_fire_at": _naive(next_fire_at)}
        if last_scheduled_at is not None:
            cols["last_scheduled_at"] = _naive(last_scheduled_at)
        names = tuple(cols)
        cursor = _prepared(
            ("set_next_fire", names),
            lambda *p: Job.update(dict(zip(names, p))).where(Job.id == p[-1]),
            [*cols.values(), job_id],
        )
        if not cursor.rowcount:
            raise NotFound(f"job {job_id} does not exist (deleted?)")


def change_marker() -> int:
    """A number that grows with every job, worker and setting change made by any process."""
    value = ChangeCounter.select(ChangeCounter.counter_value).where(ChangeCounter.id == 1).scalar()
    return int(value or 0)


def import_jobs(
    specs: Sequence[Any], actor: str = "cli", *, dry_run: bool = False
) -> dict[str, list]:
    """Add or update jobs by name from full definitions, all or nothing.
    Every definition is checked first; any problem raises ValidationError (keys "jobs[i].field")
    and changes nothing.  Jobs not in ``specs`` are left alone.
    Returns {"added": [names], "changed": [(name, diff)], "unchanged": [names]}."""
    with _write():
        tz = _display_tz()
        errors: dict[str, str] = {}
        cleaned: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for i, spec in enumerate(specs):
            label = spec.get("name") if isinstance(spec, dict) else None
            prefix = f"jobs[{i}]" + (f" ({label})" if isinstance(label, str) else "")
            try:
                clean = validation.normalize_job_spec(spec, default_tz=tz)
            except ValidationError as exc:
                errors.update({f"{prefix}.{k}": v for k, v in exc.errors.items()})
                continue
            if clean["name"] in seen:
                errors[f"{prefix}.name"] = f"is also used by jobs[{seen[clean['name']]}]"
                continue
            seen[clean["name"]] = i
            cleaned.append(clean)
        if errors:
            raise ValidationError(errors)
        result: dict[str, list] = {"added": [], "changed": [], "unchanged": []}
        existing = (
            {r["name"]: r for r in _raw_dicts(_jobs_query().where(Job.name.in_(list(seen))))}
            if seen
            else {}
        )
        plan = []
        for clean in cleaned:
            row = existing.get(clean["name"])
            if row is None:
                result["added"].append(clean["name"])
                plan.append((None, clean))
                continue
            current = _job_from_dict(row)
            detail = diff_specs(current.to_spec(), clean)
            if detail:
                result["changed"].append((clean["name"], detail))
                plan.append((current, clean))
            else:
                result["unchanged"].append(clean["name"])
        if dry_run:
            return result
        now = _now()
        for current, clean in plan:
            if current is None:
                Job.create(
                    **_columns(clean),
                    next_fire_at=_next_fire_for(clean),
                    created_at=now,
                    updated_at=now,
                )
                _audit(actor, "created", "job", clean["name"], "imported")
            else:
                _apply_update(Job.get_by_id(current.id), current, clean, actor)
        if plan:
            _bump()
        return result


# --- runs -------------------------------------------------------------------------------------


def _run_query():
    return Run.select(Run, Job.name.alias("job_name")).join(Job)


def _run_from_dict(row: dict[str, Any]) -> RunRecord:
    args = row["args_json"]
    return RunRecord(
        id=row["id"],
        job_id=row["job"],
        job_name=row["job_name"],
        scheduled_at=_aware(row["scheduled_at"]),
        attempt=row["attempt"],
        trigger=row["trigger_kind"],
        state=row["state"],
        worker_name=row["worker_name"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        args=tuple(json.loads(args)) if args is not None else None,
        not_before=_aware(row["not_before"]),
        created_at=_aware(row["created_at"]),
        dispatched_at=_aware(row["dispatched_at"]),
        started_at=_aware(row["started_at"]),
        finished_at=_aware(row["finished_at"]),
        last_seq=row["last_seq"],
        output_bytes=row["output_bytes"],
        output_truncated=bool(row["output_truncated"]),
    )


_RUN_TIMES = (
    "scheduled_at",
    "not_before",
    "created_at",
    "dispatched_at",
    "started_at",
    "finished_at",
)


def _run_from_raw(row: dict[str, Any]) -> RunRecord:
    """A raw driver row of _run_query() -> RunRecord, without peewee's per-field conversion."""
    row["job"] = row.pop(Run.job.column_name)
    for name in _RUN_TIMES:
        value = row[name]
        if isinstance(value, str):  # SQLite hands back text; PostgreSQL datetimes
            row[name] = datetime.fromisoformat(value)
    return _run_from_dict(row)


def _fetch_run(run_id: int) -> RunRecord | None:
    rows = _by_id("run", lambda i: _run_query().where(Run.id == i), run_id)
    return _run_from_raw(rows[0]) if rows else None


def create_run(
    job_id: int,
    scheduled_at: datetime,
    attempt: int = 1,
    trigger: str = run_states.SCHEDULE,
    state: str = run_states.QUEUED,
    args: Sequence[str] | None = None,
    not_before: datetime | None = None,
    reason: str = "",
) -> RunRecord | None:
    """Record one occurrence.  Returns None when (job, scheduled_at, attempt) already exists:
    the unique index, not a prior SELECT, is the guard, so two writers cannot both win."""
    if state not in run_states.ALL_STATES:
        raise ValueError(f"unknown run state {state!r}")
    if trigger not in run_states.TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    now = _now()
    try:
        with _write():
            if not _job_exists(job_id):
                raise NotFound(f"job {job_id} does not exist (deleted?)")
            values = {
                "job": job_id,
                "scheduled_at": _naive(scheduled_at),
                "attempt": attempt,
                "trigger_kind": trigger,
                "state": state,
                "reason": reason[:1000],
                "args_json": json.dumps(list(args), ensure_ascii=False)
                if args is not None
                else None,
                "not_before": _naive(not_before),
                "created_at": now,
                "finished_at": now if state in run_states.TERMINAL else None,
            }
            names = tuple(values)
            cursor = _prepared(
                ("insert_run",),
                lambda *p: Run.insert(dict(zip(names, p))),
                list(values.values()),
            )
            return _fetch_run(_inserted_id(cursor))
    except peewee.IntegrityError:
        return None


def record_missed(job_id: int, scheduled_ats: Iterable[datetime], reason: str = "") -> int:
    """Record occurrences that did not run (state "missed"); existing ones are left alone.
    Returns how many rows were added."""
    wanted = sorted({_naive(t) for t in scheduled_ats})
    if not wanted:
        return 0
    now = _now()
    added = 0
    with _write():
        if not _job_exists(job_id):
            raise NotFound(f"job {job_id} does not exist (deleted?)")
        for start in range(0, len(wanted), INSERT_BATCH):
            batch = wanted[start : start + INSERT_BATCH]
            have = {
                t
                for (t,) in Run.select(Run.scheduled_at)
                .where((Run.job == job_id) & (Run.attempt == 1) & Run.scheduled_at.in_(batch))
                .tuples()
            }
            rows = [
                {
                    "job": job_id,
                    "scheduled_at": t,
                    "attempt": 1,
                    "trigger_kind": run_states.SCHEDULE,
                    "state": run_states.MISSED,
                    "reason": reason[:1000],
                    "created_at": now,
                    "finished_at": now,
                }
                for t in batch
                if t not in have
            ]
            if rows:
                Run.insert_many(rows).on_conflict_ignore().execute()
                added += len(rows)
        if added:
            # one "missed" notification per job and firing (the latest), not one per occurrence
            latest = (
                Run.select(Run.id)
                .where((Run.job == job_id) & (Run.attempt == 1) & (Run.scheduled_at == wanted[-1]))
                .scalar()
            )
            record = _fetch_run(latest) if latest else None
            if record is not None and record.state == run_states.MISSED:
                from desktop.store import ends

                ends.after_ended([record])
    return added


def transition_run(run_id: int, new_state: str, **fields: Any) -> RunRecord:
    """Move a run to ``new_state`` if the run model allows it (checked against the committed
    state inside the same transaction, so a late or stale writer cannot overwrite a result).
    ``fields``: worker_name, exit_code, reason, dispatched_at, started_at, finished_at, and
    ``seq`` (raises last_seq to it: the started/finished message's seq).  A terminal state
    without finished_at gets now."""
    unknown = set(fields) - set(RUN_FIELDS) - {"seq", "not_before"}
    if unknown:
        raise TypeError(f"transition_run got unknown fields {sorted(unknown)}")
    with _write():
        query = Run.select().where(Run.id == run_id)
        if not _is_sqlite():
            query = query.for_update()
        run = query.first()
        if run is None:
            raise NotFound(f"run {run_id} does not exist (pruned or deleted?)")
        run_states.check_transition(run.state, new_state)
        cols: dict[str, Any] = {"state": new_state}
        for key, value in fields.items():
            if key == "seq":
                if value is not None and value > run.last_seq:
                    cols["last_seq"] = value
            elif key.endswith("_at") or key == "not_before":
                cols[key] = _naive(value)
            elif key == "reason":
                cols[key] = (value or "")[:1000]
            else:
                cols[key] = value
        if new_state in run_states.TERMINAL and "finished_at" not in fields:
            cols["finished_at"] = _now()
        Run.update(**cols).where(Run.id == run_id).execute()
        record = _fetch_run(run_id)
        if new_state in run_states.TERMINAL:
            from desktop.store import ends  # notifications and chains, same transaction

            ends.after_ended([record])
        return record


def _is_sqlite() -> bool:
    return isinstance(database_proxy.obj, peewee.SqliteDatabase)


def advance_seq(run_id: int, seq: int) -> int:
    """Raise a run's last_seq to ``seq`` (for messages that are not output, when no state
    change goes with them).  Returns the committed last_seq; unknown run -> NotFound."""
    with _write():
        Run.update(last_seq=seq).where((Run.id == run_id) & (Run.last_seq < seq)).execute()
        value = Run.select(Run.last_seq).where(Run.id == run_id).scalar()
        if value is None:
            raise NotFound(f"run {run_id} does not exist (pruned or deleted?)")
        return int(value)


def get_run(run_id: int) -> RunRecord | None:
    with _read():
        return _fetch_run(run_id)


def list_runs(
    job_id: int | None = None, limit: int = 50, before_id: int | None = None
) -> list[RunRecord]:
    """Newest first, ``limit`` at a time; pass the last id seen as ``before_id`` for the next
    page.  Keyset paging on the (job, id) index: page 1,000 costs what page 1 costs."""
    with _read():
        query = _run_query()
        if job_id is not None:
            query = query.where(Run.job == job_id)
        if before_id is not None:
            query = query.where(Run.id < before_id)
        query = query.order_by(Run.id.desc()).limit(max(1, int(limit)))
        return [_run_from_dict(r) for r in query.dicts()]


def count_runs(job_id: int | None = None, state: str | None = None) -> int:
    query = Run.select()
    if job_id is not None:
        query = query.where(Run.job == job_id)
    if state is not None:
        query = query.where(Run.state == state)
    return query.count()


def active_runs() -> list[RunRecord]:
    """Runs still queued, dispatched or running, oldest first."""
    with _read():
        cursor = _prepared(
            ("active_runs",),
            lambda: _run_query().where(Run.state.in_(run_states.ACTIVE)).order_by(Run.id),
            [],
        )
        return [_run_from_raw(r) for r in _rows(cursor)]


def states_of_runs(run_ids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(id, state, last_seq) of the runs that exist among ``run_ids``."""
    rows = _by_ids(
        "run_states",
        lambda ids: Run.select(Run.id, Run.state, Run.last_seq).where(Run.id.in_(ids)),
        run_ids,
    )
    return [(r["id"], r["state"], r["last_seq"]) for r in rows]


def run_owners(run_ids: Iterable[int]) -> dict[int, tuple[str, int, str | None]]:
    """{id: (state, last_seq, worker_name)} of the runs that exist among ``run_ids``: what the
    hub checks a worker's reports and claims against (desktop.hub.ownership)."""
    rows = _by_ids(
        "run_owners",
        lambda ids: Run.select(Run.id, Run.state, Run.last_seq, Run.worker_name).where(
            Run.id.in_(ids)
        ),
        run_ids,
    )
    return {r["id"]: (r["state"], r["last_seq"], r["worker_name"]) for r in rows}


def active_run_states() -> list[ActiveRun]:
    """The scheduler's narrow view of the runs still queued, dispatched or running, oldest
    first."""
    with _read():
        cursor = _prepared(
            ("active_run_states",),
            lambda: (
                Run.select(
                    Run.id,
                    Run.job,
                    Run.state,
                    Run.worker_name,
                    Run.created_at,
                    Run.not_before,
                    Run.dispatched_at,
                )
                .where(Run.state.in_(run_states.ACTIVE))
                .order_by(Run.id)
            ),
            [],
        )
        return [
            ActiveRun(rid, job, state, worker, _dt(created), _dt(not_before), _dt(dispatched))
            for rid, job, state, worker, created, not_before, dispatched in cursor
        ]


def runs_by_ids(run_ids: Iterable[int]) -> list[RunRecord]:
    """Run records for many ids (missing ones left out), in id order."""
    rows = _by_ids("runs_by_ids", lambda ids: _run_query().where(Run.id.in_(ids)), run_ids)
    return sorted((_run_from_raw(r) for r in rows), key=lambda r: r.id)


# --- output -----------------------------------------------------------------------------------


def _output_cap() -> int:
    row = Setting.get_or_none(Setting.setting_key == "output_cap_bytes")
    try:
        return int(row.setting_value) if row else int(settings_mod.DEFAULTS["output_cap_bytes"])
    except ValueError:
        return int(settings_mod.DEFAULTS["output_cap_bytes"])


def truncation_marker(cap: int) -> str:
    return (
        f"[output truncated: this run passed the output limit of {cap:,} bytes "
        "(setting output_cap_bytes); later output was not stored]\n"
    )


def append_output(chunks: Iterable[OutputChunk]) -> dict[int, int]:
    """Store output of many runs in ONE transaction.  Chunks with seq <= the run's committed
    last_seq are replays and dropped.  Past the per-run cap text is not stored: one marker chunk
    is, and output_truncated is set; seqs still advance so the hub can ack.  Unknown run ids are
    logged and skipped.  Returns {run_id: committed last_seq} for every known run given."""
    by_run: dict[int, list[OutputChunk]] = defaultdict(list)
    for chunk in chunks:
        by_run[chunk.run_id].append(chunk)
    if not by_run:
        return {}
    now = _now()
    result: dict[int, int] = {}
    with _write():
        cap = _output_cap()
        state = {}
        ids = list(by_run)
        for row in _by_ids(
            "output_state",
            lambda i: Run.select(
                Run.id, Run.last_seq, Run.output_bytes, Run.output_truncated
            ).where(Run.id.in_(i)),
            ids,
        ):
            state[row["id"]] = (row["last_seq"], row["output_bytes"], bool(row["output_truncated"]))
        rows: list[tuple] = []
        updates: list[tuple] = []
        for rid, run_chunks in by_run.items():
            if rid not in state:
                log.warning("output for unknown run %s dropped (%d chunks)", rid, len(run_chunks))
                continue
            last_seq, nbytes, truncated = state[rid]
            start_seq, start_bytes, start_trunc = last_seq, nbytes, truncated
            for chunk in sorted(run_chunks, key=lambda c: c.seq):
                if chunk.seq <= last_seq:
                    continue  # a replay of something already committed
                last_seq = chunk.seq
                if truncated:
                    continue
                size = len(chunk.text.encode("utf-8", "replace"))
                at = _naive(chunk.at) or now
                if nbytes + size > cap:
                    truncated = True
                    rows.append((rid, chunk.seq, "stderr", truncation_marker(cap), at))
                    continue
                nbytes += size
                rows.append((rid, chunk.seq, chunk.stream, chunk.text, at))
            if (last_seq, nbytes, truncated) != (start_seq, start_bytes, start_trunc):
                updates.append((last_seq, nbytes, truncated, rid))
            result[rid] = last_seq
        update_runs(("last_seq", "output_bytes", "output_truncated"), updates)
        _insert_rows(
            RunOutput,
            [RunOutput.run, RunOutput.seq, RunOutput.stream, RunOutput.text, RunOutput.at],
            rows,
        )
    return result


def append_to_chunk(run_id: int, seq: int, text: str) -> None:
    """Add TEXT to the end of one stored chunk (masking releases text it held back when a run
    ends, hub/commit.py).  In the caller's transaction."""
    RunOutput.update(text=RunOutput.text.concat(text)).where(
        (RunOutput.run == run_id) & (RunOutput.seq == seq)
    ).execute()


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


def read_output(run_id: int, after_seq: int = 0, limit: int | None = None) -> list[OutputChunk]:
    """A run's stored output in seq order, after ``after_seq`` (to follow a live run)."""
    with _read():
        query = (
            RunOutput.select(RunOutput.seq, RunOutput.stream, RunOutput.text, RunOutput.at)
            .where((RunOutput.run == run_id) & (RunOutput.seq > after_seq))
            .order_by(RunOutput.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [
            OutputChunk(run_id, seq, stream, text, _aware(at))
            for seq, stream, text, at in query.tuples()
        ]


# --- workers ----------------------------------------------------------------------------------


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


def _worker_from(w: Worker) -> WorkerRecord:
    return WorkerRecord(
        id=w.id,
        name=w.name,
        tags=tuple(json.loads(w.tags_json)),
        slots=w.slots,
        enabled=bool(w.enabled),
        revoked_at=_aware(w.revoked_at),
        last_seen_at=_aware(w.last_seen_at),
        version=w.version,
        host=w.host,
        os_name=w.os_name,
        scripts=tuple(json.loads(w.scripts_json)),
        created_at=_aware(w.created_at),
    )


def _check_worker_input(name: Any, tags: Any, slots: Any) -> dict[str, str]:
    errors = {}
    if not isinstance(name, str) or not _WORKER_NAME.match(name):
        errors["name"] = (
            "must start with a letter or digit and use only letters, digits, '.', '_', '-', '@' "
            "(at most 200)"
        )
    if not isinstance(tags, (list, tuple)) or not all(
        isinstance(t, str) and t.strip() and len(t) <= 100 for t in tags
    ):
        errors["tags"] = "must be a list of non-empty tags of at most 100 characters"
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1000:
        errors["slots"] = "must be a whole number from 1 to 1000"
    return errors


def _require_worker(name: str) -> Worker:
    worker = Worker.get_or_none(Worker.name == name)
    if worker is None:
        raise NotFound(f"there is no worker named {name!r}")
    return worker


def add_worker(
    name: str, tags: Sequence[str] = (), slots: int = 1, actor: str = "console"
) -> tuple[WorkerRecord, str]:
    """Register a worker.  Returns its record and its token: shown once, only a hash is kept."""
    errors = _check_worker_input(name, tags, slots)
    if errors:
        raise ValidationError(errors)
    token = _new_token()
    with _write():
        if Worker.select().where(Worker.name == name).exists():
            raise ValidationError({"name": f"a worker named {name!r} already exists"})
        worker = Worker.create(
            name=name,
            token_hash=_hash_token(token),
            tags_json=json.dumps(sorted(set(tags))),
            slots=slots,
            created_at=_now(),
        )
        _audit(actor, "created", "worker", name, f"slots {slots}, tags {sorted(set(tags))}")
        _bump()
        return _worker_from(worker), token


def authenticate_worker(name: str, token: str) -> WorkerRecord:
    """The worker's record if ``token`` is its current token and it may connect; else
    AuthError with the reject code and a reason for the worker's admin."""
    with _read():
        worker = Worker.get_or_none(Worker.name == name)
    if worker is None:
        raise AuthError(
            "unknown", f"no worker named {name!r} is registered; add it in the console first"
        )
    if not hmac.compare_digest(worker.token_hash, _hash_token(token or "")):
        raise AuthError(
            "bad_token", "the token is wrong; copy the worker's token from the console again"
        )
    if worker.revoked_at is not None:
        raise AuthError("revoked", "this worker was revoked; issue a new token in the console")
    if not worker.enabled:
        raise AuthError("disabled", "this worker is disabled in the console; enable it there")
    return _worker_from(worker)


def list_workers() -> list[WorkerRecord]:
    with _read():
        return [_worker_from(w) for w in Worker.select().order_by(Worker.name)]


def get_worker(name: str) -> WorkerRecord | None:
    with _read():
        worker = Worker.get_or_none(Worker.name == name)
        return _worker_from(worker) if worker else None


def revoke_worker(name: str, actor: str = "console") -> WorkerRecord:
    """Its token stops working at once (the hub should also close its connection)."""
    with _write():
        worker = _require_worker(name)
        Worker.update(revoked_at=_now()).where(Worker.id == worker.id).execute()
        _audit(actor, "revoked", "worker", name)
        _bump()
        return _worker_from(Worker.get_by_id(worker.id))


def set_worker_enabled(name: str, enabled: bool, actor: str = "console") -> WorkerRecord:
    with _write():
        worker = _require_worker(name)
        if bool(worker.enabled) != bool(enabled):
            Worker.update(enabled=bool(enabled)).where(Worker.id == worker.id).execute()
            _audit(actor, "enabled" if enabled else "disabled", "worker", name)
            _bump()
        return _worker_from(Worker.get_by_id(worker.id))


def rotate_token(name: str, actor: str = "console") -> str:
    """Issue a new token (the old one stops working).  This also lifts a revocation: it is how
    a revoked worker is enrolled again."""
    token = _new_token()
    with _write():
        worker = _require_worker(name)
        Worker.update(token_hash=_hash_token(token), revoked_at=None).where(
            Worker.id == worker.id
        ).execute()
        _audit(actor, "token_rotated", "worker", name)
        _bump()
    return token


def worker_seen(
    name: str,
    host: str = "",
    os_name: str = "",
    version: str = "",
    scripts: Sequence[dict[str, str]] = (),
    at: datetime | None = None,
) -> None:
    """What a worker reported in its hello: a description of its host.  Its tags and slots are
    not taken from the hello (a worker must not grant itself a tag): the console sets them
    (add_worker, set_worker_config)."""
    cols: dict[str, Any] = {
        "host": (host or "")[:255],
        "os_name": (os_name or "")[:200],
        "version": (version or "")[:50],
        "scripts_json": json.dumps(list(scripts), sort_keys=True),
        "last_seen_at": _naive(at) or _now(),
    }
    with _write():
        if not Worker.update(**cols).where(Worker.name == name).execute():
            raise NotFound(f"there is no worker named {name!r}")


def set_worker_config(
    name: str,
    tags: Sequence[str] | None = None,
    slots: int | None = None,
    actor: str = "console",
) -> WorkerRecord:
    """Change a worker's tags and/or slots (None: keep).  Only the console does this: which
    jobs a worker gets (tags) and how many at once (slots) are the admin's decision."""
    worker_name = name if isinstance(name, str) else ""
    errors = _check_worker_input(
        worker_name or "x", [] if tags is None else tags, 1 if slots is None else slots
    )
    errors.pop("name", None)
    if errors:
        raise ValidationError(errors)
    with _write():
        worker = _require_worker(name)
        cols: dict[str, Any] = {}
        changes = []
        if tags is not None:
            new_tags = sorted({t.strip() for t in tags})
            if new_tags != sorted(json.loads(worker.tags_json)):
                cols["tags_json"] = json.dumps(new_tags)
                changes.append(f"tags {new_tags}")
        if slots is not None and slots != worker.slots:
            cols["slots"] = slots
            changes.append(f"slots {slots}")
        if cols:
            Worker.update(**cols).where(Worker.id == worker.id).execute()
            _audit(actor, "updated", "worker", name, ", ".join(changes))
            _bump()
        return _worker_from(Worker.get_by_id(worker.id))


def set_worker_scripts(name: str, scripts: Sequence[dict[str, str]]) -> None:
    """The script catalogue a connected worker reported after its hello (it changed)."""
    with _write():
        cols = {"scripts_json": json.dumps(list(scripts), sort_keys=True)}
        if not Worker.update(**cols).where(Worker.name == name).execute():
            raise NotFound(f"there is no worker named {name!r}")


# --- settings ---------------------------------------------------------------------------------


def get_setting(key: str, default: str | None = None) -> str | None:
    """The stored value, else ``default``, else the known default (settings.DEFAULTS)."""
    row = Setting.get_or_none(Setting.setting_key == key)
    if row is not None:
        return row.setting_value
    return default if default is not None else settings_mod.DEFAULTS.get(key)


def set_setting(key: str, value: Any, actor: str = "console") -> None:
    value = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    problem = settings_mod.check(key, value)
    if problem:
        raise ValidationError({key: problem})
    with _write():
        row = Setting.get_or_none(Setting.setting_key == key)
        if row is not None and row.setting_value == value:
            return
        old = row.setting_value if row else settings_mod.DEFAULTS.get(key)
        if row is None:
            Setting.create(setting_key=key, setting_value=value)
        else:
            Setting.update(setting_value=value).where(Setting.setting_key == key).execute()
        _audit(actor, "updated", "setting", key, f"{_short(old)} -> {_short(value)}")
        _bump()


def all_settings() -> dict[str, str]:
    """Every known setting with its default, overlaid by what is stored."""
    with _read():
        stored = {
            k: v for k, v in Setting.select(Setting.setting_key, Setting.setting_value).tuples()
        }
    return {**settings_mod.DEFAULTS, **stored}


# --- audit ------------------------------------------------------------------------------------


def list_audit(limit: int = 100) -> list[AuditRecord]:
    with _read():
        query = AuditEvent.select().order_by(AuditEvent.id.desc()).limit(limit)
        return [
            AuditRecord(
                e.id, _aware(e.at), e.actor, e.action, e.entity_kind, e.entity_name, e.detail
            )
            for e in query
        ]


# --- retention --------------------------------------------------------------------------------


def _delete_runs(ids: list[int]) -> int:
    with _write():
        outputs = RunOutput.delete().where(RunOutput.run.in_(ids)).execute()
        Run.delete().where(Run.id.in_(ids)).execute()
    return outputs


def prune(
    now: datetime, max_age_days: int | None = None, max_runs_per_job: int | None = None
) -> dict[str, int]:
    """Delete finished runs (and their output) older than ``max_age_days`` and beyond the newest
    ``max_runs_per_job`` of each job; 0 turns a rule off, None takes the setting.  Never touches
    active runs.  Works in batches of PRUNE_BATCH runs, each its own short transaction, so the
    console and the CLI keep writing while a large history is pruned."""
    if max_age_days is None:
        max_age_days = int(get_setting("retention_days"))
    if max_runs_per_job is None:
        max_runs_per_job = int(get_setting("retention_runs_per_job"))
    counts = {"runs_by_age": 0, "runs_by_count": 0, "output_rows": 0}
    finished = ~Run.state.in_(run_states.ACTIVE)
    if max_age_days > 0:
        cutoff = _naive(now) - timedelta(days=max_age_days)
        while True:
            ids = [
                i
                for (i,) in Run.select(Run.id)
                .where(finished & (Run.created_at < cutoff))
                .limit(PRUNE_BATCH)
                .tuples()
            ]
            if not ids:
                break
            counts["output_rows"] += _delete_runs(ids)
            counts["runs_by_age"] += len(ids)
    if max_runs_per_job > 0:
        job_ids = [i for (i,) in Job.select(Job.id).tuples()]
        for job_id in job_ids:
            # the id of the oldest run to keep; everything finished below it goes
            keep_from = (
                Run.select(Run.id)
                .where(Run.job == job_id)
                .order_by(Run.id.desc())
                .offset(max_runs_per_job - 1)
                .limit(1)
                .scalar()
            )
            if keep_from is None:
                continue
            while True:
                ids = [
                    i
                    for (i,) in Run.select(Run.id)
                    .where((Run.job == job_id) & (Run.id < keep_from) & finished)
                    .limit(PRUNE_BATCH)
                    .tuples()
                ]
                if not ids:
                    break
                counts["output_rows"] += _delete_runs(ids)
                counts["runs_by_count"] += len(ids)
    return counts
