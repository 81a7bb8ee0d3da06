"""Store benchmark: streamed output inserts and opening a huge run history.

    python tests/benchmarks/bench_store.py [--quick] [--db URL]

``run(quick)`` returns the measurements as a dict (seconds and rates).  Full: 1,000,000 output
lines, a job with 1,000,000 runs, 100,000 jobs.  Quick: a tenth of each.  Default database: a
fresh SQLite file in a temporary folder (give --db to measure PostgreSQL; use an empty one).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from desktop.store import db as store_db  # noqa: E402
from desktop.store import queries as q  # noqa: E402
from desktop.store.migrations import write_transaction  # noqa: E402
from desktop.store.models import Job, Run, database_proxy  # noqa: E402
from desktop.store.records import OutputChunk  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LINES_PER_BATCH = 2000  # about what the hub gathers from all workers in 50 ms at full speed


def _spec(name: str) -> dict:
    return {
        "name": name,
        "script": "job.py",
        "schedule": {"v": 1, "kind": "manual", "tz": "UTC"},
    }


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def bench_output(lines: int) -> dict:
    job = q.create_job(_spec("output-bench"))
    runs = [q.create_run(job.id, T0 + timedelta(seconds=i)).id for i in range(10)]
    seqs = dict.fromkeys(runs, 0)
    text = "2026-01-01 00:00:00 INFO processed item 123456 of 999999 ok\n"
    batches = 0
    start = time.perf_counter()
    for first in range(0, lines, LINES_PER_BATCH):
        chunks = []
        for i in range(first, min(first + LINES_PER_BATCH, lines)):
            rid = runs[i % len(runs)]
            seqs[rid] += 1
            chunks.append(OutputChunk(rid, seqs[rid], "stdout", text))
        q.append_output(chunks)
        batches += 1
    elapsed = time.perf_counter() - start
    return {
        "output_lines": lines,
        "output_batches": batches,
        "output_seconds": round(elapsed, 3),
        "output_lines_per_second": round(lines / elapsed),
    }


def _bulk_runs(job_id: int, count: int) -> None:
    now = datetime(2026, 1, 1)
    for first in range(0, count, 50_000):
        with write_transaction(database_proxy):
            rows = [
                (job_id, now + timedelta(seconds=i), 1, "schedule", "succeeded", now, now, 0)
                for i in range(first, min(first + 50_000, count))
            ]
            fields = [
                Run.job,
                Run.scheduled_at,
                Run.attempt,
                Run.trigger_kind,
                Run.state,
                Run.created_at,
                Run.finished_at,
                Run.exit_code,
            ]
            for i in range(0, len(rows), 500):
                Run.insert_many(rows[i : i + 500], fields=fields).execute()


def bench_history(runs: int) -> dict:
    job = q.create_job(_spec("history-bench"))
    q.create_job(_spec("other"))
    setup, _ = _timed(_bulk_runs, job.id, runs)
    first_s, page = _timed(q.list_runs, job.id, 50)
    newest, cursor = page[0].id, page[-1].id
    pages = 0
    deep_start = time.perf_counter()
    while pages < 100:
        page = q.list_runs(job.id, 50, cursor)
        cursor = page[-1].id
        pages += 1
    pages_s = time.perf_counter() - deep_start
    mid_s, _ = _timed(q.list_runs, job.id, 50, newest - runs // 2)
    count_s, total = _timed(q.count_runs, job.id)
    jobs_s, jobs = _timed(q.list_jobs)
    assert total == runs and jobs[0].last_run_state == "succeeded"
    return {
        "history_runs": runs,
        "history_setup_seconds": round(setup, 1),
        "history_first_page_ms": round(first_s * 1000, 2),
        "history_next_100_pages_ms_each": round(pages_s * 1000 / pages, 2),
        "history_middle_page_ms": round(mid_s * 1000, 2),
        "history_count_ms": round(count_s * 1000, 1),
        "list_jobs_with_huge_history_ms": round(jobs_s * 1000, 2),
    }


def bench_many_jobs(count: int) -> dict:
    now = datetime(2026, 1, 1)
    with write_transaction(database_proxy):
        rows = [
            {
                "name": f"job-{i:06d}",
                "script": "job.py",
                "schedule_json": '{"kind":"manual","tz":"UTC","v":1}',
                "time_zone": "UTC",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(count)
        ]
        for i in range(0, len(rows), 500):
            Job.insert_many(rows[i : i + 500]).execute()
    seconds, jobs = _timed(q.list_jobs)
    return {"jobs": len(jobs), "list_jobs_seconds": round(seconds, 3)}


def run(quick: bool = False, url: str | None = None) -> dict:
    scale = 10 if quick else 1
    with tempfile.TemporaryDirectory() as folder:
        url = url or f"sqlite:///{Path(folder, 'bench.db').as_posix()}"
        database = store_db.open_store(url)
        try:
            results = {"database": store_db.describe(database), "quick": quick}
            results.update(bench_output(1_000_000 // scale))
            results.update(bench_history(1_000_000 // scale))
            results.update(bench_many_jobs(100_000 // scale))
        finally:
            database.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the full sizes")
    parser.add_argument("--db", metavar="URL", help="an EMPTY database to measure")
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.db), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
