"""End-to-end fixtures: the real Core (store, hub on 127.0.0.1 port 0, scheduler) in the test's
loop, and real ``python -m worker`` subprocesses configured through worker.ini files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest_asyncio

from desktop.localworker import write_ini
from desktop.service import Core
from desktop.store import queries
from desktop.store.db import open_store
from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "scripts" / "test_job.py"
FAST = {"heartbeat_interval": "1", "lost_grace_seconds": "4"}


def prepare_db(url: str, settings: dict[str, str] = FAST) -> None:
    database = open_store(url)
    try:
        for key, value in settings.items():
            queries.set_setting(key, value)
    finally:
        database.close()


class WorkerProcs:
    """Worker subprocesses, each in its own folder with worker.ini, scripts/ and a log."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list = []

    def prepare(self, name: str, url: str, token: str, *, tags=(), slots=1) -> Path:
        home = self.base / name
        (home / "scripts").mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE, home / "scripts")
        write_ini(
            home / "worker.ini",
            server_url=url,
            name=name,
            token=token,
            tags=tags,
            slots=slots,
            shutdown_grace_seconds=1,
        )
        return home

    def start(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        home = self.base / name
        log = open(home / "worker.log", "ab")  # noqa: SIM115 - closed in stop_all
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(home / "worker.ini")],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.procs[name] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def log_text(self, name: str) -> str:
        path = self.base / name / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for log in self.logs:
            log.close()


async def wait_until(
    core: Core, check: Callable[[], Awaitable[object]], seconds: float, what: str
) -> object:
    """Re-check after every core event (and every 0.5 s for state the events do not cover)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    changed = asyncio.Event()
    unsubscribe = core.events.subscribe(lambda _e: changed.set())
    try:
        while True:
            changed.clear()
            result = await check()
            if result:
                return result
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out after {seconds} units waiting for {what}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, 0.5))
    finally:
        unsubscribe()


class Stack:
    def __init__(self, core: Core, workers: WorkerProcs) -> None:
        self.core = core
        self.workers = workers

    async def add_worker(self, name: str, *, tags=(), slots=1, start=True) -> None:
        token = await self.core.add_worker(name, tags, slots)
        self.workers.prepare(name, self.core.hub_url, token, tags=tags, slots=slots)
        if start:
            self.workers.start(name)

    async def online(self, *names: str, seconds: float = 30) -> None:
        async def check():
            live = {s.name for s in self.core.worker_status() if s.online}
            return set(names) <= live

        await wait_until(self.core, check, seconds, f"workers {names} online")

    async def job(self, **spec) -> int:
        base = {"name": "job", "script": "test_job.py", "schedule": {"kind": "manual"}}
        return (await self.core.save_job({**base, **spec})).id

    async def run(self, run_id: int):
        return await self.core.db.call(queries.get_run, run_id)

    async def runs(self, job_id: int):
        return sorted(await self.core.db.call(queries.list_runs, job_id, 1000), key=lambda r: r.id)

    async def until_state(self, run_id: int, states, seconds: float = 30):
        states = {states} if isinstance(states, str) else set(states)

        async def check():
            record = await self.run(run_id)
            return record if record.state in states else None

        return await wait_until(self.core, check, seconds, f"run {run_id} to be {states}")


@pytest_asyncio.fixture
async def stack(tmp_path):
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    prepare_db(url)
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    workers = WorkerProcs(tmp_path)
    try:
        yield Stack(core, workers)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, workers.stop_all)
        await core.stop()


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a separate process (it opens its own connection to the database)."""
    return subprocess.run(
        [sys.executable, "-m", "desktop", "--db", url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def headless_cmd(url: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "desktop",
        "--db",
        url,
        "--headless",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-local-worker",
    ]


def env_without_display() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def poll(url: str, check, seconds: float, what: str, every: float = 0.1):
    """Another process writes the database; there is nothing to await across processes."""
    deadline = time.monotonic() + timeout(seconds)
    database = open_store(url)
    try:
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {seconds} units waiting for {what}")
            time.sleep(every)
    finally:
        database.close()
