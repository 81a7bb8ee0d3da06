"""The refresh gate of the workers table (desktop/core/coalesce.py): pure, time passed in."""

from __future__ import annotations

import itertools

import pytest

from desktop.core.coalesce import Coalescer


def test_a_lone_request_after_a_quiet_spell_runs_at_once():
    gate = Coalescer(1.0)
    assert gate.request(100.0) == 0.0
    gate.start(100.0)
    assert gate.finish(100.05) is None  # nothing asked for meanwhile: no second run
    assert gate.request(200.0) == 0.0  # long after: at once again


def test_a_burst_gets_one_run_now_and_one_per_interval():
    gate = Coalescer(1.0)
    planned = []
    runs = []
    now = 0.0
    while now < 3.0:  # 3 s of events every 10 ms (a storm of "online")
        delay = gate.request(now)
        if delay is not None:
            planned.append(now + delay)
        if planned and planned[0] <= now:  # the planned run starts when its time comes
            planned.pop(0)
            gate.start(now)
            runs.append(now)
            after = gate.finish(now + 0.2)  # each run takes 200 ms
            if after is not None:
                planned.append(now + 0.2 + after)
        now = round(now + 0.01, 2)
    assert runs[0] == 0.0
    assert len(runs) == 3  # 0, 1, 2 s: not 300
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(runs))
    assert planned  # the requests after the last run still have one planned: none is lost


def test_a_request_during_a_run_is_followed_by_another_run():
    gate = Coalescer(0.5)
    assert gate.request(10.0) == 0.0
    gate.start(10.0)
    assert gate.request(10.1) is None  # running: it will be followed
    assert gate.request(10.2) is None
    assert gate.finish(10.3) == pytest.approx(0.2)  # once the run is min_interval old
    assert gate.request(10.4) is None  # planned already
    gate.start(10.5)
    assert gate.finish(10.6) is None  # those requests were read by this run


def test_a_slow_run_is_followed_at_once():
    gate = Coalescer(1.0)
    gate.request(0.0)
    gate.start(0.0)
    gate.request(0.5)
    assert gate.finish(2.5) == 0.0  # the interval passed while it ran


def test_a_cancelled_plan_lets_the_next_request_plan_again():
    gate = Coalescer(1.0)
    assert gate.request(0.0) == 0.0
    assert gate.request(0.1) is None
    gate.cancel()  # e.g. the window was not loaded yet
    assert gate.request(0.2) == 0.0
