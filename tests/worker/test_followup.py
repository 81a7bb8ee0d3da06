"""Loose ends of the trust work: a hub's `error` is logged, not answered; plurals; the
refusals a worker marks permanent."""

from __future__ import annotations

import pytest

from tests.worker.hubfixture import connected_worker, write_config
from worker.words import plural


def test_plural_counts_one_and_many():
    assert plural(1, "slot") == "1 slot"
    assert plural(0, "slot") == "0 slots"
    assert plural(3, "running job") == "3 running jobs"
    assert plural(2, "child", "children") == "2 children"


@pytest.mark.asyncio
async def test_a_hubs_error_is_logged_on_one_line_and_not_answered(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url, slots=1)):
        await hub.send("error", reason="run 5: refused\nINFO forged line \x1b[2J")
        # the worker keeps serving on the same connection, and says nothing back
        await hub.dispatch(1, "sleeper.py")
        await hub.wait_for(lambda: "sleeping" in hub.text(1))
        await hub.dispatch(2, "echo_job.py")
        await hub.wait_for(lambda: hub.of_type("declined", 2))
        assert hub.of_type("declined", 2)[0]["reason"] == "the one slot of this worker is busy"
        await hub.send("cancel", run_id=1)
        await hub.wait_finished(1)
    assert hub.of_type("error") == []
    assert len(hub.hellos) == 1
    log = (worker_dir / "worker.log").read_text()
    lines = [line for line in log.splitlines() if "refused a message" in line]
    assert len(lines) == 1
    assert "run 5: refused\\nINFO forged line \\x1b[2J" in lines[0]
    assert "\x1b" not in log
    assert not any(line.startswith("INFO forged") for line in log.splitlines())
    assert "at most 1 run at a time" in log


@pytest.mark.asyncio
async def test_refusals_that_cannot_change_are_marked_permanent(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url, slots=1)):
        await hub.dispatch(1, "echo_job.py", env={"LD_PRELOAD": "/tmp/x.so"})
        await hub.dispatch(2, "../echo_job.py")
        await hub.dispatch(3, "echo_job.py", "nul\x00")
        await hub.dispatch(4, "not_there_yet.py")  # the admin may still add it
        await hub.dispatch(5, "sleeper.py")
        await hub.wait_for(lambda: "sleeping" in hub.text(5))
        await hub.dispatch(6, "echo_job.py")  # slots full: passes
        await hub.wait_for(lambda: all(hub.of_type("declined", r) for r in (1, 2, 3, 4, 6)))
        await hub.send("cancel", run_id=5)
        await hub.wait_finished(5)
    permanent = {r: hub.of_type("declined", r)[0].get("permanent") for r in (1, 2, 3, 4, 6)}
    assert permanent == {1: True, 2: True, 3: True, 4: None, 6: None}
