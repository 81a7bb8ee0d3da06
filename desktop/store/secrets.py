"""Job secrets: named values delivered to a job as environment variables, stored sealed.

Plain functions, one transaction each, like queries/*.py.  Values leave this module only through
``values_for_job`` / ``values_for_runs`` (to build a dispatch and to mask its output) and
``reveal`` (the editor's explicit "Reveal"); listings give names and dates.  The audit trail
says a secret was added, changed or removed, never its value.  Error messages name jobs,
secrets and key ids, never values.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from desktop.core.secret_rules import (
    MAX_VALUE_BYTES,
    MIN_VALUE_CHARS,
    PLACEHOLDER,
    check_name,
    check_value,
    worker_warning,
)
from desktop.core.secretbox import SecretKeyError, sealed_key_id
from desktop.core.timeutil import from_naive_utc, to_naive_utc, utcnow
from desktop.store import secretkey
from desktop.store.errors import NotFound, ValidationError
from desktop.store.migrations import write_transaction
from desktop.store.models import AuditEvent, ChangeCounter, Job, JobSecret, Run, database_proxy
from desktop.store.queries.common import _tuples
from desktop.store.queries.prepared import _by_ids
from desktop.store.records import SecretRecord


def context(job_id: int, name: str) -> str:
    return f"job-secret:{job_id}:{name}"


secretkey.register_column(
    JobSecret, JobSecret.sealed, lambda row: context(row.job_id, row.secret_name)
)


def _now() -> datetime:
    return to_naive_utc(utcnow())


def _job(job: int | str) -> Job:
    row = (
        Job.get_or_none(Job.id == job) if isinstance(job, int) else Job.get_or_none(Job.name == job)
    )
    if row is None:
        raise NotFound(f"no job {job!r}")
    return row


def _audit(actor: str, action: str, job_name: str, detail: str) -> None:
    AuditEvent.create(
        at=_now(),
        actor=(actor or "unknown")[:200],
        action=action,
        entity_kind="job",
        entity_name=job_name[:200],
        detail=detail[:4000],
    )
    ChangeCounter.update(counter_value=ChangeCounter.counter_value + 1).where(
        ChangeCounter.id == 1
    ).execute()


def list_secrets(job: int | str) -> list[SecretRecord]:
    with database_proxy.atomic():
        row = _job(job)
        query = JobSecret.select().where(JobSecret.job == row.id).order_by(JobSecret.secret_name)
        return [
            SecretRecord(row.id, s.secret_name, from_naive_utc(s.updated_at), s.key_id)
            for s in query
        ]


def apply_changes(job: int | str, changes: dict[str, str | None], actor: str) -> list[str]:
    """Set (a value) or remove (None) secrets of JOB, all or nothing.  Returns warnings (names
    workers refuse by default).  Audited as 'secret NAME added/changed/removed'."""
    errors: dict[str, str] = {}
    for name, value in changes.items():
        problem = check_name(name) or (None if value is None else check_value(value))
        if problem:
            errors[f"secrets.{str(name)[:60]}"] = problem
    if errors:
        raise ValidationError(errors)
    with write_transaction(database_proxy):
        row = _job(job)
        existing = {s.secret_name: s for s in JobSecret.select().where(JobSecret.job == row.id)}
        taken = {n.upper(): n for n in existing}
        for name in changes:
            other = taken.get(name.upper())
            if other is not None and other != name:
                raise ValidationError({f"secrets.{name}": f"differs from {other} only in case"})
        box = None
        if any(v is not None for v in changes.values()):
            box = secretkey.box(create=True)
            secretkey.check_matches(box)
        words = []
        for name, value in sorted(changes.items()):
            if value is None:
                if name in existing:
                    existing[name].delete_instance()
                    words.append(f"secret {name} removed")
                continue
            assert box is not None  # opened above: there is a value to seal
            sealed = box.seal(value, context(row.id, name))
            if name in existing:
                JobSecret.update(sealed=sealed, key_id=box.key_id, updated_at=_now()).where(
                    JobSecret.id == existing[name].id
                ).execute()
                words.append(f"secret {name} changed")
            else:
                JobSecret.create(
                    job=row.id,
                    secret_name=name,
                    sealed=sealed,
                    key_id=box.key_id,
                    updated_at=_now(),
                )
                words.append(f"secret {name} added")
        if words:
            _audit(actor, "secrets", row.name, "; ".join(words))
    return [w for w in (worker_warning(n) for n, v in changes.items() if v is not None) if w]


def delete_for_job(job_id: int) -> None:
    """Called in delete_job's transaction (SQLite does not cascade without its pragma)."""
    JobSecret.delete().where(JobSecret.job == job_id).execute()


