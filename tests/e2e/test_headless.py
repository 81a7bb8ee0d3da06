"""The headless console as a real process: no Qt, clear start errors, the CLI talking to it, and
a kill -9 in the middle of a run that loses nothing and duplicates nothing."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.store import queries
from desktop.store.db import open_store
from tests.conftest import timeout
from tests.e2e.conftest import ROOT, WorkerProcs, cli, free_port, headless_cmd, poll, prepare_db


def test_headless_imports_no_qt():
    code = (
        "import sys, desktop.headless, desktop.service, desktop.cli.run, desktop.cli.workers, "
        "desktop.localworker\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', "
        "'qasync'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


class Console:
    """A headless console process; its stderr is collected by a thread."""

    def __init__(self, url: str, port: int, log: Path) -> None:
        self.proc = subprocess.Popen(
            headless_cmd(url, port), cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.log = log
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with open(self.log, "a", encoding="utf-8") as out:
            for line in self.proc.stderr:
                out.write(line)
                self.lines.append(line)
                if "Job Trigger headless: hub at" in line:
                    self.ready.set()

    def wait_ready(self) -> None:
        if not self.ready.wait(timeout(30)):
            raise AssertionError("console did not start:\n" + "".join(self.lines))

    def _close(self) -> None:
        self.reader.join(timeout(10))
        self.proc.stderr.close()

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout(30))
        if not self.proc.stderr.closed:
            self._close()
        return code


@pytest.mark.parametrize("new_database", [True, False])
def test_port_in_use_is_one_clear_line(tmp_path, new_database):
    """A first start on a taken port leaves no database file behind."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    if not new_database:
        open_store(url).close()
    before = sorted(p.name for p in tmp_path.iterdir())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = subprocess.run(
            headless_cmd(url, port), cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: port {port} on 127.0.0.1 is already in use (another Job Trigger console?); "
        "stop it or use --port"
    )
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_newer_database_is_one_clear_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    database = open_store(url)
    database.execute_sql(
        "INSERT INTO schema_version (version, applied_at) VALUES (999, '2030-01-01')"
    )
    database.close()
    result = subprocess.run(
        headless_cmd(url, free_port()), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot open the database:")
    assert "Traceback" not in result.stderr


def test_an_unsupported_database_url_is_one_clear_line(tmp_path):
    """Checked before the port and the one-console lock look at it: the store's own words."""
    result = subprocess.run(
        headless_cmd("mysql://root@127.0.0.1/test", free_port()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: cannot open the database: database URL scheme 'mysql' is not supported; use "
        "sqlite:/// or postgresql://"
    ]


def test_cli_run_needs_a_running_console(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    database = open_store(url)
    queries.create_job({"name": "j", "script": "test_job.py", "schedule": {"kind": "manual"}})
    database.close()
    result = cli(url, "run", "j")
    assert result.returncode == 2
    assert "no Job Trigger console is running" in result.stderr
    database = open_store(url)
    try:
        assert queries.count_runs() == 0  # nothing recorded
    finally:
        database.close()


def _seed_worker_and_job(url: str, job: str, args: list[str]) -> str:
    """A fresh database with worker w1 and a manual test_job.py job; returns w1's token."""
    prepare_db(url)
    database = open_store(url)
    try:
        _, token = queries.add_worker("w1")
        queries.create_job(
            {"name": job, "script": "test_job.py", "args": args, "schedule": {"kind": "manual"}}
        )
    finally:
        database.close()
    return token


@pytest.mark.timeout(240)
def test_console_killed_mid_run_loses_and_duplicates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    token = _seed_worker_and_job(url, "long", ["0", "80", "0.05"])
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    workers = WorkerProcs(tmp_path)
    try:
        console.wait_ready()
        workers.prepare("w1", f"ws://127.0.0.1:{port}/ws/heartbeat", token)
        workers.start("w1")
        poll(url, lambda: (w := queries.get_worker("w1")) and w.last_seen_at, 30, "worker seen")
        # the manual run goes through the CLI and the console's change polling
        result = cli(url, "run", "long", "--", "0", "80", "0.05")
        assert result.returncode == 0, result.stderr
        run_id = int(re.search(r"run (\d+)", result.stdout).group(1))
        poll(
            url,
            lambda: len(queries.read_output(run_id)) >= 2,
            30,
            "the run to produce output",
        )
        console.kill9()
        assert queries_state(url, run_id) in ("dispatched", "running")
        console = Console(url, port, tmp_path / "console.log")
        console.wait_ready()
        record = poll(
            url,
            lambda: (
                (r := queries.get_run(run_id)) and r.state not in ("dispatched", "running") and r
            ),
            60,
            "the run's result after the restart",
        )
        assert record.state == "succeeded", record
        database = open_store(url)
        try:
            chunks = queries.read_output(run_id)
        finally:
            database.close()
        seqs = [c.seq for c in chunks]
        assert len(seqs) == len(set(seqs))
        stdout = "".join(c.text for c in chunks if c.stream == "stdout")
        expected = [f"line {i} of 80" for i in range(1, 81)]
        got = [line for line in stdout.splitlines() if line.startswith("line ")]
        assert got == expected  # every line, once, in order
        assert stdout.count("test_job done") == 1
        assert record.last_seq == max(seqs) + 1  # the finished message came after all output
    finally:
        console.stop()
        workers.stop_all()


def queries_state(url: str, run_id: int) -> str:
    database = open_store(url)
    try:
        return queries.get_run(run_id).state
    finally:
        database.close()


def test_cli_cancel_of_a_running_run_reaches_the_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    token = _seed_worker_and_job(url, "slow", ["0", "600", "0.1"])
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    workers = WorkerProcs(tmp_path)
    try:
        console.wait_ready()
        workers.prepare("w1", f"ws://127.0.0.1:{port}/ws/heartbeat", token)
        workers.start("w1")
        result = cli(url, "run", "slow")
        assert result.returncode == 0, result.stderr
        run_id = int(re.search(r"run (\d+)", result.stdout).group(1))
        poll(url, lambda: queries.get_run(run_id).state == "running", 30, "running")
        result = cli(url, "runs", "cancel", str(run_id))
        assert result.returncode == 0, result.stderr
        assert "sent to the console" in result.stdout
        record = poll(
            url, lambda: (r := queries.get_run(run_id)).state == "cancelled" and r, 30, "cancel"
        )
        assert record.worker_name == "w1"
        result = cli(url, "runs", "cancel", str(run_id))
        assert result.returncode == 2 and "already ended (cancelled)" in result.stderr
    finally:
        console.stop()
        workers.stop_all()
