"""The reads the console makes, as plain functions run on the database thread
(`await core.read(fn, ...)` calls `fn(reads, ...)` with the core's service.reads.Reads): one call
per frame of events, not one per event, and only plain records and rows come back across the
thread."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from desktop.ui.rows import JobRow, RunRow, job_row, job_sort_key, run_row


def job_rows(reads: Any, sort_column: int = 0, descending: bool = False) -> list[JobRow]:
    """Every job as a table row, in the table's order.  Built and sorted here, on the database
    thread: describing 10,000 schedules takes a quarter second the GUI thread must not lose."""
    rows = [job_row(r) for r in reads.list_jobs()]
    rows.sort(key=job_sort_key(sort_column), reverse=descending)
    return rows


def job_rows_page(reads: Any, after_id: int, limit: int) -> list[JobRow]:
    """Job table rows in id order, a page at a time (Reads.list_jobs_page)."""
    return [job_row(r) for r in reads.list_jobs_page(after_id, limit)]


def sort_job_rows(
    _reads: Any, rows: list[JobRow], sort_column: int, descending: bool
) -> list[JobRow]:
    rows.sort(key=job_sort_key(sort_column), reverse=descending)
    return rows


def first_job_rows(
    reads: Any, sort_column: int, descending: bool, limit: int
) -> tuple[list[JobRow], int | None]:
    """The first ``limit`` rows of the job table in its order, and how many jobs there are
    when that is more (None: these are all).  With 100,000 jobs the whole table takes seconds
    to read and describe; the first screen needs a few hundred.  Exact for the name order (the
    default); other orders read all."""
    if sort_column != 0:
        return job_rows(reads, sort_column, descending), None
    names = reads.job_names()
    if len(names) <= limit:
        return job_rows(reads, sort_column, descending), None
    names.sort(key=lambda pair: (pair[1].casefold(), pair[0]), reverse=descending)
    first = [job_id for job_id, _ in names[:limit]]
    rows = [job_row(r) for r in reads.jobs_with_last_run(first)]
    rows.sort(key=job_sort_key(sort_column), reverse=descending)
    return rows, len(names)


def job_changes(
    reads: Any, shown: dict[int, JobRow], sort_column: int = 0, descending: bool = False
) -> tuple[list[JobRow], list[int]]:
    """What differs between the rows shown and the database: (new or changed rows, removed
    ids).  Compared here so the GUI thread only touches the rows that changed."""
    rows = job_rows(reads, sort_column, descending)
    fresh = {r.id: r for r in rows}
    changed = [r for r in rows if shown.get(r.id) != r]
    return changed, [job_id for job_id in shown if job_id not in fresh]


def run_rows(reads: Any, job_id: int, limit: int, before_id: int | None) -> list[RunRow]:
    return [run_row(r) for r in reads.list_runs(job_id, limit, before_id)]


def jobs_by_id(reads: Any, ids: Iterable[int]) -> dict[int, Any]:
    """Current records for the given jobs (None: deleted meanwhile)."""
    return {i: reads.get_job(i) for i in ids}


def runs_by_id(reads: Any, ids: Iterable[int]) -> dict[int, Any]:
    return {i: reads.get_run(i) for i in ids}


def run_counts(reads: Any) -> tuple[int, int]:
    """(running, queued): dispatched runs count as running (a worker has them)."""
    return reads.run_counts()


def display_settings(reads: Any) -> dict[str, str]:
    return reads.all_settings()
