"""The Core's side of desktop/service/cluster.py in one process: who schedules, the hub's gate,
the status line, the hand-over at stop; and SQLite, where the one console is the leader."""

from __future__ import annotations

import pytest

from desktop.service import Core
from desktop.store import cluster
from desktop.store.db import open_store
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


async def test_sqlite_console_is_its_own_leader(tmp_path):
    core = Core(f"sqlite:///{tmp_path / 'solo.db'}", "127.0.0.1", 0)
    await core.start()
    try:
        assert core.cluster.leading and core.cluster_summary() == ""
        (me,) = await core.cluster_status()
        assert me.role == "leader" and me.me and me.hub_url == core.hub_url
    finally:
        await core.stop()
