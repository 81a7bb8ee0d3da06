"""Chaos case 4: another process holds the SQLite write lock while runs finish.

Promise: exactly-once output and the real result, with no restart of the console.  The lock is
held for JOBTRIGGER_CHAOS_DB_LOCK_SECONDS (default 30, as in issue 14): six times the store's
busy timeout (5 s), so every kind of write the console makes (reports, alive mark, scheduler
pass, worker seen) fails at least once and has to recover by itself.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest

from desktop.store import queries
from tests.chaos.conftest import (
    LINES,
    LineCheck,
    check_lines,
    in_store,
    poll,
    record,
    run_ended,
    seed,
    start_run,
    stored_upto,
    wait,
)
from tests.conftest import timeout
from tests.e2e.conftest import ROOT, WorkerProcs, free_port
from tests.e2e.test_headless import Console

LOCK_SECONDS = float(os.environ.get("JOBTRIGGER_CHAOS_DB_LOCK_SECONDS", "30"))
HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock; readers go on (WAL)
conn.execute("UPDATE setting SET setting_value = setting_value WHERE 0")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


def scripts_alive(workers: WorkerProcs) -> bool:
    for proc in workers.procs.values():
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if any("test_job.py" in part for part in child.cmdline()):
                    return True
    return False


def spooled_bytes(home) -> int:
    return sum(f.stat().st_size for f in (home / "spool").rglob("*") if f.is_file())


@pytest.mark.timeout(300)
def test_runs_finish_while_the_database_is_locked_and_nothing_is_lost(tmp_path):
    began = time.monotonic()
    db = tmp_path / "locked.db"
    url = f"sqlite:///{db}"
    half = LINES // 2
    tokens = seed(url, "x", [], workers=("w1", "w2"))
    for name, code, worker in (("a", "0", "w1"), ("b", "4", "w2")):
        spec = {
            "name": name,
            "script": "test_job.py",
            "args": [code, str(half), "0.00005"],
            "schedule": {"kind": "manual"},
            "target_kind": "worker",
            "target_value": worker,
        }
        in_store(url, queries.create_job, spec)
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    workers = WorkerProcs(tmp_path)
    locker = None
    try:
        console.wait_ready()
        homes = {}
        for name in ("w1", "w2"):
            homes[name] = workers.prepare(name, f"ws://127.0.0.1:{port}/ws/heartbeat", tokens[name])
            workers.start(name)
        poll(
            url,
            lambda: all(queries.get_worker(n).last_seen_at for n in ("w1", "w2")),
            30,
            "workers seen",
        )
        runs = [start_run(url, "a"), start_run(url, "b")]
        poll(url, lambda: all(stored_upto(r) >= 1000 for r in runs), 60, "output", every=0.05)
        locker = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), str(LOCK_SECONDS)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        # the scripts end while the lock is held: their output waits in the workers' spools
        wait(lambda: not scripts_alive(workers), LOCK_SECONDS, "the scripts to end")
        assert locker.poll() is None, "the lock ended before the runs did; raise the lock time"
        assert all(spooled_bytes(h) > 0 for h in homes.values())
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            during = [
                conn.execute("select state from run where id = ?", (r,)).fetchone()[0] for r in runs
            ]
        assert locker.stdout.readline().strip() == "released"
        assert locker.wait(timeout(10)) == 0
        held = time.monotonic() - locked_at
        assert held >= LOCK_SECONDS
        assert "running" in during or "dispatched" in during  # nothing could be recorded
        results = [run_ended(url, r, 120) for r in runs]
        assert [(r.state, r.exit_code) for r in results] == [("succeeded", 0), ("failed", 4)]
        assert console.proc.poll() is None  # recovered without a restart
        checked = [check_lines(url, r, half) for r in runs]
        for lines in checked:
            assert (lines.found, lines.lost, lines.duplicated) == (half, 0, 0)
            assert not lines.out_of_order
        # and it still works: a new run after the lock goes through normally
        after = start_run(url, "a")
        assert run_ended(url, after, 60).state == "succeeded"
        total = LineCheck(
            LINES,
            sum(c.found for c in checked),
            sum(c.lost for c in checked),
            sum(c.duplicated for c in checked),
            False,
        )
        record(
            "4 database locked",
            total,
            time.monotonic() - began,
            lock_seconds=LOCK_SECONDS,
        )
    finally:
        if locker is not None and locker.poll() is None:
            locker.kill()
            locker.wait()
        if locker is not None:
            locker.stdout.close()
        console.stop()
        workers.stop_all()
