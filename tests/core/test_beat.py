"""The shared beat of the idle timers (desktop/core/beat.py)."""

from __future__ import annotations

import asyncio

import pytest

from desktop.core.beat import last_beat_within, next_beat, wait_until


def test_next_beat_is_the_first_multiple_strictly_after_now():
    assert next_beat(0.0, 15.0) == 15.0
    assert next_beat(14.999, 15.0) == 15.0
    assert next_beat(15.0, 15.0) == 30.0  # on a beat: the next one, never now (a busy loop)
    assert next_beat(1_000_007.3, 15.0) == 1_000_020.0
    for now in (0.1, 0.3, 0.7, 123.456789):  # float quotients that round badly
        beat = next_beat(now, 0.1)
        assert now < beat <= now + 0.1 + 1e-12


def test_two_timers_of_one_period_started_apart_meet_on_the_same_instants():
    # the scheduler started at 3.2 s, the alive mark at 9.9 s: same beats from then on
    a, b = next_beat(3.2, 15.0), next_beat(9.9, 15.0)
    assert a == b == 15.0
    assert next_beat(a, 15.0) == next_beat(b, 15.0) == 30.0


def test_a_look_due_within_a_span_falls_on_the_last_beat_inside_it():
    assert last_beat_within(15.0, 30.0, 15.0) == 45.0  # from a beat: two beats on
    assert last_beat_within(15.2, 30.0, 15.0) == 45.0  # a little late: still that beat
    assert last_beat_within(20.0, 30.0, 15.0) == 45.0  # never later than now + span
    assert last_beat_within(29.0, 30.0, 15.0) == 45.0  # nor sooner than span - period
    assert last_beat_within(1.0, 0.5, 15.0) == 1.5  # a span shorter than a beat: its own time


@pytest.mark.asyncio
async def test_wait_until_returns_when_set_or_at_the_instant():
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    t0 = loop.time()
    assert await wait_until(event, t0 + 0.05) is False
    assert loop.time() >= t0 + 0.05 - 0.002

    loop.call_later(0.01, event.set)
    t0 = loop.time()
    assert await wait_until(event, t0 + 5) is True
    assert loop.time() - t0 < 1


@pytest.mark.asyncio
async def test_two_waits_on_one_beat_end_in_the_same_turn_of_the_loop():
    loop = asyncio.get_running_loop()
    beat = next_beat(loop.time(), 0.05)
    turns: list[int] = []
    counter = [0]

    def tick():  # counts loop turns: rescheduled once per turn
        counter[0] += 1
        if len(turns) < 2:
            loop.call_soon(tick)

    async def one():
        await wait_until(asyncio.Event(), beat)
        turns.append(counter[0])

    await asyncio.sleep(0)
    tasks = [asyncio.ensure_future(one()), asyncio.ensure_future(one())]
    await asyncio.sleep(beat - loop.time() - 0.01)  # the ticker must not run for the whole wait
    loop.call_soon(tick)
    await asyncio.gather(*tasks)
    assert turns[0] == turns[1]


@pytest.mark.asyncio
async def test_wait_until_gives_way_to_a_cancel():
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(wait_until(event, loop.time() + 60))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
