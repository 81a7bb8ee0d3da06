"""Run the benchmark suite against the real headless console and real workers; print a table.

    python tests/benchmarks/run.py [--quick] [--json OUT] [--only NAME ...]

Each scenario runs in a fresh Python process (its memory, threads and event loop do not leak
into the next one) and returns rows of (metric, value, goal, verdict); the scenarios document
what exactly they measure in their module docstrings (bench_<name>.py).  ``--quick`` uses
smaller sizes (about two minutes on 2 cores); the full run about eleven minutes.
Verdicts are measurements, not assertions: a missed goal still exits 0; exit 1 means a
scenario could not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import ROOT, machine, metric

SCENARIOS = [
    "dispatch",
    "throughput",
    "hub",
    "flood",
    "scale",
    "idle",
    "ui",
    "storm",
    "schedules",
    "store",
]
MARK = "BENCH-RESULT "
CHILD_TIMEOUT = 1200


# --- adapters for the micro-benchmarks that return their own dicts ----------------------------


def _from_schedules(out: dict) -> dict:
    rows = [
        metric(f"next_after: {kind}", seconds * 10, "us/call")
        for kind, seconds in out["per_100k_seconds"].items()
    ]
    note = f"{out['calls']:,} calls per kind, median of {out['repeats']}"
    return {"scenario": "schedules (micro)", "metrics": rows, "notes": [note]}


def _from_store(out: dict) -> dict:
    units = {"_ms": "ms", "_seconds": "s", "_per_second": "/s", "_ms_each": "ms"}
    rows = []
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        unit = next((u for suffix, u in units.items() if key.endswith(suffix)), "")
        rows.append(metric(key, value, unit))
    return {"scenario": "store (micro)", "metrics": rows, "notes": [str(out.get("database", ""))]}


def _from_ui(out: dict) -> dict:
    rows = []
    for name, result in out.items():
        flood = result.get("flood", {}) if isinstance(result, dict) else {}
        if "max_gap_ms" in flood:
            gap = flood["max_gap_ms"]
            rows.append(metric(f"{name}: largest Qt loop gap", gap, "ms", "< 50 ms", gap < 50))
            rows.append(metric(f"{name}: p99 loop gap", flood.get("p99_gap_ms"), "ms"))
            if "lines_stored" in flood:
                rows.append(metric(f"{name}: lines stored", flood["lines_stored"], "lines"))
    note = "E's bench_ui: main window offscreen, 10,000 jobs, a run printing 50,000 lines/s"
    return {"scenario": "UI responsiveness", "metrics": rows, "notes": [note]}


def child(name: str, quick: bool) -> dict:
    import importlib

    module = importlib.import_module(f"tests.benchmarks.bench_{name}")
    # quick UI run: the simulated hub only (its real-worker half alone takes ~25 s of 2 minutes)
    out = module.run(quick, real=False) if name == "ui" and quick else module.run(quick)
    adapt = {"schedules": _from_schedules, "store": _from_store, "ui": _from_ui}.get(name)
    return adapt(out) if adapt else out


# --- the parent: one child process per scenario -----------------------------------------------


def run_scenario(name: str, quick: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    if quick:
        cmd.append("--quick")
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    env.setdefault("JOBTRIGGER_LOG_LEVEL", "WARNING")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return {"scenario": name, "error": f"did not finish in {CHILD_TIMEOUT} s", "metrics": []}
    elapsed = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            result = json.loads(line[len(MARK) :])
            result["seconds"] = round(elapsed, 1)
            return result
    tail = (proc.stderr or proc.stdout)[-3000:]
    return {"scenario": name, "error": f"exit code {proc.returncode}: {tail}", "metrics": []}


def verdict(ok) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def table(results: list[dict]) -> str:
    head = ("scenario", "metric", "value", "goal", "verdict")
    rows = []
    for r in results:
        if r.get("error"):
            rows.append((r["scenario"], "ERROR", r["error"].splitlines()[-1][:60], "", "ERROR"))
        for m in r["metrics"]:
            value = m["value"]
            if isinstance(value, float):
                value = f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}"
            elif isinstance(value, int) and not isinstance(value, bool):
                value = f"{value:,}"
            rows.append(
                (
                    r["scenario"],
                    m["metric"],
                    f"{value} {m['unit']}".strip(),
                    m["goal"],
                    verdict(m["ok"]),
                )
            )
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Job Trigger benchmarks (issue 8)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under two minutes")
    parser.add_argument("--json", metavar="OUT", help="also write all results to this file")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=SCENARIOS,
        help=f"run only these: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(child(args.child, args.quick)), flush=True)
        return 0
    info = machine()
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, "
        f"{info['platform']}; {'quick' if args.quick else 'full'} run",
        flush=True,
    )
    results = []
    t0 = time.perf_counter()
    for name in args.only or SCENARIOS:
        print(f"... {name}", file=sys.stderr, flush=True)
        result = run_scenario(name, args.quick)
        results.append(result)
        print(f"    {name}: {result.get('seconds', '?')} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - t0
    print(table(results))
    for r in results:
        for note in r.get("notes", []):
            print(f"  {r['scenario']}: {note}")
    print(f"total {total:.0f} s")
    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "seconds": round(total, 1),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
