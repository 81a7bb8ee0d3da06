"""The window's Core on its own thread (desktop/service/corethread.py): the real Core with a
real worker, driven from the test's loop as the window drives it, and the proxy's rules."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from desktop.core.events import EventBus, OutputAppended, RunChanged
from desktop.service import Core
from desktop.service.corethread import EventRelay, start_remote
from desktop.store import queries
from tests.conftest import timeout
from tests.e2e.conftest import WorkerProcs, prepare_db


def core_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jobtrigger-core" and t.is_alive()]


@pytest.mark.asyncio
async def test_a_real_job_runs_through_the_remote_core_and_its_events_arrive_here(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    prepare_db(url)
    remote = await start_remote(lambda: Core(url, "127.0.0.1", 0))
    here = threading.get_ident()
    seen: list = []
    threads: set[int] = set()

    def on_event(event) -> None:
        threads.add(threading.get_ident())
        seen.append(event)

    remote.events.subscribe(on_event)
    workers = WorkerProcs(tmp_path)
    try:
        assert remote.target.hub is not None
        token = await remote.add_worker("w1")
        workers.prepare("w1", remote.hub_url, token)
        workers.start("w1")
        deadline = time.monotonic() + timeout(30)
        while not any(s.online for s in await remote.live_workers()):
            assert time.monotonic() < deadline, workers.log_text("w1")
            await asyncio.sleep(0.05)
        assert await remote.live_scripts() == ["test_job.py"]
        job = await remote.save_job(
            {"name": "j", "script": "test_job.py", "schedule": {"kind": "manual"}}
        )
        run_id = await remote.run_now(job.id)
        while not any(isinstance(e, RunChanged) and e.state == "succeeded" for e in seen):
            assert time.monotonic() < deadline, workers.log_text("w1")
            await asyncio.sleep(0.05)
        run = await remote.read(lambda reads, rid: queries.get_run(rid), run_id)
        assert run.state == "succeeded"
        states = [e.state for e in seen if isinstance(e, RunChanged) and e.run_id == run_id]
        assert states[0] == "queued" and states[-1] == "succeeded"  # in the order published
        seqs = [e.seq for e in seen if isinstance(e, OutputAppended) and e.run_id == run_id]
        assert seqs and seqs == sorted(seqs)
        # every subscriber call happened on this loop's thread, none on the Core's
        assert threads == {here}
    finally:
        await asyncio.get_running_loop().run_in_executor(None, workers.stop_all)
        await remote.stop()
    assert not core_threads()
    assert remote.target.db._closed
    await remote.stop()  # twice is harmless


@pytest.mark.asyncio
async def test_a_failed_start_raises_here_and_leaves_no_thread(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    prepare_db(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        built: list[Core] = []

        def factory() -> Core:
            built.append(Core(url, "127.0.0.1", port))
            return built[-1]

        with pytest.raises(OSError):
            await start_remote(factory)
    assert not core_threads()
    assert built[0].db._closed  # what the failed start opened is closed again


class Fake:
    """A facade with the shapes that matter: a coroutine, a plain method, events."""

    def __init__(self) -> None:
        self.events = EventBus()
        self.hub_url = "ws://127.0.0.1:1/ws/heartbeat"
        self.cancelled = threading.Event()
        self.loop_thread: int | None = None
        self.stopped = 0

    async def start(self) -> None:
        self.loop_thread = threading.get_ident()

    async def stop(self) -> None:
        self.stopped += 1

    async def busy_for(self, seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "done"

    async def fail(self) -> None:
        raise KeyError("no such job")

    async def flood(self, count: int) -> None:
        for i in range(count):
            self.events.publish(OutputAppended(1, i, "stdout", f"{i}\n"))

    async def change(self, run_id: int) -> int:
        self.events.publish(RunChanged(run_id, 1, "running"))
        return run_id

    def worker_status(self) -> list:
        return []

    def cluster_summary(self) -> str:
        return ""


@pytest.mark.asyncio
async def test_the_proxy_runs_coroutines_there_and_refuses_plain_state_access():
    remote = await start_remote(Fake)
    try:
        fake: Fake = remote.target
        assert fake.loop_thread not in (None, threading.get_ident())
        assert remote.hub_url == fake.hub_url
        assert await remote.busy_for(0) == "done"
        with pytest.raises(KeyError, match="no such job"):
            await remote.fail()
        # hub state read across threads could meet a dict changing size: refused, by name
        with pytest.raises(AttributeError, match="worker_status"):
            remote.worker_status()
        assert remote.cluster_summary() == ""  # the one plain read that is safe
        # a window task given up (a closed dialog) cancels its call on the Core's loop
        task = asyncio.ensure_future(remote.busy_for(30))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.get_running_loop().run_in_executor(
            None, fake.cancelled.wait, timeout(5)
        )
    finally:
        await remote.stop()
    assert fake.stopped == 1 and not core_threads()


@pytest.mark.asyncio
async def test_a_flood_of_events_arrives_complete_in_order_in_few_wake_ups():
    remote = await start_remote(Fake)
    got: list[int] = []
    remote.events.subscribe(lambda e: got.append(e.seq))
    flushes = 0
    relay: EventRelay = remote._relay
    real_flush = relay.flush

    def counting_flush() -> None:
        nonlocal flushes
        flushes += 1
        real_flush()

    relay.flush = counting_flush  # type: ignore[method-assign]
    try:
        await remote.flood(50_000)
        deadline = time.monotonic() + timeout(10)
        while len(got) < 50_000:
            assert time.monotonic() < deadline, len(got)
            await asyncio.sleep(0.01)
        assert got == list(range(50_000))
        # one hand-over per batch, not per event (the threads run side by side, so a batch is
        # whatever piled up between two turns of this loop)
        assert flushes <= 50_000 // 10
    finally:
        await remote.stop()


@pytest.mark.asyncio
async def test_events_published_while_stopping_still_arrive():
    class Closing(Fake):
        async def stop(self) -> None:
            self.events.publish(RunChanged(7, 1, "lost"))

    remote = await start_remote(Closing)
    got: list = []
    remote.events.subscribe(got.append)
    await remote.stop()
    assert got == [RunChanged(7, 1, "lost")]


@pytest.mark.asyncio
async def test_the_events_a_call_published_arrive_before_it_returns():
    """The window updates a row from the call's result and from the events: the events must
    not come after the result (the row would go back to an older state)."""
    remote = await start_remote(Fake)
    got: list[int] = []
    remote.events.subscribe(lambda e: got.append(e.run_id))
    try:
        for run_id in range(300):
            assert await remote.change(run_id) == run_id
            assert got and got[-1] == run_id
    finally:
        await remote.stop()


@pytest.mark.asyncio
async def test_a_core_thread_that_ended_fails_calls_at_once_and_stop_does_not_hang():
    remote = await start_remote(Fake)
    # the thread's loop ends under the window (a bug there, say): calls must not wait forever
    await asyncio.get_running_loop().run_in_executor(None, remote.runner.stop)
    assert not remote.runner.alive
    with pytest.raises(RuntimeError, match="has ended"):
        await asyncio.wait_for(remote.busy_for(0), timeout(5))
    await asyncio.wait_for(remote.stop(), timeout(5))
    assert remote.target.stopped == 0  # nothing ran on a loop that no longer turns
