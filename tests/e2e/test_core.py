"""The Core facade as the UI uses it: events, worker status, catalogue, CLI changes noticed, the
local worker on a fresh database."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest

import desktop.localworker as lw
from desktop import poke
from desktop.core.events import JobChanged, OutputAppended, RunChanged, WorkerChanged
from desktop.service import Core, changes
from desktop.store import queries, scheduling
from tests.conftest import timeout
from tests.e2e.conftest import ROOT, prepare_db, wait_until

pytestmark = pytest.mark.asyncio


async def test_facade_events_status_and_catalogue(stack):
    seen = []
    stack.core.events.subscribe(seen.append)
    await stack.add_worker("w1", tags=["a"], slots=2)
    await stack.online("w1")
    assert WorkerChanged("w1", True) in seen
    (status,) = stack.core.worker_status()
    assert (status.name, status.online, status.slots, status.tags) == ("w1", True, 2, ("a",))
    assert status.last_heartbeat.tzinfo is not None
    assert stack.core.script_catalogue() == ["test_job.py"]
    job = await stack.core.save_job(
        {"name": "j", "script": "test_job.py", "schedule": {"kind": "manual"}}
    )
    assert JobChanged(job.id) in seen
    run_id = await stack.core.run_now(job.id, ["0", "2", "0"])
    await stack.until_state(run_id, "succeeded")
    states = [e.state for e in seen if isinstance(e, RunChanged) and e.run_id == run_id]
    assert states == ["queued", "dispatched", "running", "succeeded"]
    text = "".join(e.text for e in seen if isinstance(e, OutputAppended) and e.run_id == run_id)
    assert "line 2 of 2" in text
    with pytest.raises(Exception, match="already ended"):
        await stack.core.cancel_run(run_id)
    await stack.core.set_worker_enabled("w1", False)

    async def offline():
        return not stack.core.worker_status()[0].online

    await wait_until(stack.core, offline, 15, "the disabled worker to be disconnected")
    assert stack.core.script_catalogue() == []


async def test_changes_from_another_process_are_noticed(stack):
    seen = []
    stack.core.events.subscribe(seen.append)
    # the CLI is another process with its own connection to the database
    result = await asyncio.get_running_loop().run_in_executor(
        None,
        lambda: subprocess.run(
            [sys.executable, "-m", "desktop", "--db", stack.core.db_url, "workers", "add", "cli"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout(60),
        ),
    )
    assert result.returncode == 0, result.stderr

    async def noticed():
        return JobChanged(0) in seen

    # the fallback poll is 30 s: noticing within 10 s is the CLI's nudge (desktop/poke.py)
    assert changes.POLL_SECONDS >= 30
    await wait_until(stack.core, noticed, 10, "JobChanged(0) after a CLI change")
    assert "cli" in {s.name for s in stack.core.worker_status()}  # known (offline) at once


async def test_a_signed_nudge_only_makes_the_console_look_and_a_forged_one_not_even_that(
    stack, monkeypatch
):
    seen = []
    stack.core.events.subscribe(seen.append)
    port, key = await stack.core.db.call(scheduling.poke_target)
    reads = []
    real = queries.change_marker

    def counting():
        reads.append(1)
        return real()

    monkeypatch.setattr(queries, "change_marker", counting)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00" * 2000, ("127.0.0.1", port))  # any bytes at all
        sock.sendto(poke.make("ab" * 32, time.time()), ("127.0.0.1", port))  # a guessed key
    listener = stack.core.changes.poke.get_protocol()

    async def refused():
        return listener.refused >= 2

    await wait_until(stack.core, refused, 10, "the console to refuse both datagrams")
    assert reads == []  # nothing was done for them
    poke.send(port, key)

    async def looked():
        return len(reads) >= 1

    await wait_until(stack.core, looked, 10, "the console to read the change marker")
    assert JobChanged(0) not in seen  # nothing changed, so nothing is announced
    assert await stack.core.db.call(scheduling.console_alive)


async def test_local_worker_on_a_fresh_database(tmp_path, monkeypatch):
    monkeypatch.setattr(lw, "data_folder", lambda: tmp_path / "data" / "local-worker")
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    prepare_db(url)
    core = Core(url, "127.0.0.1", 0, local_worker=True)
    await core.start()
    try:
        name = lw.local_name()

        async def online():
            return any(s.name == name and s.online for s in core.worker_status())

        await wait_until(core, online, 30, "the local worker")
        job = await core.db.call(queries.get_job_by_name, "test_job")
        assert job is not None and job.schedule["kind"] == "manual"
        run_id = await core.run_now(job.id)

        async def done():
            r = await core.db.call(queries.get_run, run_id)
            return r.state == "succeeded" and r

        record = await wait_until(core, done, 30, "the sample job to succeed")
        assert record.worker_name == name
        ini = (tmp_path / "data" / "local-worker" / "worker.ini").read_text()
        assert core.hub_url in ini
        # it restarts when it dies
        first_pid = core.local_worker.proc.pid
        core.local_worker.proc.kill()

        async def back():
            proc = core.local_worker.proc
            return proc.pid != first_pid and any(
                s.name == name and s.online for s in core.worker_status()
            )

        await wait_until(core, back, 30, "the local worker to be restarted")
    finally:
        await core.stop()
    assert core.local_worker.proc.returncode is not None
    # a second start on the same database: same worker, the ini's token still valid, no 2nd job
    core = Core(url, "127.0.0.1", 0, local_worker=True)
    await core.start()
    try:
        await wait_until(core, online, 30, "the local worker after a restart")
        jobs = await core.db.call(queries.list_jobs)
        assert [j.name for j in jobs] == ["test_job"]
    finally:
        await core.stop()


async def test_every_run_start_and_end_is_in_the_log_with_job_run_and_worker(stack, caplog):
    """Runs started as the window starts them (Core.run_now) leave a start and an end line in
    console.log (the root logger's file), with the job, the run id and the worker."""
    import logging

    caplog.set_level(logging.INFO, logger="desktop.runs")
    await stack.add_worker("w1", slots=2)
    await stack.online("w1")
    job = await stack.core.save_job(
        {"name": "nightly", "script": "test_job.py", "schedule": {"kind": "manual"}}
    )
    ok = await stack.core.run_now(job.id, ["0", "1", "0"])
    bad = await stack.core.run_now(job.id, ["3", "1", "0"])
    await stack.until_state(ok, "succeeded")
    await stack.until_state(bad, "failed")
    lines = [r.getMessage() for r in caplog.records if r.name == "desktop.runs"]
    assert f"run {ok} of job 'nightly' started on worker w1 (manual)" in lines
    assert f"run {ok} of job 'nightly' ended succeeded exit 0 on worker w1" in lines
    assert f"run {bad} of job 'nightly' started on worker w1 (manual)" in lines
    assert any(
        line.startswith(f"run {bad} of job 'nightly' ended failed exit 3 on worker w1")
        for line in lines
    ), lines
