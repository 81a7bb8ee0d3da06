"""Shared parts of the end-to-end benchmarks: metrics, statistics, real worker subprocesses,
a headless console subprocess, process sampling (CPU, RSS, wake-ups) and fresh databases.

Every scenario module exposes ``run(quick: bool) -> dict`` returning
``{"scenario": str, "metrics": [metric(...), ...], "notes": [str, ...]}``; tests/benchmarks/run.py
prints them as one table.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("JOBTRIGGER_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


# --- results --------------------------------------------------------------------------------


def metric(name: str, value, unit: str = "", goal: str = "", ok: bool | None = None) -> dict:
    """One table row; ``ok`` None means "no goal, reported for context"."""
    if isinstance(value, float):
        value = round(value, 4 if abs(value) < 1 else 2)
    return {"metric": name, "value": value, "unit": unit, "goal": goal, "ok": ok}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> float:
    return seconds * 1000.0


class GcPauses:
    """The longest garbage collection of each generation in this process while installed."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t0 = 0.0

    def __enter__(self) -> GcPauses:
        import gc

        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc) -> None:
        import gc

        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        g = info["generation"]
        self.count[g] += 1
        self.longest[g] = max(self.longest[g], time.perf_counter() - self._t0)


# --- databases ------------------------------------------------------------------------------


# Retention off: the checks count every run, and pruning would be extra work mid-measurement
# (the default keeps 1,000 runs per job and 90 days, and prunes shortly after start).
KEEP_ALL = {"retention_runs_per_job": "0", "retention_days": "0"}


def prepare_db(url: str, settings: dict[str, str] | None = None) -> None:
    """Create the schema (and settings, retention off) before a console opens it."""
    from desktop.store import queries
    from desktop.store.db import open_store

    database = open_store(url)
    try:
        for key, value in {**KEEP_ALL, **(settings or {})}.items():
            queries.set_setting(key, value)
    finally:
        database.close()


@contextlib.contextmanager
def pg_schema_url(base: str = PG_URL) -> Iterator[str]:
    """A URL whose search_path is a brand-new PostgreSQL schema, dropped afterwards."""
    import psycopg2

    schema = "jtbench_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(base)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}options=" + quote(f"-csearch_path={schema}")
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


# --- real worker subprocesses ---------------------------------------------------------------


class Fleet:
    """``python -m worker`` subprocesses (or the probe worker), each in its own folder with
    worker.ini, scripts/ and a log file."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def prepare(
        self, name: str, url: str, token: str, scripts: dict[str, str | Path], slots: int = 1
    ) -> Path:
        """SCRIPTS maps a file name to its text, or to a file to copy (kept executable)."""
        from desktop.localworker import write_ini

        home = self.base / name
        (home / "scripts").mkdir(parents=True, exist_ok=True)
        for script, source in scripts.items():
            target = home / "scripts" / script
            if isinstance(source, Path):
                shutil.copy(source, target)
            else:
                target.write_text(source)
                target.chmod(0o755)
        write_ini(
            home / "worker.ini",
            server_url=url,
            name=name,
            token=token,
            slots=slots,
            shutdown_grace_seconds=1,
        )
        return home

    def start(self, name: str, probe: bool = False) -> subprocess.Popen:
        home = self.base / name
        log = open(home / "worker.log", "ab")  # noqa: SIM115 - closed in stop_all
        self._logs.append(log)
        entry = (
            [str(ROOT / "tests" / "benchmarks" / "probe_worker.py")] if probe else ["-m", "worker"]
        )
        proc = subprocess.Popen(
            [sys.executable, *entry, "--config", str(home / "worker.ini")],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like a service: no terminal, whatever runs the benchmark
        )
        self.procs[name] = proc
        return proc

    def log_text(self, name: str) -> str:
        path = self.base / name / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


@contextlib.asynccontextmanager
async def core_with_workers(
    url: str, base: Path, scripts: dict[str, str], count: int, slots: int, probe: bool = False
):
    """The real Core in this process (heartbeat 5 s, a fresh database at URL) and COUNT real
    worker processes w0, w1, ... with SLOTS slots and SCRIPTS, all online; yields (core, fleet,
    names) and stops everything afterwards (the fleet's logs stay readable)."""
    import asyncio

    from desktop.service import Core

    prepare_db(url, {"heartbeat_interval": "5"})
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    fleet = Fleet(base)
    try:
        names = [f"w{i}" for i in range(count)]
        for name in names:
            token = await core.add_worker(name, slots=slots)
            fleet.prepare(name, core.hub_url, token, scripts, slots=slots)
            fleet.start(name, probe=probe)
        await wait_online(core, names)
        yield core, fleet, names
    finally:
        await asyncio.get_running_loop().run_in_executor(None, fleet.stop_all)
        await core.stop()


@contextlib.asynccontextmanager
async def idle_crowd(core, base: Path, count: int, procs: int = 4, interval: float = 5):
    """COUNT more registered workers, simulated at the protocol level by PROCS separate
    sim_workers.py processes (hello, then a heartbeat every INTERVAL s, phases spread), all
    welcomed before this yields.  They offer only ``a.py``, so the jobs of a benchmark still go
    to its real workers while the hub and the scheduler carry the crowd."""
    import asyncio
    import json

    from desktop.store import queries

    def register() -> list[tuple[str, str, str]]:
        from tests.benchmarks.bench_hub import loopback  # each from its own address

        names = [f"idle{i:05d}" for i in range(count)]
        return [(n, queries.add_worker(n, [], 1)[1], loopback(i)) for i, n in enumerate(names)]

    loop = asyncio.get_running_loop()
    pairs = await core.db.call(register)
    sims: list[subprocess.Popen] = []
    try:
        for k in range(procs):
            part = base / f"crowd{k}.json"
            part.write_text(json.dumps(pairs[k::procs]))
            sims.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "tests/benchmarks/sim_workers.py"),
                     core.hub_url, str(part), str(interval)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                )
            )  # fmt: skip
        for sim in sims:
            line = await loop.run_in_executor(None, sim.stdout.readline)
            if not line.startswith("READY"):
                raise RuntimeError(f"simulated workers failed: {line.strip()}")
        yield
    finally:
        for sim in sims:
            sim.stdin.close()
        for sim in sims:
            await loop.run_in_executor(None, sim.wait, 60)
            sim.stdout.close()


