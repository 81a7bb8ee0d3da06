"""Chains in the store: A -> B fires once per run of A through the hub's commit and the
scheduler's transitions, also when the end is stored twice (replay, lost then the real
result) or processed again after a restart; cycles, unknown jobs and bad templates are refused
on save and change nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from desktop.core.chains import ChainError
from desktop.hub.commit import commit_batch
from desktop.hub.session import StoreFinished
from desktop.store import chains, ends, queries
from desktop.store.db import open_store
from desktop.store.models import ChainFiring, Run

T = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def _job(name: str) -> int:
    return queries.create_job({"name": name, "script": "a.py", "schedule": {"kind": "manual"}}).id


def _dispatched(job_id: int, minute: int) -> int:
    run = queries.create_run(job_id, T.replace(minute=minute))
    queries.transition_run(run.id, "dispatched", worker_name="w1")
    return run.id


def _runs_of(job_id: int) -> list:
    return sorted(queries.list_runs(job_id, 100), key=lambda r: r.id)


def test_a_chain_fires_once_per_run_with_the_runs_id_and_exit_code(db):
    a, b = _job("extract"), _job("load")
    chains.set_chains(
        a, [{"then": "load", "on": "failure", "args": ["{run_id}", "rc={exit_code}"]}], T
    )
    run = _dispatched(a, 1)
    result = commit_batch([("w1", StoreFinished(run, 1, "failed", 4, "", 1.7e9))])
    [started] = result.chained
    assert (started.job_name, started.trigger, started.state) == ("load", "chain", "queued")
    assert started.args == (str(run), "rc=4")
    assert f"extract run {run} failed" in started.reason
    # the same report again (a worker replaying its spool): nothing new
    assert commit_batch([("w1", StoreFinished(run, 1, "failed", 4, "", 1.7e9))]).chained == []
    # the end processed again as after a restart (the ledger, not memory, decides)
    assert ends.after_ended([queries.get_run(run)]) == []
    assert [r.id for r in _runs_of(b)] == [started.id]
    assert ChainFiring.select().count() == 1
    # a second run of A: one more B
    run2 = _dispatched(a, 2)
    commit_batch([("w1", StoreFinished(run2, 1, "failed", 1, "", 1.7e9))])
    assert len(_runs_of(b)) == 2


def test_lost_then_the_real_result_fires_an_end_chain_once(db):
    a, b = _job("a"), _job("b")
    chains.set_chains(a, [{"then": "b", "on": "end"}], T)
    run = _dispatched(a, 1)
    queries.transition_run(run, "lost", reason="no word")  # the scheduler's path
    assert len(_runs_of(b)) == 1
    commit_batch([("w1", StoreFinished(run, 1, "succeeded", 0, "", 1.7e9))])  # real result wins
    assert queries.get_run(run).state == "succeeded"
    assert len(_runs_of(b)) == 1
    assert _runs_of(b)[0].args is None  # no templates: B's own arguments


def test_success_and_failure_chains_follow_the_outcome(db):
    a, ok, bad = _job("a"), _job("ok"), _job("bad")
    chains.set_chains(a, [{"then": "ok", "on": "success"}, {"then": "bad", "on": "failure"}], T)
    commit_batch([("w1", StoreFinished(_dispatched(a, 1), 1, "succeeded", 0, "", 1.7e9))])
    queries.transition_run(_dispatched(a, 2), "cancelled")
    assert (len(_runs_of(ok)), len(_runs_of(bad))) == (1, 0)
    queries.transition_run(_dispatched(a, 3), "running")
    commit_batch(
        [("w1", StoreFinished(queries.list_runs(a, 1)[0].id, 9, "timed_out", None, "", 1.7e9))]
    )
    assert (len(_runs_of(ok)), len(_runs_of(bad))) == (1, 1)


def test_the_chain_survives_a_restart_of_the_store(sqlite_path):
    url = f"sqlite:///{sqlite_path}"
    database = open_store(url)
    a, b = _job("a"), _job("b")
    chains.set_chains(a, [{"then": "b", "on": "end"}], T)
    run = _dispatched(a, 1)
    commit_batch([("w1", StoreFinished(run, 1, "failed", 1, "", 1.7e9))])
    database.close()
    database = open_store(url)  # a new console process would see exactly this
    try:
        assert ends.after_ended([queries.get_run(run)]) == []
        assert commit_batch([("w1", StoreFinished(run, 1, "failed", 1, "", 1.7e9))]).chained == []
        assert Run.select().where(Run.job == b).count() == 1
    finally:
        database.close()


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"then": "ghost", "on": "end"}], "no job 'ghost'"),
        ([{"then": "a", "on": "end"}], "loop: a -> a"),
        ([{"then": "b", "on": "whenever"}], "on: use one of"),
        ([{"then": "b", "on": "end", "args": ["{secret}"]}], "unknown field"),
        ([{"then": "b", "on": "end"}, {"then": "b", "on": "end"}], "named twice"),
    ],
)
def test_bad_chains_are_refused_and_change_nothing(db, specs, message):
    a, _ = _job("a"), _job("b")
    chains.set_chains(a, [{"then": "b", "on": "success"}], T)
    marker = queries.change_marker()
    with pytest.raises(ChainError, match=message):
        chains.set_chains(a, specs, T)
    assert [r.spec() for r in chains.list_chains(a)] == [{"then": "b", "on": "success"}]
    assert queries.change_marker() == marker


def test_a_longer_cycle_is_refused(db):
    a, b, c = _job("a"), _job("b"), _job("c")
    chains.set_chains(a, [{"then": "b", "on": "success"}], T)
    chains.set_chains(b, [{"then": "c", "on": "failure"}], T)
    with pytest.raises(ChainError, match="loop"):
        chains.set_chains(c, [{"then": "a", "on": "end"}], T)
    assert chains.list_chains(c) == []


def test_deleting_a_job_removes_its_chains(db):
    a, b = _job("a"), _job("b")
    chains.set_chains(a, [{"then": "b", "on": "success"}], T)
    queries.delete_job(b)
    assert chains.list_chains(a) == []
