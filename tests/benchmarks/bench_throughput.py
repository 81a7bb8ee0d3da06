"""Throughput: sustained runs per second end to end, on SQLite and on PostgreSQL.

    python tests/benchmarks/bench_throughput.py [--quick]

The real Core runs in this process on plain asyncio (as ``--headless``); 4 real worker
subprocesses with 8 slots each run ``noop``, an executable ``#!/bin/sh`` script that prints
one line.  FEEDERS concurrent tasks keep up to WINDOW manual runs outstanding through
``Core.run_now`` (each one a run row, then dispatch, start, one output line and the result, all
committed and acked); one sequential caller would measure run_now's round trip instead.
The rate is taken between the 20th and 90th percentile of completions (warm-up and drain left
out), over N runs, median of REPEATS repetitions.  After each repetition every run is checked
in the database: succeeded, exactly one output line.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import core_with_workers, median, metric, pg_schema_url

NOOP = "#!/bin/sh\necho ok\n"
WORKERS, SLOTS, WINDOW, FEEDERS = 4, 8, 128, 16
ALLOW = {"concurrency": "allow"}


def _check(job_id: int) -> tuple[int, int, int]:
    from desktop.store.models import Run, RunOutput

    runs = Run.select().where(Run.job == job_id)
    good = runs.where(Run.state == "succeeded").count()
    lines = RunOutput.select().join(Run).where((Run.job == job_id) & (RunOutput.text == "ok\n"))
    return runs.count(), good, lines.count()


async def one_repetition(url: str, base: Path, n: int) -> dict:
    from desktop.core import runs as states
    from desktop.core.events import RunChanged

    async with core_with_workers(url, base, {"noop": NOOP}, WORKERS, SLOTS) as (core, _, _):
        job = await core.save_job(
            {"name": "noop", "script": "noop", "schedule": {"kind": "manual"}, **ALLOW}
        )
        done_at: list[float] = []
        seen: set[int] = set()
        room = asyncio.Semaphore(WINDOW)
        all_done = asyncio.Event()

        def on_event(event) -> None:
            ended = isinstance(event, RunChanged) and event.state in states.TERMINAL
            if ended and event.run_id not in seen:
                seen.add(event.run_id)
                done_at.append(time.perf_counter())
                room.release()
                if len(seen) >= n:
                    all_done.set()

        unsubscribe = core.events.subscribe(on_event)
        t0 = time.perf_counter()
        left = [n]

        async def feeder() -> None:
            while left[0] > 0:
                left[0] -= 1
                await room.acquire()
                await core.run_now(job.id)

        await asyncio.gather(*(feeder() for _ in range(FEEDERS)))
        await asyncio.wait_for(all_done.wait(), 300)
        total = time.perf_counter() - t0
        unsubscribe()
        count, good, lines = await core.db.call(_check, job.id)
    lo, hi = int(n * 0.2), int(n * 0.9)
    return {
        "steady": (hi - lo) / (done_at[hi] - done_at[lo]),
        "overall": n / total,
        "correct": count == n and good == n and lines == n,
        "detail": f"{count} runs, {good} succeeded, {lines} output lines",
    }


def measure(url_kind: str, n: int, repeats: int) -> list[dict]:
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="jt-tput-") as tmp:
            if url_kind == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'tput.db'}"
                results.append(asyncio.run(one_repetition(url, Path(tmp), n)))
            else:
                with pg_schema_url() as url:
                    results.append(asyncio.run(one_repetition(url, Path(tmp), n)))
    return results


def run(quick: bool = False) -> dict:
    n, repeats = (400, 1) if quick else (1500, 3)
    rows, notes = [], []
    for kind in ("sqlite", "postgresql"):
        try:
            results = measure(kind, n, repeats)
        except Exception as exc:  # e.g. no PostgreSQL server: say so, keep the other numbers
            notes.append(f"{kind}: not measured: {exc!r}")
            continue
        steady = median([r["steady"] for r in results])
        overall = median([r["overall"] for r in results])
        goal, ok = (">= 500/s", steady >= 500) if kind == "sqlite" else ("", None)
        rows.append(metric(f"{kind}: sustained runs/s (steady)", steady, "runs/s", goal, ok))
        rows.append(metric(f"{kind}: runs/s incl. warm-up and drain", overall, "runs/s"))
        correct = all(r["correct"] for r in results)
        label = f"{kind}: every run stored, succeeded, 1 line"
        rows.append(metric(label, correct, "", "all", correct))
        notes.append(f"{kind}: " + "; ".join(r["detail"] for r in results))
    notes.insert(
        0, f"{WORKERS} workers x {SLOTS} slots, {n} runs, window {WINDOW}, median of {repeats}"
    )
    return {"scenario": "throughput", "metrics": rows, "notes": notes}


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=1))
