"""``cluster status`` on SQLite: no cluster, the one console that runs on the file (if any).
(PostgreSQL: tests/ha/test_failover.py reads it after a takeover.)"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from desktop.core.timeutil import utcnow
from desktop.service.cluster import SOLO_KEY, read_solo
from desktop.store import cluster
from desktop.store.db import open_store
from tests.e2e.conftest import cli, free_port, prepare_db
from tests.e2e.test_headless import Console


def test_nothing_ran_yet(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = cli(url, "cluster", "status")
    assert result.returncode == 0, result.stderr
    assert "no console has run on this database" in result.stdout


@pytest.mark.timeout(120)
def test_the_running_console_is_the_leader_and_shows_its_hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'solo.db'}"
    prepare_db(url)
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    try:
        console.wait_ready()
        result = cli(url, "cluster", "status")
        assert result.returncode == 0, result.stderr
        assert "SQLite: one console, no cluster" in result.stdout
        (row,) = [line for line in result.stdout.splitlines() if f":{port}/" in line]
        assert f" {console.proc.pid} " in row and " leader " in row
    finally:
        console.stop()
    result = cli(url, "cluster", "status")
    assert "no console has run" in result.stdout  # a clean stop takes its line away


def test_a_console_that_died_shows_as_gone(tmp_path):
    """kill -9 leaves its line behind (a clean stop removes it): its old heartbeat tells."""
    url = f"sqlite:///{tmp_path / 'died.db'}"
    beat = utcnow() - timedelta(minutes=5)
    line = {"host": "h", "pid": 4711, "hub_url": "ws://h:8000/ws/heartbeat"}
    line |= {"since": beat.isoformat(), "heartbeat_at": beat.isoformat(), "workers": ["w1"]}
    database = open_store(url)
    try:
        cluster.put_setting(SOLO_KEY, json.dumps(line))
        (console,) = read_solo()
        assert (console.role, console.pid, console.workers) == ("gone", 4711, ("w1",))
    finally:
        database.close()
    result = cli(url, "cluster", "status")
    (row,) = [r for r in result.stdout.splitlines() if "4711" in r]
    assert " gone " in row and "w1" in row
