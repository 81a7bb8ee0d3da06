"""Chaos case 3: the network between worker and hub cut and restored several times during a
100,000-line run (tests/chaos/proxy.py, seeded).  Promise: exactly-once output."""

from __future__ import annotations

import os
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
from tests.chaos.proxy import ChaosProxy
from tests.e2e.conftest import WorkerProcs, free_port
from tests.e2e.test_headless import Console

SEED = int(os.environ.get("JOBTRIGGER_CHAOS_SEED", "14"))
CUTS = 6


@pytest.mark.timeout(300)
def test_network_cuts_lose_and_duplicate_no_line(tmp_path):
    began = time.monotonic()
    url = f"sqlite:///{tmp_path / 'net.db'}"
    tokens = seed(url, "flood", ["0", str(LINES), "0.00015"])
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    proxy = ChaosProxy(port, SEED).start()
    workers = WorkerProcs(tmp_path)
    try:
        console.wait_ready()
        workers.prepare("w1", f"ws://127.0.0.1:{proxy.port}/ws/heartbeat", tokens["w1"])
        workers.start("w1")
        poll(url, lambda: (w := queries.get_worker("w1")) and w.last_seen_at, 30, "worker seen")
        run_id = start_run(url, "flood")
        poll(url, lambda: stored_upto(run_id) >= 1000, 60, "output", every=0.05)
        # half the cuts must land while the output is still flowing; the rest may come later
        proxy.random_cuts(CUTS // 2, gap=(0.2, 0.8), down=(0.2, 0.8))
        cut_at = in_store(url, stored_upto, run_id)
        assert cut_at < LINES, "the run was delivered before the cuts; lengthen it"
        proxy.random_cuts(CUTS - CUTS // 2, gap=(0.2, 0.8), down=(0.2, 0.8))
        result = run_ended(url, run_id, 180)
        assert result.state == "succeeded" and result.exit_code == 0, result
        lines = check_lines(url, run_id, LINES)
        assert (lines.found, lines.lost, lines.duplicated) == (LINES, 0, 0)
        assert not lines.out_of_order
        # each cut waited for a live link: it reconnected after every cut but maybe the last
        assert proxy.cuts == CUTS and proxy.connections >= CUTS
        record(
            "3 network cut",
            lines,
            time.monotonic() - began,
            cuts=proxy.cuts,
            connections=proxy.connections,
            seed=SEED,
            line_at_third_cut=cut_at,
        )
    finally:
        proxy.stop()
        console.stop()
        workers.stop_all()
