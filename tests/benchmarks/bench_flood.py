"""Log flood: one run printing N numbered lines as fast as it can, every line stored once.

    python tests/benchmarks/bench_flood.py [--quick]

The real Core in this process (plain asyncio, as ``--headless``), one real worker subprocess.
``flood.py`` writes "0\\n" .. "N-1\\n" in blocks of 10,000 lines through a 64 KiB buffer.
Ingest rate = N / (child process created -> result committed in the console); the result is
committed after every output message (seq order), so all lines are in the database by then.
Then the whole output is read back from the database and compared with the expected text:
every line present, once, in order, nothing truncated.  N = 1,000,000 (quick: 200,000),
median of REPEATS runs.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import core_with_workers, median, metric

FLOOD = """import sys
n = int(sys.argv[1])
out = open(1, "w", buffering=1 << 16, closefd=False)
for start in range(0, n, 10_000):
    out.write("".join(f"{i}\\n" for i in range(start, min(n, start + 10_000))))
out.flush()
"""


def expected(n: int) -> str:
    return "".join(f"{i}\n" for i in range(n))


async def one(base: Path, n: int) -> dict:
    from desktop.core import runs as states
    from desktop.core.events import RunChanged
    from desktop.store import queries

    url = f"sqlite:///{base / 'flood.db'}"
    async with core_with_workers(url, base, {"flood.py": FLOOD}, 1, 1) as (core, _, _):
        job = await core.save_job(
            {"name": "flood", "script": "flood.py", "schedule": {"kind": "manual"}}
        )
        ended = asyncio.Event()
        ended_at = [0.0]

        def on_event(event) -> None:
            if isinstance(event, RunChanged) and event.state in states.TERMINAL:
                ended_at[0] = time.time()
                ended.set()

        unsubscribe = core.events.subscribe(on_event)
        run_id = await core.run_now(job.id, [str(n)])
        await asyncio.wait_for(ended.wait(), 600)
        unsubscribe()
        record = await core.db.call(queries.get_run, run_id)
        chunks = await core.db.call(queries.read_output, run_id)
    text = "".join(c.text for c in chunks if c.stream == "stdout")
    started = record.started_at
    started = (started if started.tzinfo else started.replace(tzinfo=timezone.utc)).timestamp()
    return {
        "rate": n / (ended_at[0] - started),
        "exact": record.state == states.SUCCEEDED
        and not record.output_truncated
        and text == expected(n),
        "detail": f"{record.state}, {len(chunks)} chunks, {text.count(chr(10)):,} lines stored",
    }


def run(quick: bool = False) -> dict:
    n, repeats = (200_000, 1) if quick else (1_000_000, 3)
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="jt-flood-") as tmp:
            results.append(asyncio.run(one(Path(tmp), n)))
    rate = median([r["rate"] for r in results])
    exact = all(r["exact"] for r in results)
    return {
        "scenario": "log flood",
        "metrics": [
            metric("every line stored exactly once", exact, "", "all runs", exact),
            metric("lines ingested per second", rate, "lines/s", ">= 100,000/s", rate >= 100_000),
        ],
        "notes": [f"{n:,} lines, median of {repeats}; " + "; ".join(r["detail"] for r in results)],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=1))
