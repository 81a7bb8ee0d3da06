"""The console applies the retention settings to runs already stored, on its own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from desktop.core.timeutil import utcnow
from desktop.service import Core, retention
from desktop.store import queries
from desktop.store.db import open_store
from tests.e2e.conftest import prepare_db, wait_until

pytestmark = pytest.mark.asyncio


def _history(job_name: str, count: int) -> int:
    job = queries.create_job({"name": job_name, "script": "a.py", "schedule": {"kind": "manual"}})
    start = utcnow() - timedelta(hours=count)
    for i in range(count):
        run = queries.create_run(job.id, start + timedelta(hours=i), trigger="manual")
        queries.transition_run(run.id, "cancelled", reason="test history")
    # one active run: retention never touches those, however old or many
    queries.create_run(job.id, start - timedelta(days=1), trigger="manual")
    return job.id


async def test_console_prunes_existing_runs_beyond_the_per_job_limit(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    prepare_db(url, {"retention_runs_per_job": "3", "retention_days": "0"})
    monkeypatch.setattr(retention, "RETENTION_FIRST_DELAY", 0.0)
    database = open_store(url)
    try:
        job_id = _history("kept-short", 10)
    finally:
        database.close()
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    try:

        async def pruned():
            runs = await core.db.call(queries.list_runs, job_id, 100)
            return runs if len(runs) <= 3 else None

        runs = await wait_until(core, pruned, 10, "old runs to be pruned")
        # the newest three rows are kept (the active one counts among them); the older finished
        # ones are gone
        assert sorted(r.state for r in runs) == ["cancelled", "cancelled", "queued"]
        assert max(r.id for r in runs) == runs[0].id
    finally:
        await core.stop()
