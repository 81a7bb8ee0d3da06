"""The console (executor thread) and the CLI (another process) write one SQLite file at once."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

from desktop.store import queries as q
from desktop.store.executor import DbExecutor
from desktop.store.records import OutputChunk
from tests.conftest import timeout
from tests.store.helpers import T0, job_spec

ROOT = Path(__file__).resolve().parents[2]


async def _cli(url, *argv):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "desktop",
        "--db",
        url,
        *argv,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout(60))
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.asyncio
async def test_cli_and_console_write_concurrently(tmp_path):
    url = f"sqlite:///{(tmp_path / 'shared.db').as_posix()}"
    ex = DbExecutor(url)
    await ex.start()
    try:
        job = await ex.call(q.create_job, job_spec("busy"))
        run = await ex.call(q.create_run, job.id, T0)
        marker = await ex.call(q.change_marker)
        doc = {
            "format": "jobtrigger-jobs",
            "version": 1,
            "jobs": [job_spec(f"imported-{i:02d}") for i in range(30)],
        }
        path = tmp_path / "jobs.json"
        path.write_text(json.dumps(doc), encoding="utf-8")

        cli_work = asyncio.ensure_future(
            asyncio.gather(
                _cli(url, "jobs", "import", str(path)),
                _cli(url, "jobs", "disable", "busy"),
                _cli(url, "runs", "list"),
            )
        )
        seq = 0
        # the console keeps committing output batches while the CLI processes work
        while not cli_work.done() or seq < 50:
            batch = [
                OutputChunk(run.id, seq + i + 1, "stdout", f"line {seq + i}\n") for i in range(20)
            ]
            acked = await ex.call(q.append_output, batch)
            seq += 20
            assert acked == {run.id: seq}
        results = await cli_work
        for code, out, err in results:
            assert code == 0, out + err

        assert len(await ex.call(q.read_output, run.id)) == seq
        names = {j.name for j in await ex.call(q.list_jobs)}
        assert {f"imported-{i:02d}" for i in range(30)} <= names
        assert not (await ex.call(q.get_job, job.id)).enabled
        # what the console polls to notice the CLI's changes
        assert await ex.call(q.change_marker) >= marker + 2
    finally:
        await ex.close()
