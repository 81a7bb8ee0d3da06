"""``cluster status`` on SQLite: no cluster, the one console that runs on the file (if any).
(PostgreSQL: tests/ha/test_failover.py reads it after a takeover.)"""

from __future__ import annotations

import pytest

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
