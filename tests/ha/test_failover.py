"""Failover: two headless consoles on one PostgreSQL, a worker listing both, a job firing every
second and a run streaming output; then the leader is killed (-9), cut from the database (a TCP
proxy between it and PostgreSQL aborts its connections and refuses new ones), or the database
drops every connection (pg_terminate_backend on all sessions of the test's database, repeated
for a few seconds: what the consoles see of a restart, without restarting the server that other
tests share).  In each case the checks of conftest.check_outcome: no occurrence fired twice,
none lost (run_all), every run succeeded, every output line stored once; and the takeover time
is measured (goal: under 10 s with the default lease).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from websockets.sync.client import connect

from desktop.store import cluster, queries
from tests.chaos.conftest import in_store, poll, start_run, stored_upto, wait
from tests.conftest import timeout
from tests.e2e.conftest import WorkerProcs, cli, free_port
from tests.e2e.rawpeer import hello_frame
from tests.e2e.test_headless import Console
from tests.ha.conftest import (
    FIGURES,
    all_runs,
    check_outcome,
    seed,
    wait_leader,
    wait_worker_on,
    with_database,
)
from tests.ha.silentproxy import SilentProxy

TAKEOVER_GOAL = 10.0  # seconds, default lease (docs/HA.md)


def hello_reply(port: int, token: str) -> dict:
    """What a console answers a worker's hello: a raw socket, no worker logic."""
    with connect(f"ws://127.0.0.1:{port}/ws/heartbeat", open_timeout=timeout(10)) as ws:
        ws.send(hello_frame("w1", token))
        return json.loads(ws.recv(timeout=timeout(10)))


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}:{port}"))


class Pair:
    """Consoles A (leader) and B (standby), worker w1 listing A then B, both jobs going."""

    def __init__(self, tmp_path, base: str, name: str, *, a_port_db: int | None = None) -> None:
        self.tmp = tmp_path
        self.url = with_database(base, name)
        self.token = seed(self.url)
        url_a = with_database(base, name, application_name="jt_ha_a")
        if a_port_db is not None:
            url_a = through(url_a, a_port_db)
        self.url_a = url_a
        self.url_b = with_database(base, name, application_name="jt_ha_b")
        self.port_a, self.port_b = free_port(), free_port()
        self.a = Console(self.url_a, self.port_a, tmp_path / "a.log")
        self.consoles = [self.a]
        self.workers = WorkerProcs(tmp_path)
        self.a.wait_ready()
        wait_leader(self.url, self.a.proc.pid, 20, "console A to lead")
        self.b = Console(self.url_b, self.port_b, tmp_path / "b.log")
        self.consoles.append(self.b)
        self.b.wait_ready()
        urls = ", ".join(f"ws://127.0.0.1:{p}/ws/heartbeat" for p in (self.port_a, self.port_b))
        self.workers.prepare("w1", urls, self.token, slots=8)
        self.workers.start("w1")
        wait_worker_on(self.url, self.a.proc.pid, 30)
        self.tick_id = in_store(self.url, queries.get_job_by_name, "tick").id
        self.stream_id = start_run(self.url, "stream")
        # mid-stream and mid-schedule: the disruption hits runs that are streaming
        poll(self.url, lambda: stored_upto(self.stream_id) >= 300, 60, "the stream under way")
        self.wait_ticks(3)

    def tick_count(self) -> int:
        return sum(1 for r in all_runs(self.url) if r[1] == self.tick_id)

    def wait_ticks(self, more: int) -> None:
        target = self.tick_count() + more
        wait(lambda: self.tick_count() >= target, 30, f"{more} more occurrences of tick")

    def finish(self) -> None:
        """Stop the schedule and let every run end (the worker delivers what it spooled)."""
        in_store(self.url, queries.set_job_enabled, self.tick_id, False)

        def ended():
            return all(r[4] not in ("queued", "dispatched", "running") for r in all_runs(self.url))

        wait(ended, 90, "every run to end")

    def close(self) -> None:
        for console in self.consoles:
            console.stop()
        self.workers.stop_all()


def log_text(console: Console) -> str:
    return "".join(console.lines)


