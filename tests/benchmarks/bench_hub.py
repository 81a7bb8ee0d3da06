"""Hub capacity: 1,000 protocol-level workers heartbeating every 5 s against a headless console.

    python tests/benchmarks/bench_hub.py [--quick]

The console is a real ``python -m desktop --headless`` subprocess (so its CPU and memory are
its own); the workers are simulated by 2 sim_workers.py processes (500 connections each), every
one registered with its own token through queries.add_worker.  Once all are welcomed, the
console's CPU (psutil cpu_times delta), RSS and wake-ups are sampled over WINDOW seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import ROOT, Headless, Sample, metric, prepare_db

INTERVAL = 5
PROCS = 2


def register(url: str, n: int) -> list[tuple[str, str]]:
    from desktop.store import queries
    from desktop.store.db import open_store

    database = open_store(url)
    try:
        return [(f"sim{i:04d}", queries.add_worker(f"sim{i:04d}", [], 1)[1]) for i in range(n)]
    finally:
        database.close()


def run(quick: bool = False) -> dict:
    n, window = 1000, (10 if quick else 60)
    with tempfile.TemporaryDirectory(prefix="jt-hub-") as tmp:
        base = Path(tmp)
        url = f"sqlite:///{base / 'hub.db'}"
        prepare_db(url, {"heartbeat_interval": str(INTERVAL)})
        pairs = register(url, n)
        console = Headless(url, base / "console.log")
        console.start()
        sims = []
        try:
            sample = Sample(console.proc.pid)
            idle_rss = sample.proc.memory_info().rss / 1e6
            t0 = time.perf_counter()
            for k in range(PROCS):
                part = base / f"tokens{k}.json"
                part.write_text(json.dumps(pairs[k::PROCS]))
                sims.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(ROOT / "tests/benchmarks/sim_workers.py"),
                            console.hub_url,
                            str(part),
                            str(INTERVAL),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            welcomed = 0
            for sim in sims:
                line = sim.stdout.readline()
                if not line.startswith("READY"):
                    raise RuntimeError(f"simulated workers failed: {line.strip()}")
                welcomed += int(line.split()[1])
            connect_s = time.perf_counter() - t0
            time.sleep(INTERVAL)  # settle: every worker has sent at least one heartbeat
            sample.begin()
            time.sleep(window)  # the measurement window itself
            s = sample.end()
        finally:
            for sim in sims:
                sim.stdin.close()
            for sim in sims:
                sim.wait(60)
            console.stop()
    return {
        "scenario": "hub capacity",
        "metrics": [
            metric("workers welcomed", welcomed, "", f"{n}", welcomed == n),
            metric("time to connect and welcome all", connect_s, "s"),
            metric("console CPU", s["cpu_percent"], "% of 1 core", "< 10%", s["cpu_percent"] < 10),
            metric("console RSS", s["rss_mb"], "MB", "< 300 MB", s["rss_mb"] < 300),
            metric("console RSS before workers", idle_rss, "MB"),
            metric("console wake-ups", s["wakeups_per_s"], "/s"),
        ],
        "notes": [
            f"{n} simulated workers in {PROCS} processes, heartbeat every {INTERVAL} s, "
            f"sampled over {window} s after {INTERVAL} s settling; SQLite"
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=1))
