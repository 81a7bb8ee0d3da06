"""A dispatch a worker refuses for good (its env policy, unsafe arguments, a refused script
name) is not offered to that worker again: the run goes to another eligible worker or, with none
left, ends failed with the worker's reason at once.  Real worker processes, the real console."""

from __future__ import annotations

import pytest

from desktop.scheduler.service import DECLINE_BACKOFF

pytestmark = pytest.mark.asyncio

# the default policy refuses PYTHON*; harmless for the sample job
ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def declines(stack, name: str, run_id: int) -> int:
    return stack.workers.log_text(name).count(f"Declined run {run_id}:")


async def test_a_refused_env_goes_to_another_worker_or_fails_at_once(stack):
    await stack.add_worker("a-strict", tags=("env",))  # asked first: ordered by name
    await stack.add_worker("b-lenient", tags=("env",), start=False)
    ini = stack.workers.base / "b-lenient" / "worker.ini"
    ini.write_text(ini.read_text() + "\n[env]\nallow = PYTHONDONTWRITEBYTECODE\n")
    stack.workers.start("b-lenient")
    await stack.add_worker("lone")
    await stack.online("a-strict", "b-lenient", "lone")

    # 1. the first worker refuses for good; the run goes to the other one, which runs it
    shared = await stack.job(
        name="shared", target_kind="tag", target_value="env", env=ENV, queue_timeout_seconds=600
    )
    run_id = await stack.core.run_now(shared)
    record = await stack.until_state(run_id, "succeeded")
    assert record.worker_name == "b-lenient"
    assert declines(stack, "a-strict", run_id) == 1

    # 2. the only eligible worker refuses: failed with its reason, long before the queue
    #    timeout (600 s) and before a temporary decline would even be asked again (15 s)
    only = await stack.job(
        name="only", target_kind="worker", target_value="lone", env=ENV, queue_timeout_seconds=600
    )
    started = stack.core.scheduler.clock()
    run_id = await stack.core.run_now(only)
    record = await stack.until_state(run_id, {"failed", "missed", "succeeded"})
    assert record.state == "failed"
    assert record.reason.startswith("refused by worker lone: environment refused:")
    assert "PYTHONDONTWRITEBYTECODE" in record.reason
    assert record.exit_code is None and record.started_at is None  # nothing ran
    assert record.finished_at - started < DECLINE_BACKOFF
    assert declines(stack, "lone", run_id) == 1
