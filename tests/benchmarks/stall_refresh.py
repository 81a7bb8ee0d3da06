"""How long the console's periodic O(workers) work holds its database thread and its loop,
with a crowd of simulated workers connected (the stalls behind the dispatch p99 at 10,000).

    python tests/benchmarks/stall_refresh.py [CROWD] [ROUNDS] [--probe]

The real Core on SQLite, CROWD idle workers heartbeating every 5 s (harness.idle_crowd), and
two probes while it idles: a trivial database call every 10 ms (how long a scheduler pass
would wait for the database thread) and a 10 ms sleep (how late the loop wakes).  Then ROUNDS
times the workers refresh the console runs after any change it notices (service/changes.py),
with the database thread's CPU time it took.  Figures on a shared machine are noisy in wall
time; the CPU milliseconds per refresh are the steadier measure.  ``--probe`` also runs the
stall probe (stalls.py) and prints what ran during each stall of the loop.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import idle_crowd, prepare_db

IDLE = 20.0  # seconds of idle probing before the refreshes (heartbeats, silence watch, alive)


async def measure(base: Path, crowd: int, rounds: int, stalls: bool = False) -> dict:
    from desktop.service import Core

    url = f"sqlite:///{base / 'stall.db'}"
    prepare_db(url, {"heartbeat_interval": "5"})
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    try:
        async with idle_crowd(core, base, crowd):
            if not stalls:
                return await probe(core, rounds)
            from tests.benchmarks.stalls import StallProbe

            with StallProbe(db=core.db) as watch:
                t0 = time.perf_counter()
                result = await probe(core, rounds)
            result["stalls"] = watch.report(t0)
            return result
    finally:
        await core.stop()


async def probe(core, rounds: int) -> dict:
    waits: list[tuple[float, float]] = []
    lags: list[tuple[float, float]] = []

    async def ping() -> None:
        while True:
            t0 = time.perf_counter()
            await core.db.call(int)
            waits.append((t0, time.perf_counter() - t0))
            await asyncio.sleep(0.01)

    async def lag() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((t0, time.perf_counter() - t0 - 0.01))

    tasks = [asyncio.create_task(ping()), asyncio.create_task(lag())]
    try:
        await asyncio.sleep(IDLE)  # idle with the crowd: heartbeats, silence watch, alive mark
        idle_end = time.perf_counter()
        refresh = []
        for _ in range(rounds):
            db_cpu0 = await core.db.call(time.thread_time)
            loop_cpu0, t0 = time.thread_time(), time.perf_counter()
            await core.workers.refresh()
            wall, loop_cpu = time.perf_counter() - t0, time.thread_time() - loop_cpu0
            db_cpu = await core.db.call(time.thread_time) - db_cpu0
            during = [w for t, w in waits if t0 <= t <= t0 + wall]
            refresh.append(
                {
                    "wall_ms": wall * 1000,
                    "db_thread_cpu_ms": db_cpu * 1000,
                    "loop_cpu_ms": loop_cpu * 1000,
                    "worst_db_wait_ms": max(during, default=0.0) * 1000,
                    "worst_loop_lag_ms": max(
                        (x for t, x in lags if t0 <= t <= t0 + wall), default=0.0
                    )
                    * 1000,
                }
            )
            await asyncio.sleep(2)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    idle_waits = sorted(w for t, w in waits if t < idle_end)
    idle_lags = sorted(x for t, x in lags if t < idle_end)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else 0

    return {
        "idle_db_wait_p50_p99_max_ms": [pct(idle_waits, p) for p in (50, 99, 100)],
        "idle_loop_lag_p50_p99_max_ms": [pct(idle_lags, p) for p in (50, 99, 100)],
        "refresh": refresh,
        "refresh_median": {
            k: statistics.median(r[k] for r in refresh) for k in refresh[0]
        } if refresh else {},
    }  # fmt: skip


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    crowd = int(numbers[0]) if numbers else 10_000
    rounds = int(numbers[1]) if len(numbers) > 1 else 3
    with tempfile.TemporaryDirectory(prefix="jt-stall-") as tmp:
        result = asyncio.run(measure(Path(tmp), crowd, rounds, "--probe" in sys.argv))
    report = result.pop("stalls", "")
    print(json.dumps(result, indent=1))
    print(report)
