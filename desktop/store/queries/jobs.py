"""Jobs: definitions, their listing with the newest run, the scheduler's bookkeeping and the
all-or-nothing import."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from peewee import JOIN, fn

from desktop.core import runs as run_states
from desktop.core.timeutil import utcnow
from desktop.core.words import plural
from desktop.store import validation
from desktop.store.errors import Conflict, NotFound, ValidationError
from desktop.store.models import Job, JobSecret, Run, RunOutput
from desktop.store.queries.common import (
    _audit,
    _aware,
    _bump,
    _dt,
    _dt_set,
    _naive,
    _now,
    _raw_dicts,
    _read,
    _short,
    _tuples,
    _write,
)
from desktop.store.queries.prepared import _by_id, _by_ids, _prepared, _rows
from desktop.store.queries.settings import _display_tz
from desktop.store.records import JOB_SPEC_FIELDS, JobRecord


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'field: old -> new; ...' for the fields that differ (the audit detail of an update)."""
    parts = [
        f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}"
        for key in JOB_SPEC_FIELDS
        if old.get(key) != new.get(key)
    ]
    return "; ".join(parts)


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


def _json_list(text: str) -> tuple:
    return () if text == "[]" else tuple(json.loads(text))


def _json_dict(text: str) -> dict:
    return {} if text == "{}" else json.loads(text)


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
        created_at=_dt_set(row["created_at"]),
        updated_at=_dt_set(row["updated_at"]),
        last_run_id=row.get("lr_id"),
        last_run_state=row.get("lr_state"),
        last_run_at=_dt(last_at),
    )


def _fetch_job(job_id: int) -> JobRecord | None:
    rows = _by_id("job", lambda i: _jobs_query().where(Job.id == i), job_id)
    return _job_from_dict(rows[0]) if rows else None


def _stored_job(job_id: int) -> JobRecord:
    """_fetch_job for a job this transaction knows exists."""
    record = _fetch_job(job_id)
    if record is None:
        raise NotFound(f"job {job_id} does not exist (deleted?)")
    return record


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
        return _stored_job(job.id)


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
        current = _stored_job(job_id)
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
        return _stored_job(job_id)


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
        return list(_tuples(Job.select(Job.id, Job.name)))


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


def max_retries_of(job_ids: Iterable[int]) -> dict[int, int]:
    """{job id: max_retries} of the jobs that exist among ``job_ids``: what a pass needs to
    know whether an ended run may want a retry (a whole JobRecord per job, parsed, was a sixth
    of a pass's database time with runs ending all the time)."""
    with _read():
        rows = _by_ids(
            "max_retries_of",
            lambda ids: Job.select(Job.id, Job.max_retries).where(Job.id.in_(ids)),
            job_ids,
        )
        return {r["id"]: r["max_retries"] for r in rows}


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
        plan: list[tuple[JobRecord | None, dict[str, Any]]] = []
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
        for before, clean in plan:
            if before is None:
                Job.create(
                    **_columns(clean),
                    next_fire_at=_next_fire_for(clean),
                    created_at=now,
                    updated_at=now,
                )
                _audit(actor, "created", "job", clean["name"], "imported")
            else:
                _apply_update(Job.get_by_id(before.id), before, clean, actor)
        if plan:
            _bump()
        return result
