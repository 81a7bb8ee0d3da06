"""Chaos suite helpers: real console and worker processes, the database read from the test
process, and the one check every case ends with: each numbered line stored exactly once.

A run here is resources/scripts/test_job.py printing ``line N of TOTAL``; the lines are checked
by content in the database (not only counted), so a lost, duplicated or reordered line fails.
Every case is bounded: waits go through ``poll`` with a deadline in test time units.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from desktop.store import queries
from desktop.store.db import open_store
from tests.conftest import timeout
from tests.e2e.conftest import cli, poll, prepare_db

LINES = 100_000
# Heartbeats every second (a dead link is noticed fast), but the product's default grace before
# a silent worker's runs are called lost: a cut network or a locked database for less than a
# minute must end in the real result, not in "lost" and a retry.
SETTINGS = {"heartbeat_interval": "1", "lost_grace_seconds": "60"}
# the whole suite's figures, printed at the end of the session for docs/RELIABILITY.md
FIGURES: list[dict] = []


def seed(url: str, job: str, args: list[str], workers=("w1",)) -> dict[str, str]:
    """A fresh store with the workers and one manual test_job.py job; returns the tokens."""
    prepare_db(url, SETTINGS)
    database = open_store(url)
    try:
        tokens = {name: queries.add_worker(name)[1] for name in workers}
        queries.create_job(
            {"name": job, "script": "test_job.py", "args": args, "schedule": {"kind": "manual"}}
        )
    finally:
        database.close()
    return tokens


def in_store(url: str, fn, *args):
    database = open_store(url)
    try:
        return fn(*args)
    finally:
        database.close()


def wait(check, seconds: float, what: str, every: float = 0.2):
    """Poll a check that needs no database (processes, files) until it holds."""
    deadline = time.monotonic() + timeout(seconds)
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} units waiting for {what}")
        time.sleep(every)
    return result


def start_run(url: str, job: str) -> int:
    """A manual run through the running console (the CLI's run command)."""
    result = cli(url, "run", job)
    assert result.returncode == 0, result.stderr
    return int(re.search(r"run (\d+)", result.stdout).group(1))


def run_ended(url: str, run_id: int, seconds: float):
    return poll(
        url,
        lambda: (
            (r := queries.get_run(run_id))
            and r.state not in ("queued", "dispatched", "running")
            and r
        ),
        seconds,
        f"run {run_id} to end",
        every=0.5,
    )


def stored_upto(run_id: int) -> int:
    """The highest line number stored so far (chunks hold many lines; call inside poll)."""
    last = queries.get_run(run_id).last_seq
    for chunk in reversed(queries.read_output(run_id, max(0, last - 3))):
        found = re.findall(r"^line (\d+) of", chunk.text, re.M)
        if found:
            return int(found[-1])
    return 0


@dataclass
class LineCheck:
    expected: int
    found: int
    lost: int
    duplicated: int
    out_of_order: bool


def check_lines(url: str, run_id: int, total: int) -> LineCheck:
    """Every ``line N of total`` once, in order; chunks unique by seq; one 'done' line."""
    chunks = in_store(url, queries.read_output, run_id)
    seqs = [c.seq for c in chunks]
    assert len(seqs) == len(set(seqs)), "a seq stored twice"
    stdout = "".join(c.text for c in chunks if c.stream == "stdout")
    pattern = re.compile(rf"^line (\d+) of {total}$")
    numbers = [int(m.group(1)) for m in map(pattern.match, stdout.splitlines()) if m]
    seen: dict[int, int] = {}
    for n in numbers:
        seen[n] = seen.get(n, 0) + 1
    lost = sum(1 for n in range(1, total + 1) if n not in seen)
    duplicated = sum(c - 1 for c in seen.values())
    assert stdout.count("test_job done") == 1, "the last line is missing or doubled"
    return LineCheck(total, len(numbers), lost, duplicated, numbers != sorted(numbers))


def record(case: str, lines: LineCheck | None, seconds: float, **extra) -> None:
    FIGURES.append(
        {
            "case": case,
            "lines checked": lines.found if lines else 0,
            "lost": lines.lost if lines else 0,
            "duplicated": lines.duplicated if lines else 0,
            "seconds": round(seconds, 1),
            **extra,
        }
    )


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("chaos figures")
        for row in FIGURES:
            terminalreporter.write_line(", ".join(f"{k}: {v}" for k, v in row.items()))
