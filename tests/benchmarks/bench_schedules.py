"""Benchmark: 100,000 next-fire computations across schedule kinds.

    python tests/benchmarks/bench_schedules.py [--quick]

Prints, per kind and for an even mix of all kinds, the median of 5 runs of N calls of
``next_after`` at distinct instants (like a scheduler asking again after each firing), in
seconds per 100,000 calls.  ``run(quick)`` returns the same numbers for a benchmark runner.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from desktop.core.schedules import parse

UTC = timezone.utc
N = 100_000
REPEATS = 5

SCHEDULES = {
    "interval": {"kind": "interval", "tz": "UTC", "every": 5, "unit": "minutes"},
    "hourly": {"kind": "hourly", "tz": "America/New_York", "minute": 30, "hours": [8, 18]},
    "daily": {"kind": "daily", "tz": "Asia/Hong_Kong", "times": ["09:30", "17:00"]},
    "weekly": {
        "kind": "weekly",
        "tz": "Europe/London",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "times": ["09:30"],
    },
    "monthly": {
        "kind": "monthly",
        "tz": "Australia/Sydney",
        "days": [1, 15, "last"],
        "times": ["06:00"],
    },
    "monthly_nth": {
        "kind": "monthly",
        "tz": "America/New_York",
        "nth": "last",
        "weekday": "fri",
        "times": ["17:00"],
    },
    "cron": {"kind": "cron", "tz": "Europe/London", "expr": "*/15 9-17 * * 1-5"},
    "once": {"kind": "once", "tz": "Asia/Hong_Kong", "at": "2030-01-01T00:00:00"},
}


def _instants(n: int) -> list[datetime]:
    # spread over two years (DST changes included), 7919 s apart so they land everywhere
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [start + timedelta(seconds=7919 * i % (2 * 365 * 86400)) for i in range(n)]


def _time_once(schedule, instants) -> float:
    next_after = schedule.next_after
    t0 = time.perf_counter()
    for instant in instants:
        next_after(instant)
    return time.perf_counter() - t0


def run(quick: bool = False) -> dict:
    """Median seconds per 100,000 ``next_after`` calls, per kind and for a mix of all kinds."""
    n = 10_000 if quick else N
    repeats = 3 if quick else REPEATS
    instants = _instants(n)
    scale = N / n
    schedules = {name: parse(data) for name, data in SCHEDULES.items()}
    results: dict = {"calls": n, "repeats": repeats, "per_100k_seconds": {}}
    for name, schedule in schedules.items():
        times = [_time_once(schedule, instants) for _ in range(repeats)]
        results["per_100k_seconds"][name] = statistics.median(times) * scale

    mixed = list(schedules.values())

    def mix_once() -> float:
        t0 = time.perf_counter()
        for i, instant in enumerate(instants):
            mixed[i % len(mixed)].next_after(instant)
        return time.perf_counter() - t0

    results["per_100k_seconds"]["mixed"] = (
        statistics.median(mix_once() for _ in range(repeats)) * scale
    )
    return results


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    results = run(quick)
    print(f"next_after: median of {results['repeats']} runs, seconds per 100,000 calls")
    for name, seconds in results["per_100k_seconds"].items():
        print(f"  {name:12s} {seconds:8.3f} s   ({seconds * 10:.1f} us/call)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
