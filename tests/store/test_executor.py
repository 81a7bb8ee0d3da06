import asyncio
import threading

import pytest

from desktop.store import queries as q
from desktop.store.errors import DatabaseCorrupt
from desktop.store.executor import DbExecutor
from tests.conftest import timeout
from tests.store.helpers import job_spec


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/app.db"


@pytest.mark.asyncio
@pytest.mark.parametrize("memory", [False, True])
async def test_calls_run_on_one_database_thread(url, memory):
    ex = DbExecutor("sqlite:///:memory:" if memory else url)
    try:
        await ex.start()
        job = await ex.call(q.create_job, job_spec(), actor="console")
        assert (await ex.call(q.get_job_by_name, "backup")) == job
        threads = {await ex.call(threading.get_ident) for _ in range(5)}
        assert len(threads) == 1 and threading.get_ident() not in threads
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_the_loop_keeps_running_while_the_database_works(url):
    """The database function waits for something only the event loop can do: if the loop were
    blocked on the call, this would never finish."""
    ex = DbExecutor(url)
    await ex.start()
    gate = threading.Event()

    def slow_transaction():
        assert gate.wait(timeout(5)), "the event loop was blocked"
        return q.create_job(job_spec())

    async def open_gate():
        await asyncio.sleep(0)
        gate.set()

    try:
        job, _ = await asyncio.wait_for(
            asyncio.gather(ex.call(slow_transaction), open_gate()), timeout(10)
        )
        assert job.name == "backup"
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_open_errors_reach_start_and_every_call(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00garbage" * 1000)
    ex = DbExecutor(f"sqlite:///{bad}")
    with pytest.raises(DatabaseCorrupt):
        await ex.start()
    with pytest.raises(DatabaseCorrupt):
        await ex.call(q.list_jobs)
    await ex.close()


@pytest.mark.asyncio
async def test_bug_exceptions_keep_their_type(url):
    ex = DbExecutor(url)
    try:
        with pytest.raises(TypeError):
            await ex.call(q.transition_run, 1, "running", colour="red")
    finally:
        await ex.close()
    with pytest.raises(RuntimeError):
        await ex.call(q.list_jobs)
