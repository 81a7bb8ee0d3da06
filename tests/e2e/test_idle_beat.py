"""An idle console's own timers share wake-ups (benchmarks: idle wake-ups): the scheduler's
wall-clock check and the alive mark end on the same beats (desktop/core/beat.py), the fallback
poll for CLI changes rides on every other mark and still comes within POLL_SECONDS."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from desktop.core import beat
from desktop.scheduler import service as scheduler_service
from desktop.service import Core, changes
from desktop.store import scheduling

pytestmark = pytest.mark.asyncio

EVERY = 0.1  # the alive mark and the scheduler's cap, shortened for the test


def on_grid(t: float) -> bool:
    return abs(t / EVERY - round(t / EVERY)) < 1e-6


async def test_clock_check_alive_mark_and_poll_share_the_beat(tmp_path, monkeypatch):
    monkeypatch.setattr(scheduling, "ALIVE_EVERY", timedelta(seconds=EVERY))
    monkeypatch.setattr(changes, "POLL_SECONDS", 2 * EVERY)
    untils: dict[str, list[float]] = {"scheduler": [], "changes": []}

    def recording(who):
        async def wait(event, when):
            untils[who].append(when)
            return await beat.wait_until(event, when)

        return wait

    monkeypatch.setattr(scheduler_service, "wait_until", recording("scheduler"))
    monkeypatch.setattr(changes, "wait_until", recording("changes"))
    core = Core(f"sqlite:///{tmp_path / 'idle.db'}", "127.0.0.1", 0)
    await core.start()
    loop = asyncio.get_running_loop()
    beats: list[tuple[float, bool, bool]] = []  # (loop time, marked, polled)
    real_call = core.db.call

    async def counting_call(fn, *args, **kwargs):
        if fn is changes._beat:
            beats.append((loop.time(), args[0] is not None, args[2]))
        return await real_call(fn, *args, **kwargs)

    core.db.call = counting_call
    try:
        await core.save_job(
            {"name": "daily", "script": "a.py", "schedule": {"kind": "daily", "times": ["03:00"]}}
        )
        assert core.scheduler is not None
        core.scheduler.max_sleep = EVERY
        core.scheduler.wake()  # the next sleeps are capped at EVERY
        await asyncio.sleep(0.2)
        untils["scheduler"].clear()
        untils["changes"].clear()
        del beats[:]
        await asyncio.sleep(12 * EVERY)
    finally:
        await core.stop()

    capped = untils["scheduler"]
    assert len(capped) >= 8 and all(on_grid(t) for t in capped), capped
    # the alive mark's timer is the same instant to the bit: one turn of the loop for both
    assert untils["changes"] and set(untils["changes"]) <= set(capped)
    marks = [t for t, marked, _ in beats if marked]
    polls = [t for t, _, polled in beats if polled]
    assert len(marks) >= 8
    assert all(marked for _, marked, polled in beats if polled), "a poll woke on its own"
    assert len(polls) <= len(marks) // 2 + 1, "the poll came on more than every other mark"
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert gaps and max(gaps) <= 2 * EVERY + 0.05, gaps
