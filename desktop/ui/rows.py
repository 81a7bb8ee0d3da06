"""What one table row shows, built from the store's records (no Qt).

Converting a record once, when it arrives, keeps data() cheap: the views ask for each visible cell
on every repaint, and with 10,000 jobs that must not parse JSON or describe schedules again.
These converters are the one place that knows the shapes of desktop.store.records and the core's
WorkerStatus; the models only see these rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from desktop.service.workers import WorkerStatus
from desktop.ui.formatting import describe_target, duration_between, outcome_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRow:
    id: int
    name: str
    schedule_text: str
    target_text: str
    script: str
    next_fire_at: datetime | None
    last_run_at: datetime | None
    last_run_state: str | None
    enabled: bool
    search_text: str = ""  # what the filter box matches, lower case
    name_key: str = ""  # the name, case-folded once for sorting


@dataclass(frozen=True)
class RunRow:
    id: int
    job_id: int
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str
    state: str
    exit_code: int | None
    trigger: str
    attempt: int
    reason: str

    @property
    def duration(self) -> float | None:
        return duration_between(self.started_at, self.finished_at)


@dataclass(frozen=True)
class WorkerRow:
    name: str
    host: str
    os: str
    version: str
    online: bool
    enabled: bool
    last_heartbeat: datetime | None
    running: int
    slots: int
    tags: tuple[str, ...]
    in_clear: bool = False  # its token reached a plain ws:// hub from another host
    problem: str = ""


def schedule_dict(record: Any) -> dict:
    """The schedule of a job record as the dict desktop.core.schedules understands."""
    sched = getattr(record, "schedule", None)
    if isinstance(sched, dict):
        return sched
    text = getattr(record, "schedule_json", None) or "{}"
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def describe_schedule(data: dict) -> str:
    """describe() of the schedule, or a plain note when it cannot be read (never raise here: one
    odd row must not break the table)."""
    try:
        from desktop.core import schedules

        return schedules.parse(data).describe()
    except Exception as exc:  # ScheduleError, or the module missing in an early build
        kind = data.get("kind", "?")
        log.debug("cannot describe schedule %r: %s", data, exc)
        return f"{kind} (invalid: {exc})" if kind != "?" else "invalid schedule"


def job_row(record: Any) -> JobRow:
    schedule_text = describe_schedule(schedule_dict(record))
    target_text = describe_target(record.target_kind, record.target_value)
    state = getattr(record, "last_run_state", None)
    return JobRow(
        id=record.id,
        name=record.name,
        schedule_text=schedule_text,
        target_text=target_text,
        script=record.script,
        next_fire_at=getattr(record, "next_fire_at", None),
        last_run_at=getattr(record, "last_run_at", None),
        last_run_state=getattr(record, "last_run_state", None),
        enabled=bool(record.enabled),
        name_key=record.name.casefold(),
        search_text="\n".join(
            (record.name, schedule_text, target_text, record.script, outcome_label(state))
        ).casefold(),
    )


def run_row(record: Any) -> RunRow:
    return RunRow(
        id=record.id,
        job_id=record.job_id,
        scheduled_at=getattr(record, "scheduled_at", None),
        started_at=getattr(record, "started_at", None),
        finished_at=getattr(record, "finished_at", None),
        worker=getattr(record, "worker_name", None) or "",
        state=record.state,
        exit_code=getattr(record, "exit_code", None),
        trigger=getattr(record, "trigger_kind", None) or getattr(record, "trigger", "") or "",
        attempt=getattr(record, "attempt", 1) or 1,
        reason=getattr(record, "reason", "") or "",
    )


def worker_row(status: Any, enabled: bool = True) -> WorkerRow:
    if type(status) is WorkerStatus:
        # the live status of a connected worker: typed already, so no getattr fallbacks (this
        # runs for every worker each time the workers table is refreshed: 10,000 in a storm)
        return WorkerRow(
            status.name,
            status.host or "",
            status.os or "",
            status.version or "",
            status.online,
            enabled,
            status.last_heartbeat,
            status.running,
            status.slots or 1,
            status.tags,
            status.in_clear,
            status.problem or "",
        )
    tags = getattr(status, "tags", ()) or ()
    if isinstance(tags, str):
        tags = tuple(t.strip() for t in tags.split(",") if t.strip())
    return WorkerRow(
        name=status.name,
        host=getattr(status, "host", "") or "",
        os=getattr(status, "os", None) or getattr(status, "os_name", "") or "",
        version=getattr(status, "version", "") or "",
        online=bool(getattr(status, "online", False)),
        enabled=bool(getattr(status, "enabled", enabled)),
        last_heartbeat=getattr(status, "last_heartbeat", None)
        or getattr(status, "last_seen_at", None),
        running=int(getattr(status, "running", 0) or 0),
        slots=int(getattr(status, "slots", 1) or 1),
        tags=tuple(tags),
        in_clear=bool(getattr(status, "in_clear", False)),
        problem=getattr(status, "problem", "") or "",
    )


def offline_row(row: WorkerRow, shown: WorkerRow | None) -> WorkerRow:
    """The row of a worker that is offline now, built from its stored record (``row``), kept
    as recent as what the table showed while it was online (``shown``).  The Core's records
    say where the worker was at its last login as of their last read (the window no longer
    reads the table each refresh); its live status had the host, version and heartbeats since.
    Without this a worker that just went away showed the last seen of a read hours ago."""
    if shown is None or shown.last_heartbeat is None:
        return row
    if row.last_heartbeat is not None and row.last_heartbeat >= shown.last_heartbeat:
        return row  # the record is the newer (a login recorded by another console)
    return replace(
        row,
        host=shown.host or row.host,
        os=shown.os or row.os,
        version=shown.version or row.version,
        last_heartbeat=shown.last_heartbeat,
    )


_INF = float("inf")
_NEG = float("-inf")

# Columns of the jobs table (JobsTableModel.HEADERS order).
NAME, SCHEDULE, TARGET, NEXT, LAST, OUTCOME, ENABLED = range(7)


def job_sort_key(column: int):
    """Sort key for a jobs-table column: ties by name, then id, so the order is total.  Plain
    functions without Qt: sorting also happens on the database thread before a load."""
    if column == NEXT:
        return lambda j: (
            j.next_fire_at.timestamp() if j.enabled and j.next_fire_at else _INF,
            j.name_key,
            j.id,
        )
    if column == LAST:
        return lambda j: (j.last_run_at.timestamp() if j.last_run_at else _NEG, j.name_key, j.id)
    if column == OUTCOME:
        return lambda j: (outcome_label(j.last_run_state), j.name_key, j.id)
    if column == ENABLED:
        return lambda j: (j.enabled, j.name_key, j.id)
    if column == SCHEDULE:
        return lambda j: (j.schedule_text.casefold(), j.name_key, j.id)
    if column == TARGET:
        return lambda j: (j.target_text.casefold(), j.name_key, j.id)
    return lambda j: (j.name_key, j.id)
