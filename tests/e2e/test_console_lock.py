"""One scheduler per SQLite store, with real processes: a second headless console on the same
file exits 1 naming the first (pid and host) and changes nothing; the CLI keeps working beside
the running one; after kill -9 of the first, the lock it held never blocks the restart."""

from __future__ import annotations

import json
import socket
import subprocess

from desktop.store import queries, scheduling
from desktop.store.db import open_store
from tests.conftest import timeout
from tests.e2e.conftest import ROOT, cli, free_port, headless_cmd, prepare_db
from tests.e2e.test_headless import Console


def alive_mark(url: str) -> tuple:
    database = open_store(url)
    try:
        return (scheduling.console_alive(), scheduling.poke_target())
    finally:
        database.close()


def test_a_second_console_on_one_file_exits_and_a_kill_9_frees_the_lock(tmp_path):
    db = tmp_path / "one.db"
    url = f"sqlite:///{db}"
    prepare_db(url)
    port = free_port()
    first = Console(url, port, tmp_path / "first.log")
    second = None
    try:
        first.wait_ready()
        before = alive_mark(url)
        assert before[1] is not None
        # on another port, and on the first one's own port: the reason is the running console,
        # not "port in use"
        for second_port in (free_port(), port):
            result = subprocess.run(
                headless_cmd(url, second_port),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout(60),
            )
            assert result.returncode == 1
            last = result.stderr.strip().splitlines()[-1]
            assert last.startswith(
                f"error: another Job Trigger console (pid {first.proc.pid} on "
                f"{socket.gethostname()}"
            ), result.stderr
            assert f"file {db}" in last and "Traceback" not in result.stderr
        assert alive_mark(url) == before  # the refused console did not touch the first's mark

        # the CLI is no console: reading, and asking the running console, still work
        listed = cli(url, "jobs", "list")
        assert listed.returncode == 0, listed.stderr
        assert cli(url, "runs", "list").returncode == 0

        first.kill9()
        second = Console(url, free_port(), tmp_path / "second.log")
        second.wait_ready()  # the dead holder's lock is gone with it
        info = json.loads((tmp_path / "one.db.lock").read_text())
        assert info["pid"] == second.proc.pid
    finally:
        if first.proc.poll() is None:
            first.stop()
        if second is not None:
            assert second.stop() == 0
    database = open_store(url)
    try:
        assert queries.count_runs() == 0
    finally:
        database.close()