def logged_at(console: Console, text: str) -> float:
    """When a console logged ``text`` (its log's own timestamp, local time, as epoch seconds)."""
    line = next(line for line in console.lines if text in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.mark.timeout(240)
def test_leader_killed_the_standby_takes_over_and_nothing_fires_twice(tmp_path, pg_database):
    pair = Pair(tmp_path, *pg_database)
    try:
        # the standby refuses and names the leader; it checks no token, so a wrong one gets
        # the same answer (no guessing oracle) and the standby records nothing for it
        reply = hello_reply(pair.port_b, pair.token)
        assert reply["type"] == "reject" and reply["code"] == "not_leader", reply
        assert f"127.0.0.1:{pair.port_a}/" in reply["reason"], reply
        wrong = hello_reply(pair.port_b, "not-the-token")
        assert (wrong["code"], wrong["reason"]) == (reply["code"], reply["reason"])
        began = time.monotonic()
        pair.a.kill9()
        wait_leader(pair.url, pair.b.proc.pid, 30, "console B to take over")
        takeover = time.monotonic() - began
        wait_worker_on(pair.url, pair.b.proc.pid, 30)
        worker_back = time.monotonic() - began
        pair.wait_ticks(3)  # B fires
        status = cli(pair.url, "cluster", "status")
        assert status.returncode == 0, status.stderr
        rows = {int(line.split()[1]): line.split()[2] for line in status.stdout.splitlines()[2:]}
        assert rows == {pair.b.proc.pid: "leader", pair.a.proc.pid: "gone"}, status.stdout
        # the old leader comes back: it must stand by, not fire
        again = Console(pair.url_a, pair.port_a, tmp_path / "a2.log")
        pair.consoles.append(again)
        again.wait_ready()
        assert "standing by" in log_text(again)
        pair.wait_ticks(2)
        assert in_store(pair.url, cluster.current_leader).pid == pair.b.proc.pid
        pair.finish()
        outcome = check_outcome(pair.url)
        assert takeover < TAKEOVER_GOAL, takeover
        FIGURES.append(
            {
                "case": "leader kill -9",
                "takeover s": round(takeover, 1),
                "worker on new leader s": round(worker_back, 1),
                "occurrences": outcome.occurrences,
                "stream lines": outcome.stream_lines,
            }
        )
    finally:
        pair.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("cut", ["reset", "silent"])
def test_leader_cut_from_the_database_steps_down_and_fires_nothing(tmp_path, pg_database, cut):
    """reset: the proxy aborts the leader's connections and refuses new ones; silent: it holds
    every byte back without closing anything (the harder case: the leader's calls just hang,
    and one of its transactions may hold the lease row)."""
    base, name = pg_database
    pg_port = urlsplit(base).port or 5432
    proxy = SilentProxy(pg_port, seed=19).start()
    pair = None
    try:
        pair = Pair(tmp_path, base, name, a_port_db=proxy.port)
        began = time.monotonic()
        # longer than the lease: A must notice alone that it lost the lead
        if cut == "reset":
            proxy.cut_for(12.0)
        else:
            proxy.freeze_for(12.0)
        wait_leader(pair.url, pair.b.proc.pid, 30, "console B to take over")
        takeover = time.monotonic() - began
        wait_worker_on(pair.url, pair.b.proc.pid, 30)
        worker_back = time.monotonic() - began
        wait(lambda: "no longer leads" in log_text(pair.a), 30, "A to step down")
        # the old leader stopped scheduling on its own, before the new one started
        stepped_down = logged_at(pair.a, "no longer leads")
        took_over = logged_at(pair.b, "now leads")
        assert stepped_down < took_over, (stepped_down, took_over)
        # A reaches the database again: it stands by, B keeps the lead and keeps firing
        poll(
            pair.url,
            lambda: any(
                m.pid == pair.a.proc.pid and m.role == "standby" for m in cluster.members_if_any()
            ),
            60,
            "A back, as a standby",
        )
        pair.wait_ticks(3)
        assert in_store(pair.url, cluster.current_leader).pid == pair.b.proc.pid
        pair.finish()
        outcome = check_outcome(pair.url)
        assert log_text(pair.a).count("now leads") == 1  # never took the lead back
        assert takeover < TAKEOVER_GOAL, takeover
        FIGURES.append(
            {
                "case": f"leader cut from PostgreSQL ({cut})",
                "takeover s": round(takeover, 1),
                "old leader stopped before the new one started, s": round(
                    took_over - stepped_down, 1
                ),
                "worker on new leader s": round(worker_back, 1),
                "occurrences": outcome.occurrences,
                "stream lines": outcome.stream_lines,
            }
        )
    finally:
        if pair is not None:
            pair.close()
        proxy.stop()


@pytest.mark.timeout(240)
def test_database_drops_every_connection_and_scheduling_resumes_once(tmp_path, pg_database):
    base, name = pg_database
    pair = Pair(tmp_path, base, name)
    admin = psycopg2.connect(base)
    admin.autocommit = True
    try:
        began = time.monotonic()
        killed = 0
        # what the consoles see of a restart: every session dropped, again and again, for 4 s
        while time.monotonic() - began < 4.0:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                killed += cur.fetchone()[0]
            time.sleep(0.2)  # the outage's own rhythm, nothing to wait for
        assert killed >= 2  # both consoles' sessions (and the CLI's, if any) were cut

        def leader_with_worker():
            return any(m.role == "leader" and "w1" in m.workers for m in cluster.members_if_any())

        poll(pair.url, leader_with_worker, 30, "a leader with the worker")
        recovered = time.monotonic() - began
        pair.wait_ticks(3)
        pair.finish()
        outcome = check_outcome(pair.url)
        leader = in_store(pair.url, cluster.current_leader)
        FIGURES.append(
            {
                "case": "database drops all connections for 4 s",
                "leader with worker after s": round(recovered, 1),
                "leader after": "A" if leader.pid == pair.a.proc.pid else "B",
                "occurrences": outcome.occurrences,
                "stream lines": outcome.stream_lines,
            }
        )
    finally:
        admin.close()
        pair.close()
