"""Hub capacity: N protocol-level workers heartbeating every 5 s against a headless console.

    python tests/benchmarks/bench_hub.py [--quick] [--workers N] [--procs P] [--window S]

The console is a real ``python -m desktop --headless`` subprocess (so its CPU and memory are
its own); the workers are simulated by P sim_workers.py processes (default: one per
SIM_PER_PROC workers, at least 2), every one registered with its own token through
queries.add_worker.  Time to welcome all is measured from starting the simulators to the
last one's READY line.  Once all are welcomed and every worker has sent a heartbeat, the
console's CPU (psutil cpu_times delta), RSS and wake-ups are sampled over WINDOW seconds.
CPU per heartbeat = console CPU seconds in the window / heartbeats expected in it (N * WINDOW
/ INTERVAL): the number that stays comparable when the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import ROOT, Headless, Sample, metric, prepare_db

INTERVAL = 5
WORKERS = 10_000  # full run: the issue 20 goal
QUICK_WORKERS = 2_000
SIM_PER_PROC = 2_500  # one simulator process handles this many connections without lagging
GOAL_CPU = 25.0  # % of one core
GOAL_RSS = 400.0  # MB
GOAL_WELCOME = 10.0  # s


def loopback(i: int) -> str:
    """Worker I's own source address: all of 127.0.0.0/8 is the loopback on Linux."""
    i += 2  # skip 127.0.0.0 and 127.0.0.1 (the console's own)
    return f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def register(url: str, n: int) -> list[tuple[str, str]]:
    from desktop.store import queries
    from desktop.store.db import open_store

    database = open_store(url)
    try:
        with database.atomic():  # one transaction: 10,000 commits would take a minute
            return [(f"sim{i:05d}", queries.add_worker(f"sim{i:05d}", [], 1)[1]) for i in range(n)]
    finally:
        database.close()


def run(
    quick: bool = False,
    workers: int | None = None,
    procs: int | None = None,
    window: float | None = None,
) -> dict:
    n = workers if workers is not None else (QUICK_WORKERS if quick else WORKERS)
    procs = procs or max(2, math.ceil(n / SIM_PER_PROC))
    procs = min(procs, n)
    window = window if window is not None else (10 if quick else 60)
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
            cpu_before = sample.proc.cpu_times()
            t0 = time.perf_counter()
            for k in range(procs):
                part = base / f"tokens{k}.json"
                part.write_text(
                    json.dumps(
                        [(nm, tok, loopback(i)) for i, (nm, tok) in enumerate(pairs)][k::procs]
                    )
                )
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
            welcomed = retried = appointments = 0
            for sim in sims:
                line = sim.stdout.readline()
                if not line.startswith("READY"):
                    time.sleep(0.5)  # let the console's log catch up
                    log = (base / "console.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"simulated workers failed: {line.strip()}\n{log}")
                welcomed += int(line.split()[1])
                retried += int(line.split()[3])
                appointments += int(line.split()[4])
            connect_s = time.perf_counter() - t0
            cpu_after = sample.proc.cpu_times()
            welcome_cpu = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
            time.sleep(INTERVAL)  # settle: every worker has sent at least one heartbeat
            sample.begin()
            time.sleep(window)  # the measurement window itself
            s = sample.end()
            alive = all(sim.poll() is None for sim in sims)
        finally:
            for sim in sims:
                if sim.stdin:
                    sim.stdin.close()
            for sim in sims:
                try:
                    sim.wait(60)
                except subprocess.TimeoutExpired:
                    sim.kill()
                    sim.wait()
                if sim.stdout:
                    sim.stdout.close()
            console.stop()
    beats = n * s["seconds"] / INTERVAL
    per_beat_us = s["cpu_percent"] / 100 * s["seconds"] / beats * 1e6
    per_conn_kb = (s["rss_mb"] - idle_rss) * 1000 / n
    return {
        "scenario": "hub capacity",
        "metrics": [
            metric("workers welcomed", welcomed, "", f"{n}", welcomed == n and alive),
            metric(
                "time to connect and welcome all",
                connect_s,
                "s",
                f"< {GOAL_WELCOME:.0f} s",
                connect_s < GOAL_WELCOME,
            ),
            metric("connections refused or dropped and retried", retried, ""),
            metric("busy answers (503 + Retry-After) kept", appointments, ""),
            metric("console CPU to welcome all (per hello)", welcome_cpu * 1e6 / n, "us"),
            metric(
                "console CPU",
                s["cpu_percent"],
                "% of 1 core",
                f"< {GOAL_CPU:.0f}%",
                s["cpu_percent"] < GOAL_CPU,
            ),
            metric("console CPU per heartbeat", per_beat_us, "us"),
            metric(
                "console RSS", s["rss_mb"], "MB", f"< {GOAL_RSS:.0f} MB", s["rss_mb"] < GOAL_RSS
            ),
            metric("console RSS before workers", idle_rss, "MB"),
            metric("console RSS per connection", per_conn_kb, "KB"),
            metric("console wake-ups", s["wakeups_per_s"], "/s"),
            metric("console preemptions", s["preemptions_per_s"], "/s"),
        ],
        "notes": [
            f"{n} simulated workers in {procs} processes, heartbeat every {INTERVAL} s, "
            f"sampled over {window} s after {INTERVAL} s settling; SQLite"
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, help=f"default {WORKERS} ({QUICK_WORKERS} quick)")
    parser.add_argument("--procs", type=int, help="simulator processes")
    parser.add_argument("--window", type=float, help="seconds sampled (default 60, 10 quick)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.workers, args.procs, args.window), indent=1))


if __name__ == "__main__":
    main()
