"""Who may report on a run, with plain values (desktop/hub/ownership.py)."""

from __future__ import annotations

import pytest

from desktop.hub.ownership import decline_verdict, own_runs, report_verdict


@pytest.mark.parametrize("kind", ["started", "output", "finished"])
@pytest.mark.parametrize("state", ["dispatched", "running", "lost", "cancelled", "succeeded"])
def test_the_runs_own_worker_may_report_in_any_state(kind, state):
    # the run model decides what is written (a real result replaces lost, not cancelled)
    assert report_verdict(kind, "w1", "w1", state) is None


@pytest.mark.parametrize("state", ["dispatched", "running", "lost"])
def test_another_worker_may_not(state):
    assert report_verdict("finished", "w2", "w1", state) == (
        "run is assigned to another worker; finished refused"
    )


def test_a_queued_run_belongs_to_nobody_and_cannot_be_started():
    assert report_verdict("started", "w1", None, "queued") == (
        "run is queued and not dispatched to any worker; started refused"
    )
    assert "not assigned to any worker" in report_verdict("output", "w1", None, "missed")


def test_only_the_dispatched_worker_may_decline_and_only_before_it_starts():
    assert decline_verdict("w1", "w1", "dispatched") is None
    assert "not dispatched to this worker" in decline_verdict("w2", "w1", "dispatched")
    assert "not dispatched to this worker" in decline_verdict("w1", None, "queued")
    assert decline_verdict("w1", "w1", "running") == (
        "run is running, not waiting to start; declined refused"
    )
    assert decline_verdict("w1", None, None) == "no such run; declined ignored"


def test_claimed_runs_are_kept_only_when_they_are_the_workers_own():
    owners = {1: "w1", 2: "w2", 3: None}
    assert own_runs("w1", [1, 2, 3, 4], owners) == [1]
    assert own_runs("w2", [2, 1], owners) == [2]
    assert own_runs("w1", [], owners) == []
