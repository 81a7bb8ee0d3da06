"""Issue 17's "done when", through the real pieces: a job secret goes to a real worker process
as an environment variable, the script prints it, and the value is in none of: the stored
output (`***` instead), the database file and its -wal, console.log (at DEBUG), `jobs export`.
And `audit list` (a CLI process) shows a worker added a moment before, with who did it."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import socket
from pathlib import Path

import pytest

from desktop import app
from desktop.store import queries
from tests.e2e.conftest import cli

pytestmark = pytest.mark.asyncio

SECRET = "pa55-W0rd-that-must-never-show"
SCRIPT = """\
import os, sys, time
value = os.environ["DB_PASSWORD"]
print("password is " + value, flush=True)
# the same value cut in two writes, so it may reach the hub in two frames
sys.stdout.write("split " + value[:7]); sys.stdout.flush(); time.sleep(0.3)
sys.stdout.write(value[7:] + " end\\n"); sys.stdout.flush()
print("stderr " + value, file=sys.stderr, flush=True)
"""


def _db_bytes(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tmp_path.glob("e2e.db*") if p.is_file()}


async def test_a_secret_reaches_the_script_and_is_stored_nowhere_in_clear(
    stack, tmp_path, monkeypatch
):
    monkeypatch.setattr(app, "log_dir", lambda: tmp_path / "logs")
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        log_path = app.setup_logging(logging.DEBUG)
        await stack.add_worker("w1", start=False)
        (stack.workers.base / "w1" / "scripts" / "show.py").write_text(SCRIPT)
        stack.workers.start("w1")
        await stack.online("w1")
        job_id = await stack.job(name="db-backup", script="show.py")
        warnings = await stack.core.save_job_secrets(job_id, {"DB_PASSWORD": SECRET})
        assert warnings == []
        run_id = await stack.core.run_now(job_id)
        record = await stack.until_state(run_id, {"succeeded", "failed"})
        assert record.state == "succeeded", record.reason
        out = await stack.core.db.call(queries.read_output, run_id)
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    text = "".join(c.text for c in out)
    assert "password is ***\n" in text  # the script did get the value, and it was masked
    assert "split *** end\n" in text
    assert "stderr ***\n" in text
    assert SECRET not in text and SECRET[:7] not in text.replace("split ***", "")
    # the database file and its -wal, byte for byte
    files = _db_bytes(tmp_path)
    assert "e2e.db" in files
    for name, data in files.items():
        assert SECRET.encode() not in data, name
    # console.log at DEBUG
    log_text = log_path.read_text(encoding="utf-8")
    assert "db-backup" in log_text  # the run is in the log...
    assert SECRET not in log_text  # ...its secret is not
    # jobs export (a CLI process): a placeholder
    url = stack.core.db_url
    done = await asyncio.to_thread(cli, url, "jobs", "export")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    (job,) = [j for j in json.loads(done.stdout)["jobs"] if j["name"] == "db-backup"]
    assert job["secrets"] == {"DB_PASSWORD": "<secret: not exported; set it with `secrets set`>"}


async def test_audit_list_shows_a_worker_added_a_moment_before(stack):
    url = stack.core.db_url
    added = await asyncio.to_thread(cli, url, "workers", "add", "fresh-worker")
    assert added.returncode == 0, added.stderr
    await stack.core.add_worker("from-window")
    shown = await asyncio.to_thread(
        cli, url, "audit", "list", "--kind", "worker", "--since", "5m", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [r["name"] for r in rows[:2]] == ["from-window", "fresh-worker"]  # newest first
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    assert rows[0]["who"] == f"console:{me}" and rows[1]["who"] == f"cli:{me}"
    assert rows[1]["action"] == "created" and rows[1]["kind"] == "worker"
    table = await asyncio.to_thread(cli, url, "audit", "list", "--name", "fresh")
    assert "fresh-worker" in table.stdout and "from-window" not in table.stdout


async def test_a_job_whose_secrets_cannot_be_opened_fails_clearly_and_nothing_is_sent(
    stack, tmp_path
):
    await stack.add_worker("w1")
    await stack.online("w1")
    job_id = await stack.job(name="needs-key")
    await stack.core.save_job_secrets(job_id, {"API_KEY": SECRET})
    key_file = tmp_path / "e2e.db.key"
    key_file.unlink()  # the key is lost
    run_id = await stack.core.run_now(job_id)
    record = await stack.until_state(run_id, {"failed", "succeeded", "running"})
    assert record.state == "failed"
    assert "secrets cannot be opened" in record.reason and "no secrets key" in record.reason
    assert SECRET not in record.reason
    assert record.started_at is None  # never reached the worker
    assert "needs-key" not in stack.workers.log_text("w1")
    assert await stack.core.db.call(queries.get_job, job_id) is not None  # the job survives
