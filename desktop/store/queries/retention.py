"""Retention: finished runs and their output pruned by age and by count per job."""

from __future__ import annotations

from datetime import datetime, timedelta

from desktop.core import runs as run_states
from desktop.store.models import Job, Run, RunOutput
from desktop.store.queries.common import _naive, _tuples, _write
from desktop.store.queries.settings import _known_setting

PRUNE_BATCH = 500  # runs deleted per transaction: short enough not to hold up other writers


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
        max_age_days = int(_known_setting("retention_days"))
    if max_runs_per_job is None:
        max_runs_per_job = int(_known_setting("retention_runs_per_job"))
    counts = {"runs_by_age": 0, "runs_by_count": 0, "output_rows": 0}
    finished = ~Run.state.in_(run_states.ACTIVE)
    if max_age_days > 0:
        cutoff = _naive(now) - timedelta(days=max_age_days)
        while True:
            ids = [
                i
                for (i,) in _tuples(
                    Run.select(Run.id)
                    .where(finished & (Run.created_at < cutoff))
                    .limit(PRUNE_BATCH)
                )
            ]
            if not ids:
                break
            counts["output_rows"] += _delete_runs(ids)
            counts["runs_by_age"] += len(ids)
    if max_runs_per_job > 0:
        job_ids = [i for (i,) in _tuples(Job.select(Job.id))]
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
                    for (i,) in _tuples(
                        Run.select(Run.id)
                        .where((Run.job == job_id) & (Run.id < keep_from) & finished)
                        .limit(PRUNE_BATCH)
                    )
                ]
                if not ids:
                    break
                counts["output_rows"] += _delete_runs(ids)
                counts["runs_by_count"] += len(ids)
    return counts
