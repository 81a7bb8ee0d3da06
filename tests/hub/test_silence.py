"""The silence watch with plain sessions: who is ended, when, and that a large scan lets the
loop run between its slices."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from desktop.hub import session as s
from desktop.hub import silence

pytestmark = pytest.mark.asyncio

INTERVAL = 0.05  # grace: SILENCE_FACTOR * INTERVAL = 0.15 s


def conn(last_heard: float) -> SimpleNamespace:
    session = s.Session(remote="10.0.0.1", heartbeat_interval=INTERVAL)
    session.state, session.last_heard = s.READY, last_heard
    return SimpleNamespace(session=session, ended=0)


async def watch(conns: dict, end, paused=lambda c: False) -> asyncio.Task:
    return asyncio.create_task(silence.watch_silence(conns.values, INTERVAL, paused, end))


async def test_the_silent_are_ended_once_and_the_heard_and_paused_are_not():
    now = asyncio.get_running_loop().time()
    conns = {i: conn(now - 10) for i in range(6)}  # long silent
    conns[6] = conn(now)  # heard just now, and kept talking below
    conns[7] = conn(now - 10)  # silent, but the hub stopped reading it (back-pressure)
    ended = []

    async def end(c, seconds):
        ended.append((c, seconds))
        c.ended += 1
        conns.pop(next(k for k, v in conns.items() if v is c))  # as the hub's _gone does

    task = await watch(conns, end, paused=lambda c: c is conns.get(7))
    for _ in range(8):
        conns[6].session.last_heard = asyncio.get_running_loop().time()
        await asyncio.sleep(INTERVAL / 2)
    task.cancel()
    assert len(ended) == 6 and all(c.ended == 1 for c, _ in ended)
    assert all(seconds > 9 for _, seconds in ended)
    assert set(conns) == {6, 7}


async def test_a_connection_is_ended_soon_after_its_own_deadline_not_a_grace_later():
    loop = asyncio.get_running_loop()
    grace = silence.SILENCE_FACTOR * INTERVAL
    conns = {"quiet": conn(loop.time() - grace + 0.05)}  # silent too long 0.05 s from now
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
    conns = {i: conn(now - 10) for i in range(35)}
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
