"""High-availability tests: two real headless consoles on one real PostgreSQL database, a real
worker listing both, and the checks every failover case ends with (docs/HA.md).

Each test gets a database of its own (CREATE DATABASE, dropped WITH (FORCE) afterwards), so the
consoles, the CLI and the test all see the same tables and nothing leaks to other tests or to
other people's tests on the same server.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from desktop.store import cluster, queries
from desktop.store.models import Run
from tests.chaos.conftest import check_lines, in_store, poll
from tests.e2e.conftest import prepare_db

PG_ENV = "JOBTRIGGER_TEST_PG_URL"
# heartbeats every second; a run whose worker is silent this long is lost (not reached here)
SETTINGS = {"heartbeat_interval": "1", "lost_grace_seconds": "30"}
TICK_LINES = 5  # each occurrence of the every-second job prints this many numbered lines
STREAM_LINES = 4000  # the long run that streams across the failover
FIGURES: list[dict] = []


def with_database(base: str, name: str, **query: str) -> str:
    parts = urlsplit(base)
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    q = "&".join(x for x in (parts.query, extra) if x)
    return urlunsplit(parts._replace(path="/" + name, query=q))


@pytest.fixture
def pg_database():
    """A fresh, empty PostgreSQL database: (url, name); dropped afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"high-availability tests need PostgreSQL: set {PG_ENV} (CI sets it)")
    name = "jt_ha_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(base)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base, name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def seed(url: str) -> str:
    """Worker w1 (8 slots), a job every second (run_all: an occurrence due while no console
    leads still runs, later), and a manual job that streams for several seconds."""
    prepare_db(url, SETTINGS)

    def work():
        token = queries.add_worker("w1", [], 8)[1]
        queries.create_job(
            {
                "name": "tick",
                "script": "test_job.py",
                "args": ["0", str(TICK_LINES), "0.05"],
                "schedule": {"kind": "interval", "every": 1, "unit": "seconds"},
                "misfire_policy": "run_all",
                "misfire_cap": 100,
                "concurrency": "allow",
            }
        )
        queries.create_job(
            {
                "name": "stream",
                "script": "test_job.py",
                "args": ["0", str(STREAM_LINES), "0.003"],
                "schedule": {"kind": "manual"},
            }
        )
        return token

    return in_store(url, work)


def leader_pid(url: str) -> int | None:
    def read():
        for m in cluster.members_if_any():
            if m.role == "leader":
                return m.pid
        return None

    return in_store(url, read)


def wait_leader(url: str, pid: int, seconds: float, what: str) -> None:
    def check():
        return any(m.role == "leader" and m.pid == pid for m in cluster.members_if_any())

    poll(url, check, seconds, what, every=0.1)


def wait_worker_on(url: str, pid: int, seconds: float) -> None:
    def check():
        return any(m.pid == pid and "w1" in m.workers for m in cluster.members_if_any())

    poll(url, check, seconds, f"worker w1 connected to console {pid}", every=0.1)


def all_runs(url: str) -> list[tuple]:
    def read():
        return [
            (r.id, r.job_id, r.scheduled_at, r.attempt, r.state, r.trigger_kind)
            for r in Run.select().order_by(Run.id)
        ]

    return in_store(url, read)


@dataclass
class Outcome:
    occurrences: int
    first: object
    last: object
    stream_lines: int


def check_outcome(url: str) -> Outcome:
    """The promises: every occurrence of the every-second job recorded once and run once (no
    gap: run_all), every run succeeded, every line of every run stored once."""
    tick = in_store(url, queries.get_job_by_name, "tick")
    stream = in_store(url, queries.get_job_by_name, "stream")
    runs = all_runs(url)
    ticks = [r for r in runs if r[1] == tick.id]
    keys = Counter((r[2], r[3]) for r in ticks)
    assert all(n == 1 for n in keys.values()), "an occurrence recorded twice"
    occurrences = Counter(r[2] for r in ticks)
    assert all(n == 1 for n in occurrences.values()), "an occurrence fired twice (attempts)"
    times = sorted(occurrences)
    expected = [times[0] + timedelta(seconds=i) for i in range(len(times))]
    assert times == expected, f"occurrences lost: {sorted(set(expected) - set(times))[:5]}"
    bad = [r for r in runs if r[4] != "succeeded"]
    assert not bad, f"runs that did not succeed: {bad[:5]}"
    for run_id, *_ in ticks:
        lines = check_lines(url, run_id, TICK_LINES)
        assert (lines.found, lines.lost, lines.duplicated) == (TICK_LINES, 0, 0), (run_id, lines)
    (stream_run,) = [r for r in runs if r[1] == stream.id]
    lines = check_lines(url, stream_run[0], STREAM_LINES)
    assert (lines.found, lines.lost, lines.duplicated) == (STREAM_LINES, 0, 0), lines
    assert not lines.out_of_order
    return Outcome(len(times), times[0], times[-1], lines.found)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("failover figures")
        for row in FIGURES:
            terminalreporter.write_line(", ".join(f"{k}: {v}" for k, v in row.items()))
