"""The hub's silence watch (desktop/hub/silence.py) with stand-in connections: a dead worker is
closed between SILENCE_FACTOR and SILENCE_FACTOR + SLACK_FACTOR intervals of silence, and a
heartbeat that arrives once the look is due carries it (no wake-up of the watch's own)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from desktop.hub import session as s
from desktop.hub import silence
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


# --- with real sessions: one scan, in slices ------------------------------------------------

PLAIN_INTERVAL = 0.05  # grace: SILENCE_FACTOR * PLAIN_INTERVAL = 0.15 s


def plain_conn(last_heard: float) -> SimpleNamespace:
    session = s.Session(remote="10.0.0.1", heartbeat_interval=PLAIN_INTERVAL)
    session.state, session.last_heard = s.READY, last_heard
    return SimpleNamespace(session=session, ended=0)


async def watch(conns: dict, end, paused=lambda c: False) -> asyncio.Task:
    watcher = silence.SilenceWatch(conns.values, PLAIN_INTERVAL, paused, end)
    return asyncio.create_task(watcher.run())


async def test_the_silent_are_ended_once_and_the_heard_and_paused_are_not():
    now = asyncio.get_running_loop().time()
    conns = {i: plain_conn(now - 10) for i in range(6)}  # long silent
    conns[6] = plain_conn(now)  # heard just now, and kept talking below
    conns[7] = plain_conn(now - 10)  # silent, but the hub stopped reading it (back-pressure)
    ended = []

    async def end(c, seconds):
        ended.append((c, seconds))
        c.ended += 1
        conns.pop(next(k for k, v in conns.items() if v is c))  # as the hub's _gone does

    task = await watch(conns, end, paused=lambda c: c is conns.get(7))
    for _ in range(8):
        conns[6].session.last_heard = asyncio.get_running_loop().time()
        await asyncio.sleep(PLAIN_INTERVAL / 2)
    task.cancel()
    assert len(ended) == 6 and all(c.ended == 1 for c, _ in ended)
    assert all(seconds > 9 for _, seconds in ended)
    assert set(conns) == {6, 7}


async def test_a_connection_is_ended_soon_after_its_own_deadline_not_a_grace_later():
    loop = asyncio.get_running_loop()
    grace = silence.SILENCE_FACTOR * PLAIN_INTERVAL
    conns = {"quiet": plain_conn(loop.time() - grace + 0.05)}  # silent too long 0.05 s from now
    ended_at = []

    async def end(c, seconds):
        ended_at.append(loop.time())
        conns.clear()

    started = loop.time()
    task = await watch(conns, end)
    await asyncio.sleep(grace)
    task.cancel()
    assert ended_at and ended_at[0] - started < 0.05 + 0.05 + 0.03  # its deadline, the minimum


async def test_a_scan_of_many_connections_lets_the_loop_run_between_slices(monkeypatch):
    monkeypatch.setattr(silence, "SLICE", 10)
    now = asyncio.get_running_loop().time()
    conns = {i: plain_conn(now - 10) for i in range(35)}
    turns = [0]

    async def ticker():
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    seen_turns = []

    async def end(c, seconds):  # never yields: only the scan itself can let the ticker run
        seen_turns.append(turns[0])

    tick = asyncio.create_task(ticker())
    task = await watch(conns, end)
    while len(seen_turns) < 35:
        await asyncio.sleep(0.01)
    task.cancel()
    tick.cancel()
    first_scan = seen_turns[:35]
    # 35 connections in slices of 10: the loop turned between the slices, never within one
    assert len(set(first_scan)) == 4
    assert [len([t for t in first_scan if t == v]) for v in sorted(set(first_scan))] == [
        10,
        10,
        10,
        5,
    ]
