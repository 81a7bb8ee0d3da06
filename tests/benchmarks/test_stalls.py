"""The stall probe and the refresh measurement at tiny sizes: a stall is found and named, and
the measurement runs end to end.  No timing is asserted beyond the deliberate stall."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from tests.benchmarks import stall_refresh
from tests.benchmarks.stalls import StallProbe


def test_a_blocking_callback_is_reported_as_a_stall_with_its_name():
    async def blocker() -> None:
        time.sleep(0.12)  # holds the loop, as an O(n) scan would

    async def main() -> StallProbe:
        with StallProbe() as probe:
            await asyncio.sleep(0.05)
            await asyncio.create_task(blocker(), name="the-blocker")
            gc.collect()
            await asyncio.sleep(0.05)
        return probe

    probe = asyncio.run(main())
    assert len([s for s in probe.stalls() if s.seconds > 0.09]) == 1
    report = probe.report()
    assert "task the-blocker" in report and "=== stall" in report
    assert any(c.what.startswith("task the-blocker") and c.stacks for c in probe.callbacks)
    assert any("blocker" in stack for c in probe.callbacks for stack in c.stacks)
    assert probe.collections and probe.collections[-1].what.startswith("gc2 on MainThread")


def test_the_refresh_measurement_runs_with_a_tiny_crowd(tmp_path, monkeypatch):
    monkeypatch.setattr(stall_refresh, "IDLE", 1.0)
    result = asyncio.run(stall_refresh.measure(tmp_path, 8, 2, stalls=True))
    assert len(result["refresh"]) == 2
    assert all(r["db_thread_cpu_ms"] > 0 for r in result["refresh"])
    assert result["stalls"].startswith("lag samples")


@pytest.fixture(autouse=True)
def _restore_handle_run():
    original = asyncio.events.Handle._run
    yield
    assert asyncio.events.Handle._run is original  # the probe puts asyncio back as it was
