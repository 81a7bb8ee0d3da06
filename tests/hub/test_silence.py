"""The hub's silence watch (desktop/hub/silence.py) with stand-in connections: a dead worker is
closed between SILENCE_FACTOR and SILENCE_FACTOR + SLACK_FACTOR intervals of silence, and a
heartbeat that arrives once the look is due carries it (no wake-up of the watch's own)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from desktop.hub.silence import SILENCE_FACTOR, SLACK_FACTOR, SilenceWatch

pytestmark = pytest.mark.asyncio

INTERVAL = 0.1


class Session:
    def __init__(self, now: float) -> None:
        self.last_heard = now

    def silent_for(self, now: float) -> float:
        return max(0.0, now - self.last_heard)

    def is_silent(self, now: float, grace: float) -> bool:
        return self.silent_for(now) > grace


def conn(now: float):
    return SimpleNamespace(session=Session(now))


async def start(conns, paused=lambda c: False):
    ended: list[tuple[object, float, float]] = []
    loop = asyncio.get_running_loop()

    async def end(c, silent):
        ended.append((c, silent, loop.time()))
        conns.remove(c)

    watch = SilenceWatch(lambda: list(conns), INTERVAL, paused, end)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0)
    return watch, task, ended


async def test_a_worker_that_stops_is_closed_within_the_slack_of_its_grace():
    loop = asyncio.get_running_loop()
    dead = conn(loop.time())
    _watch, task, ended = await start([dead])
    try:
        await asyncio.sleep((SILENCE_FACTOR + SLACK_FACTOR) * INTERVAL + 0.1)
    finally:
        task.cancel()
    assert [c for c, _, _ in ended] == [dead]
    silent = ended[0][1]
    assert SILENCE_FACTOR * INTERVAL < silent <= (SILENCE_FACTOR + SLACK_FACTOR) * INTERVAL + 0.03


async def test_a_heartbeat_after_the_look_is_due_runs_it_at_once():
    loop = asyncio.get_running_loop()
    dead, live = conn(loop.time()), conn(loop.time())
    watch, task, ended = await start([dead, live])
    try:
        grace = SILENCE_FACTOR * INTERVAL
        await asyncio.sleep(grace + 0.01)  # the look is due, its backstop 0.04 s away
        assert watch.due <= loop.time() and not ended
        live.session.last_heard = loop.time()
        watch.heard(loop.time())  # the live worker's heartbeat arrives
        for _ in range(10):  # a few loop turns, no timer
            await asyncio.sleep(0)
        assert [c for c, _, _ in ended] == [dead], "the heartbeat did not carry the look"
    finally:
        task.cancel()


async def test_a_heartbeat_before_the_look_is_due_does_not_look():
    loop = asyncio.get_running_loop()
    quiet = conn(loop.time())
    looks = []
    conns = [quiet]

    def counting():
        looks.append(loop.time())
        return list(conns)

    async def end(c, silent):
        conns.remove(c)

    watch = SilenceWatch(counting, INTERVAL, lambda c: False, end)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(INTERVAL)
        before = len(looks)
        watch.heard(loop.time())
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(looks) == before
    finally:
        task.cancel()


async def test_a_paused_connection_is_not_closed_for_silence():
    loop = asyncio.get_running_loop()
    held = conn(loop.time())
    _watch, task, ended = await start([held], paused=lambda c: True)
    try:
        await asyncio.sleep((SILENCE_FACTOR + SLACK_FACTOR) * INTERVAL + 0.1)
    finally:
        task.cancel()
    assert ended == []
