"""The console's own worker, so one machine alone is a complete scheduler.

On first start it registers the worker ``local-<hostname>``, writes its worker.ini in the user
data folder (scripts in ``scripts/`` next to it, seeded from resources/scripts), and starts
``python -m worker --config that.ini`` (when frozen: the worker executable next to the console).
It restarts the worker if it dies (backoff 1 s doubling to 60 s) and stops it on shutdown.
A token that no longer matches the database (a new database, an edited ini) is replaced; a local
worker that an admin revoked stays off.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import logging
import os
import re
import shutil
import socket
import sys
from pathlib import Path

from desktop.paths import resources_dir
from desktop.store import queries
from desktop.store.errors import AuthError
from desktop.store.executor import DbExecutor
from worker import private

log = logging.getLogger(__name__)

APP_NAME = "JobTrigger"
SAMPLE_SEEDED = "sample_job_seeded"
STOP_GRACE = 10.0


def data_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "local-worker"


def resources_scripts() -> Path:
    return resources_dir() / "scripts"


def local_name() -> str:
    host = re.sub(r"[^A-Za-z0-9_.@-]", "-", socket.gethostname()) or "host"
    return f"local-{host}"[:200]


def worker_command(ini: Path) -> list[str]:
    if getattr(sys, "frozen", False):
        # build.spec copies the one-file worker next to the console executables
        name = "jobtrigger-worker.exe" if os.name == "nt" else "jobtrigger-worker"
        exe = Path(sys.executable).parent / name
        return [str(exe), "--config", str(ini)]
    return [sys.executable, "-m", "worker", "--config", str(ini)]


def connect_url(hub_url: str) -> str:
    """A wildcard bind address is not somewhere to connect to: use loopback."""
    for wildcard in ("//0.0.0.0:", "//[::]:"):
        hub_url = hub_url.replace(wildcard, "//127.0.0.1:")
    return hub_url


def write_ini(
    path: Path,
    *,
    server_url: str,
    name: str,
    token: str,
    tags=(),
    slots: int = 1,
    scripts_dir: str = "scripts",
    shutdown_grace_seconds: float | None = None,
) -> None:
    """A worker.ini that worker.config.load accepts (keys as in its template)."""
    parser = configparser.ConfigParser(interpolation=None)
    values = {
        "server_url": server_url,
        "name": name,
        "token": token,
        "scripts_dir": scripts_dir,
        "slots": str(slots),
        "tags": ", ".join(tags),
    }
    if shutdown_grace_seconds is not None:
        values["shutdown_grace_seconds"] = f"{shutdown_grace_seconds:g}"
    parser["worker"] = values
    private.private_folder(path.parent)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # a leftover could have any mode; the new one is made 0600
    with open(tmp, "w", encoding="utf-8", opener=private.opener) as f:  # holds a token
        f.write("; Job Trigger worker configuration (written by the console)\n")
        parser.write(f)
    os.replace(tmp, path)


def _ini_token(path: Path) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
        return parser.get("worker", "token", fallback="").strip()
    except (configparser.Error, OSError):
        return ""


def enrol(folder: Path, hub_url: str) -> Path | None:
    """(DB thread) Make sure the local worker is registered and its ini holds a valid token.
    Returns the ini path, or None when an admin revoked or disabled the local worker."""
    name = local_name()
    private.private_folder(folder)
    for old in (folder, folder / "worker.ini", folder / "worker.log"):
        mode = private.tighten(old)
        if mode is not None:
            log.warning(
                "%s was readable by other accounts (mode %o); made it owner-only", old, mode
            )
    ini = folder / "worker.ini"
    scripts = folder / "scripts"
    if not scripts.exists():
        scripts.mkdir(parents=True)
        source = resources_scripts()
        if source.is_dir():
            for item in source.iterdir():
                if item.is_file():
                    shutil.copy2(item, scripts / item.name)
    record = queries.get_worker(name)
    if record is None:
        _, token = queries.add_worker(name, ["local"], 2, actor="console")
    else:
        if record.revoked or not record.enabled:
            log.warning("the local worker %s is revoked or disabled; not starting it", name)
            return None
        token = _ini_token(ini)
        try:
            queries.authenticate_worker(name, token)
        except AuthError:
            token = queries.rotate_token(name, actor="console")
    write_ini(
        ini,
        server_url=connect_url(hub_url),
        name=name,
        token=token,
        tags=["local"],
        slots=2,
        shutdown_grace_seconds=5,
    )
    return ini


def seed_first_run() -> bool:
    """(DB thread) On a fresh database add the sample job ``test_job`` (manual schedule, script
    test_job.py) once; a deleted sample stays deleted.  Returns True when it was added."""
    if queries.get_setting(SAMPLE_SEEDED) == "1":
        return False
    added = False
    if not queries.list_jobs():
        queries.create_job(
            {
                "name": "test_job",
                "description": "Sample job: prints a few lines and exits 0. Run it now.",
                "script": "test_job.py",
                "schedule": {"kind": "manual"},
            },
            actor="console",
        )
        added = True
    queries.set_setting(SAMPLE_SEEDED, "1", actor="console")
    return added


class LocalWorker:
    def __init__(self, db: DbExecutor, hub_url: str, folder: Path | None = None) -> None:
        self.db = db
        self.hub_url = hub_url
        self.folder = folder or data_folder()
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        try:
            ini = await self.db.call(enrol, self.folder, self.hub_url)
        except OSError as exc:
            log.error("cannot prepare the local worker in %s: %s", self.folder, exc)
            return
        if ini is not None:
            self._task = asyncio.create_task(self._keep_running(ini), name="local-worker")

    async def _keep_running(self, ini: Path) -> None:
        loop = asyncio.get_running_loop()
        delay = 1.0
        env = dict(os.environ)
        if not getattr(sys, "frozen", False):
            root = str(Path(__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        while not self._stopping:
            started = loop.time()
            with open(self.folder / "worker.log", "ab", opener=private.opener) as out:
                self.proc = await asyncio.create_subprocess_exec(
                    *worker_command(ini),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    cwd=str(self.folder),
                    env=env,
                )
            log.info("local worker started (pid %s)", self.proc.pid)
            code = await self.proc.wait()
            if self._stopping:
                return
            if loop.time() - started > 60:
                delay = 1.0
            log.warning(
                "local worker exited with code %s; restarting in %.0f s (log: %s)",
                code,
                delay,
                self.folder / "worker.log",
            )
            await asyncio.sleep(delay)  # restart backoff
            delay = min(60.0, delay * 2)

    async def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
