"""The Core's side of desktop/service/cluster.py in one process: who schedules, the hub's gate,
the status line, the hand-over at stop; and SQLite, where the one console is the leader."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from desktop.core.events import RunChanged
from desktop.service import Core
from desktop.store import cluster, queries
from desktop.store.db import open_store
from tests.conftest import timeout
from tests.ha.conftest import with_database

pytestmark = pytest.mark.asyncio


async def test_a_lone_core_on_postgresql_leads_at_once_and_resigns_when_it_stops(pg_database):
    """(Two Cores cannot share one process: the models' database proxy is global; the standby
    side runs as real processes in test_failover.py.)"""
    url = with_database(*pg_database)
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    try:
        assert core.cluster.leading and core.scheduler._task is not None
        assert core.hub.gate() is None
        assert core.cluster_summary() == "Cluster: this console leads"
        (me,) = await core.cluster_status()
        assert (me.role, me.me, me.hub_url) == ("leader", True, core.hub_url)
    finally:
        await core.stop()
    database = open_store(url)
    try:
        (after,) = cluster.members()
        assert after.role == "stopped"
        _epoch, _holder, expires, now = cluster.lease()
        assert expires <= now  # handed over: a standby would not wait out the lease
    finally:
        database.close()


async def test_a_console_that_becomes_leader_plans_the_retry_the_last_leader_owed(pg_database):
    """The last leader committed a failed run (retries left) and lost the lead before the pass
    that plans its retry; the console that leads next plans it, once."""
    url = with_database(*pg_database)
    database = open_store(url)
    try:
        job = queries.create_job(
            {
                "name": "flaky",
                "script": "a.py",
                "schedule": {"kind": "manual"},
                "max_retries": 1,
                "retry_delay_seconds": 1,
            }
        )
        run = queries.create_run(job.id, datetime.now(timezone.utc), trigger="manual")
        queries.transition_run(run.id, "running", worker_name="w1")
        queries.transition_run(run.id, "failed", worker_name="w1", exit_code=1)
    finally:
        database.close()
    core = Core(url, "127.0.0.1", 0)
    planned = asyncio.Event()
    core.events.subscribe(
        lambda e: planned.set() if isinstance(e, RunChanged) and e.run_id != run.id else None
    )
    await core.start()
    try:
        assert core.cluster.leading
        await asyncio.wait_for(planned.wait(), timeout(20))
        runs = await core.db.call(queries.list_runs, job.id)
        assert sorted((r.attempt, r.trigger, r.state) for r in runs) == [
            (1, "manual", "failed"),
            (2, "retry", "queued"),
        ]
    finally:
        await core.stop()


async def test_sqlite_console_is_its_own_leader(tmp_path):
    core = Core(f"sqlite:///{tmp_path / 'solo.db'}", "127.0.0.1", 0)
    await core.start()
    try:
        assert core.cluster.leading and core.cluster_summary() == ""
        (me,) = await core.cluster_status()
        assert me.role == "leader" and me.me and me.hub_url == core.hub_url
    finally:
        await core.stop()


async def test_sqlite_status_line_is_renewed_with_the_alive_mark_in_one_database_call(
    tmp_path, monkeypatch
):
    """The line ``cluster status`` reads on SQLite rides the console's alive mark: one trip to
    the database thread per mark, no timer of its own (benchmarks: idle wake-ups)."""
    import asyncio
    import json
    from datetime import timedelta

    from desktop.service import changes
    from desktop.service.cluster import SOLO_KEY
    from desktop.store import scheduling

    monkeypatch.setattr(scheduling, "ALIVE_EVERY", timedelta(seconds=0.2))
    monkeypatch.setattr(changes, "POLL_SECONDS", 3600.0)
    core = Core(f"sqlite:///{tmp_path / 'solo.db'}", "127.0.0.1", 0)
    await core.start()
    calls: list[str] = []
    real_call = core.db.call

    async def counting_call(fn, *args, **kwargs):
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await real_call(fn, *args, **kwargs)

    core.db.call = counting_call
    try:

        def beat():
            return json.loads(cluster.get_setting(SOLO_KEY))["heartbeat_at"]

        first = await real_call(beat)
        await asyncio.sleep(0.5)  # two alive marks or so
        assert await real_call(beat) > first, "the status line was not renewed"
        marks = calls.count("_beat")
        assert marks >= 1
        # nothing else woke the database thread for the status line (no _put_solo of its own);
        # the scheduler's first pass may still come after start()
        assert set(calls) <= {"_beat", "run_pass"}, calls
    finally:
        core.db.call = real_call
        await core.stop()
    database = open_store(f"sqlite:///{tmp_path / 'solo.db'}")
    try:
        assert cluster.get_setting(SOLO_KEY) is None  # a clean stop takes the line away
    finally:
        database.close()
