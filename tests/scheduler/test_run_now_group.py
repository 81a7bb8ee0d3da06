"""Run-now requests that share one group commit: a job deleted between the group's read of its
jobs and its INSERT fails that request alone, with the error of a run-now for a missing job."""

from __future__ import annotations

import asyncio

import pytest

from desktop.scheduler import firing
from desktop.store import queries
from desktop.store.errors import NotFound
from desktop.store.queries import runs as runs_module

pytestmark = pytest.mark.asyncio


async def test_a_job_deleted_during_a_group_run_now_fails_only_its_request(env, monkeypatch):
    keep = await env.job(name="keep")
    gone = await env.job(name="gone")
    await env.db.call(queries.delete_job, gone)
    # the group's read of its jobs is made to see the deleted job still there, once: as when
    # another console deletes it between that read and the INSERT (tests/store/test_runs.py
    # has that race for real on PostgreSQL)
    stale = [{"id": gone, "name": "gone"}]
    real = runs_module._by_ids

    def read_before_the_delete(name, build, ids):
        rows = real(name, build, ids)
        return [*rows, stale.pop()] if name == "job_names" and stale else rows

    monkeypatch.setattr(runs_module, "_by_ids", read_before_the_delete)
    groups: list[int] = []
    real_group = firing.manual_runs

    def one_group(requests, now):
        groups.append(len(requests))
        return real_group(requests, now)

    monkeypatch.setattr(firing, "manual_runs", one_group)
    kept, lost, again = await asyncio.gather(
        env.scheduler.run_now(keep),
        env.scheduler.run_now(gone, ["x"]),
        env.scheduler.run_now(keep, ["y"]),
        return_exceptions=True,
    )
    assert groups == [3] and not stale  # one group, and its read was stale
    assert isinstance(lost, NotFound) and str(lost) == f"job {gone} does not exist (deleted?)"
    assert (kept.job_id, again.job_id, again.args) == (keep, keep, ("y",))
    assert sorted(r.id for r in await env.runs(keep)) == sorted([kept.id, again.id])
    # a run-now for a job that is simply missing gives the same error
    with pytest.raises(NotFound, match=f"^job {gone} does not exist"):
        await env.scheduler.run_now(gone)
