"""The scheduler's loop while idle: MAX_SLEEP bounds each sleep (a stepped wall clock is
noticed), but ending such a sleep costs a pass (a database call) only if something is due."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

pytestmark = pytest.mark.asyncio


async def test_capped_sleeps_of_an_idle_loop_run_no_pass_until_the_clock_reaches_the_deadline(
    env,
):
    await env.job(name="daily", schedule={"kind": "daily", "times": ["03:00"]})
    passes = []
    real_step = env.scheduler.step

    async def counting_step():
        passes.append(env.clock())
        return await real_step()

    env.scheduler.step = counting_step
    env.scheduler.max_sleep = 0.02
    await env.scheduler.start()
    await asyncio.sleep(0.3)  # some 15 capped sleeps
    assert len(passes) == 1, "an idle loop ran a pass at the end of a capped sleep"

    env.scheduler.wake()  # a wake (jobs changed, a worker came) always runs one
    await asyncio.sleep(0.1)
    assert len(passes) == 2

    # the wall clock stepped forward a day: the next capped sleep's end notices it
    env.clock.advance(days=1)
    await asyncio.sleep(0.2)
    assert len(passes) >= 3
    runs = await env.runs(1)
    assert runs, "the daily occurrence that came due on the stepped clock did not fire"
    assert runs[0].scheduled_at <= env.clock() < runs[0].scheduled_at + timedelta(days=1)