def _open_rows(rows: Iterable[JobSecret]) -> dict[str, str]:
    rows = list(rows)
    if not rows:
        return {}
    box = secretkey.box()
    return {r.secret_name: box.open(r.sealed, context(r.job_id, r.secret_name)) for r in rows}


def values_for_job(job_id: int) -> dict[str, str]:
    """The job's secrets in clear, to build a dispatch.  SecretKeyError when they cannot be
    opened (no key, wrong key): the message names the key, not the values."""
    with database_proxy.atomic():
        return _open_rows(JobSecret.select().where(JobSecret.job == job_id))


def values_for_jobs(job_ids: Iterable[int]) -> dict[int, dict[str, str] | SecretKeyError]:
    """For a scheduler pass: each listed job that has secrets -> its values in clear, or the
    SecretKeyError that kept them shut.  One query for the whole pass; jobs without secrets
    (most) are absent and cost no key read."""
    ids = set(job_ids)
    if not ids:
        return {}
    # every pass that dispatches asks: which jobs have secrets at all, compiled once
    ids = {
        r["job_id"]
        for r in _by_ids(
            "jobs_with_secrets",
            lambda i: JobSecret.select(JobSecret.job).where(JobSecret.job.in_(i)),
            ids,
        )
    }
    by_job: dict[int, list[JobSecret]] = {}
    if ids:
        for r in JobSecret.select().where(JobSecret.job.in_(ids)):
            by_job.setdefault(r.job_id, []).append(r)
    out: dict[int, dict[str, str] | SecretKeyError] = {}
    for job_id, rows in by_job.items():
        try:
            out[job_id] = _open_rows(rows)
        except SecretKeyError as exc:
            out[job_id] = exc
    return out


def values_for_runs(run_ids: Iterable[int]) -> dict[int, list[str]]:
    """Run id -> its job's secret values (masking output after a console restart)."""
    ids = list(run_ids)
    if not ids:
        return {}
    jobs: dict[int, int] = dict(_tuples(Run.select(Run.id, Run.job).where(Run.id.in_(ids))))
    rows = JobSecret.select().where(JobSecret.job.in_(set(jobs.values())))
    by_job: dict[int, list[JobSecret]] = {}
    for r in rows:
        by_job.setdefault(r.job_id, []).append(r)
    opened = {job_id: list(_open_rows(rs).values()) for job_id, rs in by_job.items()}
    return {run_id: opened.get(job_id, []) for run_id, job_id in jobs.items()}


def reveal(job: int | str, name: str, actor: str) -> str:
    """One value, for the editor's explicit Reveal; audited as 'secret NAME revealed'."""
    with write_transaction(database_proxy):
        row = _job(job)
        secret = JobSecret.get_or_none((JobSecret.job == row.id) & (JobSecret.secret_name == name))
        if secret is None:
            raise NotFound(f"job {row.name!r} has no secret {name!r}")
        value = secretkey.box().open(secret.sealed, context(row.id, name))
        _audit(actor, "secrets", row.name, f"secret {name} revealed")
        return value


def count_by_key() -> dict[str, int]:
    """How many sealed values each key id sealed (job secrets and registered columns)."""
    counts: dict[str, int] = {}
    for model, field, _ in secretkey.SEALED_COLUMNS:
        for (token,) in model.select(field).tuples():
            kid = sealed_key_id(token or "")
            if kid:
                counts[kid] = counts.get(kid, 0) + 1
    return counts


__all__ = [
    "MAX_VALUE_BYTES",
    "MIN_VALUE_CHARS",
    "PLACEHOLDER",
    "SecretKeyError",
    "check_name",
    "check_value",
]
