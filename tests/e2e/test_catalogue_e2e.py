"""A script put in a connected worker's folder is offered without restarting the worker: the
catalogue rides on the next heartbeat, and a run that waited for that script goes."""

from __future__ import annotations

import asyncio

import pytest

from desktop.core.events import WorkerChanged
from desktop.store import queries
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.asyncio


async def test_a_script_added_after_connecting_is_offered_and_runs(stack, tmp_path):
    core = stack.core
    seen = []
    core.events.subscribe(seen.append)
    await stack.add_worker("w1")
    await stack.online("w1")
    assert "late.py" not in core.script_catalogue()
    job_id = await stack.job(name="late", script="late.py")
    run_id = await core.run_now(job_id)
    await asyncio.sleep(0.5)
    assert (await stack.run(run_id)).state == "queued"  # nobody has the script yet
    seen.clear()
    (tmp_path / "w1" / "scripts" / "late.py").write_text("print('here now')\n")
    record = await stack.until_state(run_id, "succeeded", seconds=20)
    assert record.worker_name == "w1"
    assert "late.py" in core.script_catalogue()
    assert WorkerChanged("w1", True) in seen  # the console's worker views refresh
    stored = await core.db.call(queries.get_worker, "w1")
    assert "late.py" in {e["name"] for e in stored.scripts}  # known while offline too

    async def output():
        chunks = await core.db.call(queries.read_output, run_id)
        return "here now" in "".join(c.text for c in chunks)

    await wait_until(core, output, 10, "the new script's output")
