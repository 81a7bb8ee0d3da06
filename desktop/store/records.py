"""Plain, frozen records the store returns.  Datetimes are aware UTC; JSON columns are decoded.
Callers never see peewee objects, so nothing lazy crosses the database thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

# The fields of a job definition, as stored, exported and accepted by create_job/update_job.
JOB_SPEC_FIELDS = (
    "name",
    "description",
    "script",
    "args",
    "env",
    "target_kind",
    "target_value",
    "schedule",
    "time_zone",
    "enabled",
    "misfire_policy",
    "misfire_cap",
    "concurrency",
    "timeout_seconds",
    "max_retries",
    "retry_delay_seconds",
    "retry_backoff",
    "retry_max_delay_seconds",
    "queue_timeout_seconds",
)


@dataclass(frozen=True)
class JobRecord:
    id: int
    name: str
    description: str
    script: str
    args: tuple[str, ...]
    env: dict[str, str]
    target_kind: str
    target_value: str
    schedule: dict[str, Any]
    time_zone: str
    enabled: bool
    misfire_policy: str
    misfire_cap: int
    concurrency: str
    timeout_seconds: int | None
    max_retries: int
    retry_delay_seconds: int
    retry_backoff: float
    retry_max_delay_seconds: int
    queue_timeout_seconds: int | None
    next_fire_at: datetime | None
    last_scheduled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_run_id: int | None = None
    last_run_state: str | None = None
    last_run_at: datetime | None = None

    def to_spec(self) -> dict[str, Any]:
        """The definition as a spec dict (what export writes and create_job accepts)."""
        spec = {name: getattr(self, name) for name in JOB_SPEC_FIELDS}
        spec["args"] = list(self.args)
        spec["env"] = dict(self.env)
        spec["schedule"] = dict(self.schedule)
        return spec


@dataclass(frozen=True)
class RunRecord:
    id: int
    job_id: int
    job_name: str
    scheduled_at: datetime
    attempt: int
    trigger: str
    state: str
    worker_name: str | None
    exit_code: int | None
    reason: str
    args: tuple[str, ...] | None  # this run's override of the job's args, else None
    not_before: datetime | None
    created_at: datetime
    dispatched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    output_bytes: int
    output_truncated: bool


class ActiveRun(NamedTuple):
    """What the scheduler's pass needs of a queued, dispatched or running run: a narrow row,
    read for every active run on every pass (the full RunRecord cost 4 ms for 128 runs)."""

    id: int
    job_id: int
    state: str
    worker_name: str | None
    created_at: datetime
    not_before: datetime | None
    dispatched_at: datetime | None


@dataclass(frozen=True)
class OutputChunk:
    run_id: int
    seq: int
    stream: str  # stdout | stderr
    text: str
    at: datetime | None = None


@dataclass(frozen=True)
class WorkerRecord:
    id: int
    name: str
    tags: tuple[str, ...]
    slots: int
    enabled: bool
    revoked_at: datetime | None
    last_seen_at: datetime | None
    version: str
    host: str
    os_name: str
    scripts: tuple[dict[str, str], ...] = field(default=())
    created_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class SecretRecord:
    """A job secret's name and when it was last set: never its value."""

    job_id: int
    name: str
    updated_at: datetime
    key_id: str


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    entity_kind: str
    entity_name: str
    detail: str
