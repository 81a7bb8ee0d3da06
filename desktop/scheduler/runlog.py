"""One console.log line when a run starts and when it ends, with job, run id and worker: what
an admin greps for after the fact ("did backup run last night, and where?")."""

from __future__ import annotations

import logging

from desktop.core.runs import TERMINAL
from desktop.store.records import RunRecord

log = logging.getLogger("desktop.runs")


def log_run(record: RunRecord) -> None:
    worker = record.worker_name or "-"
    if record.state == "running":
        log.info(
            "run %s of job %r started on worker %s (%s)",
            record.id,
            record.job_name,
            worker,
            record.trigger,
        )
    elif record.state in TERMINAL:
        detail = f" exit {record.exit_code}" if record.exit_code is not None else ""
        reason = f": {record.reason}" if record.reason else ""
        log.info(
            "run %s of job %r ended %s%s on worker %s%s",
            record.id,
            record.job_name,
            record.state,
            detail,
            worker,
            reason,
        )
