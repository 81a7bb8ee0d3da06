from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from desktop.cli import main
from desktop.store import db as store_db
from desktop.store import queries as q
from desktop.store.records import OutputChunk

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def spec(name: str, **overrides):
    data = {
        "name": name,
        "script": f"{name}.py",
        "schedule": {"v": 1, "kind": "daily", "times": ["02:30"], "tz": "Asia/Hong_Kong"},
    }
    data.update(overrides)
    return data


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{(tmp_path / 'cli.db').as_posix()}"


@pytest.fixture
def seeded(url):
    """Two jobs; 'backup' has a finished run with stdout and stderr output."""
    database = store_db.open_store(url)
    try:
        backup = q.create_job(spec("backup", args=["--full"]))
        q.create_job(spec("report", enabled=False))
        run = q.create_run(backup.id, T0)
        q.transition_run(run.id, "running", worker_name="win-01", started_at=T0, seq=1)
        q.append_output(
            [
                OutputChunk(run.id, 2, "stdout", "copying files\n"),
                OutputChunk(run.id, 3, "stderr", "disk almost full\nretrying\n"),
                OutputChunk(run.id, 4, "stdout", "done\n"),
            ]
        )
        q.transition_run(run.id, "failed", exit_code=3, finished_at=T0, seq=5)
        return {"url": url, "run_id": run.id}
    finally:
        database.close()


@pytest.fixture
def cli(url, capsys):
    """Run `python -m desktop --db URL ...` in-process; returns (exit code, stdout, stderr)."""

    def run(*argv: str):
        code = main(["--db", url, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def read_db(url, fn, *args):
    database = store_db.open_store(url)
    try:
        return fn(*args)
    finally:
        database.close()


def write_json(path, doc):
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)
