"""Dispatch latency: how late a scheduled job's script really starts, against the spawn floor.

    python tests/benchmarks/bench_dispatch.py [--quick]

The real Core (store, hub on 127.0.0.1, scheduler) runs in this process on plain asyncio, like
``--headless``; 4 real worker subprocesses (2 slots each) run ``first_line.py``, which prints
its own ``time.time()`` as its first line.  To get 1,000 firings in 100 s instead of 1,000 s,
10 interval jobs fire every second with start times staggered by 100 ms (quick: 100 firings in
12 s).  For each firing, all on one machine and one clock:

- due -> received: scheduled time to the worker's receipt of the dispatch frame (the probe in
  probe_worker.py; scheduler wake-up, run row, dispatch commit, hub send, network, worker parse).
  The scheduler fires a run FIRE_LEAD (20 ms) ahead and the worker holds it until the due time
  (the dispatch's ``delay``), so this is negative when all of that fits in the lead;
- due -> spawned: to the worker's ``started.at`` (child process created);
- due -> first line: to the script's own first-line timestamp.
- run now: a manual run (no lead) from the request to the child process, for context.

The spawn floor, in the same run and under the same load, is the same script started directly
from this process with asyncio's create_subprocess_exec (no scheduler) twice a second while the
jobs fire: start -> spawned and start -> first line.
Overhead above the floor = due->first line minus floor start->first line, at p50 and at p99;
and the same up to "child created", which leaves out the script's own start-up: that is tens of
milliseconds of noise on a busy 2-core machine and can even make the first-line overhead
negative (the floor's children compete with the scheduled ones for the same CPUs).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import (
    GcPauses,
    core_with_workers,
    idle_crowd,
    metric,
    ms,
    percentile,
)
from tests.benchmarks.probe_worker import received_times

SCRIPT = "import time\nprint(time.time())\nimport sys\n"
WORKERS, SLOTS, JOBS = 4, 2, 10
FLOOR_EVERY = 0.5  # seconds between direct spawns
MANUAL_RUNS = 100  # "run now" requests timed after the firings (quick: 20)


def epoch(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


async def floor_samples(
    script: Path, start_at: float, until: asyncio.Event
) -> tuple[list[float], list[float]]:
    """Direct spawns twice a second from START_AT (the first due time) until UNTIL is set: the
    floor is measured under the same load as the scheduled runs, not on an idle machine."""
    spawned, first = [], []
    await asyncio.sleep(max(0.0, start_at - time.time()))
    while not until.is_set():
        await asyncio.sleep(FLOOR_EVERY)
        t0 = time.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-u", str(script), stdout=asyncio.subprocess.PIPE
        )
        t1 = time.time()
        line = await proc.stdout.readline()
        await proc.wait()
        spawned.append(t1 - t0)
        first.append(float(line) - t0)
    return spawned, first


async def measure(base: Path, firings: int, crowd: int = 0) -> dict:
    url = f"sqlite:///{base / 'dispatch.db'}"
    scripts = {"first_line.py": SCRIPT}
    async with (
        core_with_workers(url, base, scripts, WORKERS, SLOTS, probe=True) as (core, fleet, names),
        idle_crowd(core, base, crowd) if crowd else contextlib.nullcontext(),
    ):
        with GcPauses() as pauses:
            m = await fire_and_measure(core, base, firings)
    m["gc"] = pauses
    received: dict[int, float] = {}  # read once the workers have stopped and flushed their logs
    for name in names:
        received.update(received_times(fleet.log_text(name)))
    runs, due = m.pop("runs"), m.pop("due")
    m["recv"] = [received[r.id] - due[r.id] for r in runs if r.id in received]
    return m


async def fire_and_measure(core, base: Path, firings: int) -> dict:
    from desktop.core import runs as states
    from desktop.core.events import RunChanged
    from desktop.store import queries

    done: set[int] = set()
    enough = asyncio.Event()

    def on_event(event) -> None:
        if isinstance(event, RunChanged) and event.state in states.TERMINAL:
            done.add(event.run_id)
            if len(done) >= firings:
                enough.set()

    unsubscribe = core.events.subscribe(on_event)
    first_due = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    job_ids = []
    for i in range(JOBS):
        start = first_due + timedelta(seconds=i / JOBS)
        spec = {
            "name": f"every-second-{i}",
            "script": "first_line.py",
            "schedule": {
                "kind": "interval",
                "every": 1,
                "unit": "seconds",
                "start": start.isoformat(),
            },
            "concurrency": "allow",
            "misfire_policy": "skip",
        }
        job_ids.append((await core.save_job(spec)).id)
    script = base / "w0" / "scripts" / "first_line.py"
    floor = asyncio.create_task(floor_samples(script, first_due.timestamp(), enough))
    await asyncio.wait_for(enough.wait(), firings / JOBS + 120)
    floor_spawned, floor_first = await floor
    for job_id in job_ids:
        await core.set_job_enabled(job_id, False)
    while await core.db.call(queries.active_runs):
        await asyncio.sleep(0.1)  # the last few runs finishing; nothing publishes "all idle"
    unsubscribe()
    manual = await run_now_latencies(core, job_ids[0], MANUAL_RUNS if firings >= 1000 else 20)
    lateness = list(core.scheduler.lateness)
    runs = []
    for job_id in job_ids:
        runs += await core.db.call(queries.list_runs, job_id, 100_000)
    runs = [r for r in runs if r.state == states.SUCCEEDED]
    firsts = {}
    for r in runs:
        chunks = await core.db.call(queries.read_output, r.id, 0, 1)
        firsts[r.id] = float(chunks[0].text.split("\n", 1)[0])
    runs = sorted(runs, key=lambda r: r.scheduled_at)[:firings]
    due = {r.id: epoch(r.scheduled_at) for r in runs}
    return {
        "firings": len(runs),
        "runs": runs,
        "due": due,
        "spawn": [epoch(r.started_at) - due[r.id] for r in runs],
        "first": [firsts[r.id] - due[r.id] for r in runs],
        "floor_spawn": floor_spawned,
        "floor_first": floor_first,
        "lateness": lateness,
        "manual": manual,
    }


async def run_now_latencies(core, job_id: int, count: int) -> list[float]:
    """ "Run now" (no lead: a person's click has no due time to prepare for): from the request
    to the worker's child process, one at a time, a quarter second apart."""
    from desktop.core import runs as states
    from desktop.store import queries

    out = []
    for _ in range(count):
        await asyncio.sleep(0.25)
        asked = time.time()
        run_id = await core.run_now(job_id)
        while True:
            record = await core.db.call(queries.get_run, run_id)
            if record.state in states.TERMINAL:
                break
            await asyncio.sleep(0.02)
        if record.state == states.SUCCEEDED and record.started_at is not None:
            out.append(epoch(record.started_at) - asked)
    return out


CROWD = 10_000  # idle workers connected during the second measurement (issue 20)


def rows_for(m: dict, firings: int, prefix: str = "") -> list[dict]:
    p = {
        k: (ms(percentile(v, 50)), ms(percentile(v, 99)))
        for k, v in m.items()
        if k not in ("firings", "gc")
    }
    over50 = p["first"][0] - p["floor_first"][0]
    over99 = p["first"][1] - p["floor_first"][1]
    rows = [
        metric(f"{prefix}firings measured", m["firings"], "", f"{firings}", m["firings"] == firings)
    ]
    labels = {
        "lateness": "scheduler pass after its plan (due - lead)",
        "recv": "due -> worker received dispatch",
        "spawn": "due -> child process created",
        "first": "due -> script's first line",
        "floor_spawn": "floor: start -> child created",
        "floor_first": "floor: start -> first line",
        "manual": "run now: request -> child process created",
    }
    for key, label in labels.items():
        rows.append(metric(f"{prefix}{label} p50", p[key][0], "ms"))
        rows.append(metric(f"{prefix}{label} p99", p[key][1], "ms"))
    rows.append(
        metric(f"{prefix}overhead above floor p50 (first line)", over50, "ms", "< 2 ms", over50 < 2)
    )
    rows.append(
        metric(
            f"{prefix}overhead above floor p99 (first line)", over99, "ms", "< 10 ms", over99 < 10
        )
    )
    # The same up to "child created": Python's start-up (tens of ms, very noisy on a shared
    # machine) is then out of both sides, and what is left is the scheduler, hub and worker.
    # Issue 20 tightened these two: p50 < 1 ms, p99 < 5 ms, also with 10,000 workers connected.
    spawn50 = p["spawn"][0] - p["floor_spawn"][0]
    spawn99 = p["spawn"][1] - p["floor_spawn"][1]
    rows.append(
        metric(f"{prefix}overhead above floor p50 (child created)", spawn50, "ms", "< 1 ms",
               spawn50 < 1)
    )  # fmt: skip
    rows.append(
        metric(f"{prefix}overhead above floor p99 (child created)", spawn99, "ms", "< 5 ms",
               spawn99 < 5)
    )  # fmt: skip
    gc = m["gc"]
    rows.append(
        metric(f"{prefix}longest full garbage collection (console's process)",
               ms(gc.longest[2]), "ms")
    )  # fmt: skip
    rows.append(metric(f"{prefix}full garbage collections", gc.count[2], ""))
    return rows


def run(quick: bool = False, crowd: int | None = None) -> dict:
    firings = 100 if quick else 1000
    crowd = (1000 if quick else CROWD) if crowd is None else crowd
    crowd_firings = 100 if quick else 300
    with tempfile.TemporaryDirectory(prefix="jt-dispatch-") as tmp:
        m = asyncio.run(measure(Path(tmp), firings))
    rows = rows_for(m, firings)
    notes = [
        f"{JOBS} interval jobs every 1 s staggered by {1000 // JOBS} ms, {WORKERS} workers x "
        f"{SLOTS} slots, {firings} firings; floor: {len(m['floor_first'])} direct spawns "
        "interleaved"
    ]
    if crowd:
        with tempfile.TemporaryDirectory(prefix="jt-dispatch-crowd-") as tmp:
            c = asyncio.run(measure(Path(tmp), crowd_firings, crowd))
        rows += rows_for(c, crowd_firings, f"{crowd:,} workers: ")
        notes.append(
            f"{crowd:,} workers: the same jobs and real workers while {crowd:,} more registered "
            "workers (simulated in 4 separate processes, heartbeat every 5 s, offering another "
            f"script) are connected; {crowd_firings} firings"
        )
    return {"scenario": "dispatch latency", "metrics": rows, "notes": notes}


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=1))
