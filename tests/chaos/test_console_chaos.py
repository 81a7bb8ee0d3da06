"""Chaos case 2: kill -9 of the console in the middle of a 100,000-line run, then a restart.
Promise: exactly-once output and the real result after a restart (docs/RELIABILITY.md)."""

from __future__ import annotations

import time

import pytest

from desktop.store import queries
from tests.chaos.conftest import (
    LINES,
    check_lines,
    in_store,
    poll,
    record,
    run_ended,
    seed,
    start_run,
    stored_upto,
)
from tests.e2e.conftest import WorkerProcs, free_port
from tests.e2e.test_headless import Console


@pytest.mark.timeout(300)
def test_console_killed_mid_run_stores_every_line_once_and_the_result(tmp_path):
    began = time.monotonic()
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    # exit code 3: the recorded result must be the real one, not a guess after the restart
    tokens = seed(url, "flood", ["3", str(LINES), "0.00002"])
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    workers = WorkerProcs(tmp_path)
    try:
        console.wait_ready()
        workers.prepare("w1", f"ws://127.0.0.1:{port}/ws/heartbeat", tokens["w1"])
        workers.start("w1")
        poll(url, lambda: (w := queries.get_worker("w1")) and w.last_seen_at, 30, "worker seen")
        run_id = start_run(url, "flood")
        # well inside the run: a fifth of it stored, the script still printing
        poll(
            url,
            lambda: stored_upto(run_id) >= LINES // 5,
            120,
            "a fifth of the output",
            every=0.05,
        )
        console.kill9()
        at_kill = in_store(url, lambda: (queries.get_run(run_id).state, stored_upto(run_id)))
        assert at_kill[0] == "running" and at_kill[1] < LINES, at_kill  # truly mid-run
        console = Console(url, port, tmp_path / "console.log")
        console.wait_ready()
        result = run_ended(url, run_id, 180)
        assert result.state == "failed" and result.exit_code == 3, result
        lines = check_lines(url, run_id, LINES)
        assert (lines.found, lines.lost, lines.duplicated) == (LINES, 0, 0)
        assert not lines.out_of_order
        record(
            "2 console kill -9 mid-run",
            lines,
            time.monotonic() - began,
            killed_at_line=at_kill[1],
        )
    finally:
        console.stop()
        workers.stop_all()
