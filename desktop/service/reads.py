"""Reads for code that runs on the database thread on a front end's behalf (the window builds
its table rows there: `await core.read(fn, *args)` calls `fn(reads, *args)` with a `Reads`).
Only plain records (desktop.store.records) come back; no model or query leaves the store."""

from __future__ import annotations

from collections.abc import Iterable

from desktop.core import runs as run_states
from desktop.store import queries
from desktop.store.records import JobRecord, RunRecord


class Reads:
    """Blocking reads; call them only on the database thread (inside `Core.read`)."""

    def list_jobs(self) -> list[JobRecord]:
        return queries.list_jobs()

    def list_jobs_page(self, after_id: int, limit: int) -> list[JobRecord]:
        return queries.list_jobs_page(after_id, limit)

    def job_names(self) -> list[tuple[int, str]]:
        return queries.job_names()

    def jobs_with_last_run(self, job_ids: Iterable[int]) -> list[JobRecord]:
        return queries.jobs_with_last_run(job_ids)

    def get_job(self, job_id: int) -> JobRecord | None:
        return queries.get_job(job_id)

    def list_runs(self, job_id: int, limit: int, before_id: int | None) -> list[RunRecord]:
        return queries.list_runs(job_id, limit, before_id)

    def get_run(self, run_id: int) -> RunRecord | None:
        return queries.get_run(run_id)

    def run_counts(self) -> tuple[int, int]:
        """(running, queued): dispatched runs count as running (a worker has them)."""
        running = queries.count_runs(state=run_states.RUNNING) + queries.count_runs(
            state=run_states.DISPATCHED
        )
        return running, queries.count_runs(state=run_states.QUEUED)

    def all_settings(self) -> dict[str, str]:
        return queries.all_settings()
