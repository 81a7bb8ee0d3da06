"""The PostgreSQL lease and its fencing token (desktop/store/cluster.py), on a real server.

Two consoles are two threads: peewee gives each thread its own connection (its own session),
and the fence is kept per thread, as each Core keeps it on its own database thread.
"""

from __future__ import annotations

import concurrent.futures
from datetime import datetime, timedelta, timezone

import pytest

from desktop.core import runs as states
from desktop.scheduler import firing
from desktop.store import cluster, queries
from desktop.store import db as store_db
from desktop.store.models import Run, database_proxy


class Console:
    """One simulated console: a thread of its own (its own connection), its fence bound there
    and set from its ticks, as desktop/service/cluster.py does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.fence = cluster.Fence(name)
        self(cluster.bind_fence, self.fence)

    def __call__(self, fn, *args):
        return self.pool.submit(fn, *args).result(timeout=30)

    def tick(self, lease: float = cluster.LEASE_SECONDS) -> cluster.LeaseState:
        state = self(
            cluster.tick, self.name, "host-" + self.name, 1, f"ws://{self.name}", [], lease
        )
        self.fence.token = state.epoch if state.leading else None
        return state

    def close(self) -> None:
        self(database_proxy.close)
        self.pool.shutdown()


@pytest.fixture
def two(pg_schema_url):
    database = store_db.open_store(pg_schema_url)
    cluster.ensure_schema()
    a, b = Console("a"), Console("b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()
        database.close()


def expire_lease() -> None:
    """What time does to a lease nobody renews (here at once, not after LEASE_SECONDS)."""
    database_proxy.execute_sql("UPDATE jt_cluster_lease SET expires_at = now() - interval '1 s'")


def test_first_console_leads_the_second_stands_by_and_learns_who_leads(two):
    a, b = two
    first = a.tick()
    assert first.leading and first.epoch == 1
    second = b.tick()
    assert not second.leading
    assert second.leader.member_id == "a" and second.leader.hub_url == "ws://a"
    assert a.tick().epoch == 1  # renewing keeps the token
    roles = {m.member_id: m.role for m in cluster.members()}
    assert roles == {"a": "leader", "b": "standby"}


def test_a_tick_carries_the_change_marker_so_the_leader_reads_changes_only_when_it_moved(two):
    a, b = two
    before = a.tick().marker
    assert a.tick().marker == before  # idle: the same marker, the leader reads nothing more
    b(queries.set_setting, "heartbeat_interval", "20")  # a standby's edit
    assert a.tick().marker > before


def test_standby_takes_over_only_once_the_lease_expired_with_a_new_token(two):
    a, b = two
    a.tick()
    assert not b.tick().leading
    expire_lease()
    taken = b.tick()
    assert taken.leading and taken.epoch == 2
    assert not a.tick().leading  # the old leader, back, stands by
    assert {m.member_id: m.role for m in cluster.members()}["a"] == "standby"


def test_old_leader_that_comes_back_fires_nothing(two):
    """The attack: a leader that was paused past its lease tries to fire and dispatch."""
    a, b = two
    job = queries.create_job(
        {
            "name": "j",
            "script": "s.py",
            "schedule": {"kind": "interval", "every": 1, "unit": "seconds"},
        }
    )
    a.tick()
    expire_lease()
    b.tick()
    due = [queries.get_job(job.id)]
    now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)  # due
    with pytest.raises(cluster.NotLeader):
        a(firing.fire_jobs, due, now)
    with pytest.raises(cluster.NotLeader):
        a(firing.run_pass, now, [], {})
    assert Run.select().count() == 0  # nothing recorded, nothing to dispatch
    fired = b(firing.fire_jobs, due, now)
    assert [r.state for r in fired.runs] == [states.QUEUED]


def test_a_standby_is_fenced_before_it_ever_led(two):
    a, b = two
    a.tick()
    b.tick()
    with pytest.raises(cluster.NotLeader):
        b(cluster.fence)
    a(cluster.fence)  # the leader passes


def test_leader_that_stops_hands_over_at_once(two):
    a, b = two
    a.tick()
    assert not b.tick().leading
    a(cluster.resign, "a")
    assert b.tick().leading  # no wait for the lease to run out
    roles = {m.member_id: m.role for m in cluster.members()}
    assert roles == {"a": "stopped", "b": "leader"}


def test_no_cluster_no_fence(two):
    """A thread with no fence bound (SQLite, the CLI: no cluster) is not fenced."""
    cluster.fence()


def test_a_session_silent_inside_a_transaction_is_ended_by_the_server(two):
    """Its row locks would otherwise block the other console until TCP gives up; the URL's own
    options (here the test's search_path) are kept beside it."""
    (timeout,) = database_proxy.execute_sql("SHOW idle_in_transaction_session_timeout").fetchone()
    assert timeout == "5s"
    (path,) = database_proxy.execute_sql("SHOW search_path").fetchone()
    assert path.startswith("jt_")
