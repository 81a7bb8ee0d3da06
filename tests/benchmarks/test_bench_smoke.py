"""The benchmark harness at tiny sizes, in the normal suite: it runs, and what it measures is
correct (every run stored, every line once, every firing seen at each stage).  No timing is
asserted here: speed is reported by tests/benchmarks/run.py, not tested."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.benchmarks import bench_dispatch, bench_flood, bench_hub, bench_throughput, run
from tests.benchmarks.harness import Sample, metric, percentile, switches, wakeups
from tests.benchmarks.probe_worker import received_times


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_probe_lines_are_parsed_and_other_lines_ignored():
    log = "2026 INFO Connected\nBENCH-DISPATCH 12 1700000000.250000\nBENCH-DISPATCH 13 5.5\n"
    assert received_times(log) == {12: 1700000000.25, 13: 5.5}


def test_table_shows_verdicts_and_errors():
    results = [
        {
            "scenario": "s",
            "metrics": [
                metric("fast", 1.5, "ms", "< 2 ms", True),
                metric("slow", 12345.678, "ms", "< 10 ms", False),
                metric("info", 3, "runs"),
            ],
        },
        {"scenario": "broken", "error": "exit code 1: boom\nValueError: bad", "metrics": []},
    ]
    text = run.table(results)
    lines = text.splitlines()
    assert "PASS" in lines[2] and "1.50 ms" in lines[2]
    assert "MISS" in lines[3] and "12,345.68 ms" in lines[3]
    assert lines[4].rstrip().endswith("-")
    assert "ValueError: bad" in lines[5] and "ERROR" in lines[5]


def test_adapters_turn_micro_benchmark_dicts_into_rows():
    rows = run._from_schedules({"calls": 10, "repeats": 1, "per_100k_seconds": {"cron": 0.5}})
    assert rows["metrics"][0]["metric"] == "next_after: cron"
    assert rows["metrics"][0]["value"] == 5.0  # 0.5 s per 100,000 calls = 5 us per call
    ui = run._from_ui({"real_worker": {"flood": {"max_gap_ms": 80.0, "p99_gap_ms": 9.0}}})
    assert [m["ok"] for m in ui["metrics"]] == [False, None]


def test_sampling_counts_this_process():
    sample = Sample(os.getpid())
    before = wakeups(os.getpid())
    sample.begin()
    for _ in range(3):
        os.sched_yield()
        open(__file__).close()
    got = sample.end()
    assert before > 0
    assert got["rss_mb"] > 1 and got["seconds"] > 0 and got["cpu_percent"] >= 0


def test_wake_ups_are_the_voluntary_switches_and_preemptions_are_apart():
    pid = os.getpid()
    vol0, invol0 = switches(pid)
    for _ in range(5):
        time.sleep(0.002)  # each sleep is a voluntary switch, then a wake-up
    vol1, invol1 = switches(pid)
    assert vol1 - vol0 >= 5
    assert invol1 >= invol0
    assert wakeups(pid) >= vol1


def test_flood_stores_every_line_once(tmp_path):
    out = asyncio.run(bench_flood.one(tmp_path, 5_000))
    assert out["exact"], out["detail"]


def test_throughput_stores_every_run(tmp_path):
    out = asyncio.run(
        bench_throughput.one_repetition(f"sqlite:///{tmp_path / 't.db'}", tmp_path, 60)
    )
    assert out["correct"], out["detail"]
    assert out["steady"] > 0


def test_console_capacity_stores_and_acks_every_run(tmp_path):
    """The protocol workers' repetition: every run stored, succeeded, one line, and its last
    report acked to the simulated worker (acks only after the commit)."""
    out = asyncio.run(
        bench_throughput.one_protocol_repetition(f"sqlite:///{tmp_path / 'p.db'}", tmp_path, 60)
    )
    assert out["correct"], out["detail"]
    assert "60 acked" in out["detail"]
    assert out["console_ms_per_run"] > 0 and out["sims_ms_per_run"] >= 0


def test_dispatch_sees_every_firing_at_every_stage(tmp_path):
    m = asyncio.run(bench_dispatch.measure(tmp_path, 10))
    assert m["firings"] == 10
    assert len(m["recv"]) == len(m["spawn"]) == len(m["first"]) == 10
    # one clock: the worker receives the dispatch before it spawns, the script prints after
    for recv, spawn, first in zip(m["recv"], m["spawn"], m["first"]):
        assert recv <= spawn <= first
    assert m["floor_first"] and all(0 < s < f for s, f in zip(m["floor_spawn"], m["floor_first"]))


def test_hub_capacity_welcomes_every_simulated_worker():
    out = bench_hub.run(workers=12, procs=3, window=1)
    rows = {m["metric"]: m for m in out["metrics"]}
    assert rows["workers welcomed"]["value"] == 12 and rows["workers welcomed"]["ok"]
    assert "12 simulated workers in 3 processes" in out["notes"][0]
    assert rows["console RSS"]["value"] > rows["console RSS before workers"]["value"] / 2


def test_storm_addresses_are_loopback_and_distinct_across_processes():
    from tests.benchmarks import sim_reconnect

    n, procs = 10_000, 4
    per = n // procs + 1  # bench_storm.Sims: process k starts at k * per
    addresses = {sim_reconnect.address(k * per + i) for k in range(procs) for i in range(per)}
    assert len(addresses) == procs * per
    assert all(
        a.startswith("127.") and all(0 < int(x) < 255 for x in a.split(".")[1:]) for a in addresses
    )


def test_storm_at_a_tiny_size_brings_every_worker_back_and_shows_it(monkeypatch):
    """The whole storm sequence with 20 workers: every one welcomed again after the restart,
    none gave up, the new window's table shows them all online."""
    from tests.benchmarks import bench_storm

    monkeypatch.setattr(bench_storm, "SIM_PROCS", 2)
    r = bench_storm.measure(quick=True, n=20, hold=False)
    assert (r["welcomed"], r["gave_up"], r["rejects"]) == (20, 0, {})
    assert r["table_online"] == 20 and r["storm_s"] is not None
    assert r["attempts"] >= 20  # each reconnected at least once


def test_dispatch_with_an_idle_crowd_still_goes_to_the_real_workers(tmp_path):
    # 40 more workers connected (2 protocol-level processes' worth), none with the job's script
    m = asyncio.run(bench_dispatch.measure(tmp_path, 10, crowd=40))
    assert m["firings"] == 10
    assert len(m["recv"]) == 10 and len(m["spawn"]) == 10


def test_spawn_floor_counts_the_childs_cpu_too(tmp_path):
    from tests.benchmarks import spawn_floor

    script = tmp_path / "noop"
    script.write_text("#!/bin/sh\necho ok\n")
    script.chmod(0o755)
    f = spawn_floor.measure(script, n=20)
    assert f["parent_ms"] > 0 and f["child_ms"] > 0
    cores = os.cpu_count() or 1
    assert f["ceiling_runs_per_s"] == pytest.approx(cores * 1000 / (f["parent_ms"] + f["child_ms"]))