async def wait_online(core, names, seconds: float = 60) -> None:
    import asyncio

    deadline = time.monotonic() + seconds
    while not set(names) <= set(core.hub.workers):
        if time.monotonic() > deadline:
            missing = set(names) - set(core.hub.workers)
            raise RuntimeError(f"workers {sorted(missing)} did not connect in {seconds} s")
        await asyncio.sleep(0.05)  # polling the hub's table: it publishes no per-name event


# --- a headless console subprocess -----------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Headless:
    """``python -m desktop --headless`` on DB_URL; ``start()`` returns once it says it is ready
    and how long that took (process spawn to the ready line)."""

    def __init__(self, url: str, log_path: Path) -> None:
        self.url = url
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def hub_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/heartbeat"

    def start(self, timeout: float = 120) -> float:
        cmd = [
            sys.executable,
            "-m",
            "desktop",
            "--db",
            self.url,
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-local-worker",
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT), JOBTRIGGER_LOG_LEVEL="WARNING")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"headless console exited early: {''.join(seen)[-2000:]}")
            seen.append(line)
            if "Job Trigger headless: hub at" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("headless console did not become ready")
        elapsed = time.perf_counter() - t0
        # keep draining stderr into a file so the console never blocks on a full pipe
        self._drain = threading.Thread(target=self._copy_log, args=(seen,), daemon=True)
        self._drain.start()
        return elapsed

    def _copy_log(self, seen: list[str]) -> None:
        with open(self.log_path, "w") as out:
            out.writelines(seen)
            for line in self.proc.stderr:
                out.write(line)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join()
        self.proc.stderr.close()


# --- process sampling -----------------------------------------------------------------------


def switches(pid: int) -> tuple[int, int]:
    """Context switches (voluntary, involuntary) summed over all threads of PID.  A voluntary
    one is a thread going to sleep (a timer, a socket, a lock): each is followed by one
    wake-up, so its deltas count the process's wake-ups.  An involuntary one is a running
    thread preempted so that another can run: it happens inside a wake-up the process already
    had, and how many there are depends on what else the machine runs, not on the process."""
    vol = invol = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # thread ended meanwhile
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                invol += int(line.split()[1])
    return vol, invol


def wakeups(pid: int) -> int:
    """Wake-ups of PID so far: its threads' voluntary context switches (see ``switches``)."""
    return switches(pid)[0]


class Sample:
    """CPU seconds, RSS, wake-ups and preemptions of a process between ``begin`` and ``end``."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)

    def begin(self) -> None:
        t = self.proc.cpu_times()
        self.cpu0 = t.user + t.system
        self.switches0 = switches(self.proc.pid)
        self.t0 = time.monotonic()

    def end(self) -> dict:
        t = self.proc.cpu_times()
        vol, invol = switches(self.proc.pid)
        elapsed = time.monotonic() - self.t0
        return {
            "seconds": elapsed,
            "cpu_percent": 100.0 * (t.user + t.system - self.cpu0) / elapsed,
            "rss_mb": self.proc.memory_info().rss / 1e6,
            # wake-ups: voluntary switches; preemptions reported beside them (switches())
            "wakeups_per_s": (vol - self.switches0[0]) / elapsed,
            "preemptions_per_s": (invol - self.switches0[1]) / elapsed,
        }


def machine() -> dict:
    import platform

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
