"""The Core facade: the one object the window, headless mode and tests hold.  It composes the
services below and starts and stops them in order; each service has one job and is given what
it uses:

    stack     lifecycle.Stack       lock, database thread, hub, scheduler (built at start)
    jobs      jobs.JobService       jobs and runs: save, delete, enable, run now, cancel, output
    workers   workers.WorkerService worker records + live connections, status for display
    settings  settings.SettingsService
    changes   changes.ChangePoll    CLI changes (nudge + fallback poll) and the alive mark
    retention retention.Retention   hourly pruning of old runs (and audit rows)
    cluster   cluster.ClusterService  who leads on PostgreSQL; starts the scheduler
                                    only on the leader (built at start)
    secrets   secrets.SecretService job secrets (names; values only by an audited reveal), audit
    (notify)  notify.api.NotifyApi  channels, rules, outbox: a mixin shared with the UI's test
                                    double; the sender itself runs in the stack

    core = Core("sqlite:///jobs.db", "127.0.0.1", 0)
    await core.start()          # StoreError (locked, newer, ...) or OSError (port in use)
    job = await core.save_job({...})
    run_id = await core.run_now(job.id)
    await core.stop()

It publishes desktop.core.events and never imports Qt.  What it returns are plain records
(desktop.store.records dataclasses, WorkerStatus), never models or queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from desktop.core.events import EventBus
from desktop.core.timeutil import utcnow
from desktop.hub.server import Hub
from desktop.notify.api import NotifyApi
from desktop.scheduler.service import Scheduler
from desktop.service.changes import ChangePoll
from desktop.service.jobs import JobService
from desktop.service.lifecycle import Stack
from desktop.service.reads import Reads
from desktop.service.retention import Retention
from desktop.service.secrets import SecretService
from desktop.service.settings import SettingsService
from desktop.service.workers import WorkerService, WorkerStatus
from desktop.store.executor import DbExecutor
from desktop.store.records import AuditRecord, JobRecord, OutputChunk, SecretRecord, WorkerRecord
from desktop.whoami import who

T = TypeVar("T")


class Core(NotifyApi):
    def __init__(
        self,
        db_url: str | None,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        local_worker: bool = False,
        events: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db_url = db_url
        self.local_worker_wanted = local_worker
        self.events = events or EventBus()
        self.clock = clock
        self.actor = who("console")  # the audit trail's "who": OS user and host
        self.db = DbExecutor(db_url)
        self.stack = Stack(db_url, host, port, self.db, self.events, clock)
        self.jobs = JobService(self.db, self.events, self.stack, self.actor, clock)
        self.workers = WorkerService(self.db, self.events, self.stack, self.actor)
        self.settings = SettingsService(self.db, self.actor)
        self.secrets = SecretService(self.db, self.events, self.actor)
        self.changes = ChangePoll(self.db, self.events, self.stack, clock, self.workers.refresh)
        self.retention = Retention(self.db, self.events, clock)
        self.reads = Reads()
        self.local_worker: Any = None
        self.cluster: Any = None  # desktop.service.cluster.ClusterService once started
        self.jobs.standby = lambda: self.standby
        self.changes.leading = lambda: not self.standby
        self._started = False
        self._freezer: Any = None  # desktop/service/gcfreeze.Freezer once started
        self._stopped = False

    @property
    def hub(self) -> Hub | None:
        return self.stack.hub

    @property
    def scheduler(self) -> Scheduler | None:
        return self.stack.scheduler

    @property
    def sender(self) -> Any:
        """The notification sender (desktop.notify.sender.Sender) once started; NotifyApi uses
        it to send tests and wake it after a retry."""
        return self.stack.sender

    @property
    def standby(self) -> bool:
        """Another console leads (docs/HA.md): requests go to it through the database."""
        return self.cluster is not None and not self.cluster.leading

    @property
    def hub_url(self) -> str:
        return self.stack.hub_url

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self.stack.lock()  # raises ConsoleRunning before anything is written
        self._started = True
        await self.stack.open()
        await self.workers.refresh()
        from desktop import fdlimit

        # one socket per worker: lift the soft limit before the hub accepts any
        fdlimit.check(len(self.workers.known))
        from desktop.service.cluster import ClusterService, is_clustered
        from desktop.store.db import resolve_url

        # leadership: the scheduler starts only on the console that leads (service/cluster.py)
        self.cluster = ClusterService(self, clustered=is_clustered(resolve_url(self.db_url)))
        await self.cluster.start(await self.settings.all())
        from desktop.service.gcfreeze import Freezer

        # long-lived connection objects are frozen after each full collection: thousands of
        # workers no longer make every full collection a pause of hundreds of milliseconds
        self._freezer = Freezer(asyncio.get_running_loop())
        self._freezer.install()
        await self.changes.start()
        self.retention.start()
        if self.local_worker_wanted:
            from desktop.localworker import LocalWorker, seed_first_run

            await self.db.call(seed_first_run)
            self.local_worker = LocalWorker(self.db, self.hub_url)
            await self.local_worker.start()
            from desktop.localworker import local_name

            await self.workers.learn(local_name())  # registered just now, after the refresh

    async def stop(self) -> None:
        if self._stopped or not self._started:
            self._stopped = True
            if not self._started:
                await self.db.close()
            return
        self._stopped = True
        if self._freezer is not None:
            self._freezer.remove()
        if self.local_worker is not None:
            await self.local_worker.stop()
        await self.changes.stop()
        await self.retention.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.stack.close()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(reads, *args)`` on the database thread (reads: a service.reads.Reads) and
        return its result: for a front end that builds its rows where the records are read."""
        return await self.db.call(fn, self.reads, *args)

    # --- the facade's calls (each delegates to one service) ------------------------------------

    async def prune_history(self) -> dict[str, int]:
        return await self.retention.prune()

    async def get_job(self, job_id: int) -> JobRecord | None:
        return await self.jobs.get(job_id)

    async def save_job(
        self,
        spec: dict,
        job_id: int | None = None,
        links: tuple[list[dict], list[dict]] | None = None,
    ) -> JobRecord:
        return await self.jobs.save(spec, job_id, links)

    async def delete_job(self, job_id: int) -> None:
        await self.jobs.delete(job_id)

    async def set_job_enabled(self, job_id: int, enabled: bool) -> None:
        await self.jobs.set_enabled(job_id, enabled)

    async def run_now(self, job_id: int, args: list[str] | None = None) -> int:
        return await self.jobs.run_now(job_id, args)

    async def cancel_run(self, run_id: int) -> None:
        await self.jobs.cancel_run(run_id)

    async def read_output(
        self, run_id: int, after_seq: int = 0, limit: int | None = None
    ) -> list[OutputChunk]:
        return await self.jobs.read_output(run_id, after_seq, limit)

    async def list_workers(self) -> list[WorkerRecord]:
        return await self.workers.list()

    async def known_workers(self) -> list[WorkerRecord]:
        """The worker records as this Core last read them (at start, after each change it
        made, on the change poll's notice of another process's change): no database read.
        For the window's refresh, once a second during a reconnect storm: list_workers read
        them all on the one database thread each time (80 ms of CPU at 5,000 workers, measured),
        the workers' logins queued behind it."""
        return self.workers.known_records()

    async def get_worker(self, name: str) -> WorkerRecord | None:
        return await self.workers.get(name)

    async def add_worker(self, name: str, tags=(), slots: int = 1) -> str:
        return await self.workers.add(name, tags, slots)

    async def set_worker_config(self, name: str, tags=None, slots: int | None = None) -> None:
        await self.workers.set_config(name, tags, slots)

    async def revoke_worker(self, name: str) -> None:
        await self.workers.revoke(name)

    async def set_worker_enabled(self, name: str, enabled: bool) -> None:
        await self.workers.set_enabled(name, enabled)

    def worker_status(self) -> list[WorkerStatus]:
        return self.workers.status()

    async def live_workers(self) -> list[WorkerStatus]:
        """worker_status() for a caller on another thread (desktop/service/corethread.py): the
        hub's table is read on the Core's own loop."""
        return self.workers.status()

    def cluster_summary(self) -> str:
        """Who leads, for the status bar ("" on SQLite: one console, no cluster)."""
        return self.cluster.summary() if self.cluster is not None else ""

    async def cluster_status(self) -> list:
        """Every console on this database (desktop.service.cluster.ConsoleStatus records)."""
        return await self.cluster.status() if self.cluster is not None else []

    def script_catalogue(self) -> list[str]:
        return self.workers.script_catalogue()

    async def live_scripts(self) -> list[str]:
        """script_catalogue() for a caller on another thread (as live_workers)."""
        return self.workers.script_catalogue()

    async def set_setting(self, key: str, value: str) -> None:
        await self.settings.set(key, value)

    async def job_secrets(self, job_id: int) -> list[SecretRecord]:
        return await self.secrets.names(job_id)

    async def save_job_secrets(self, job_id: int, changes: dict[str, str | None]) -> list[str]:
        return await self.secrets.save(job_id, changes)

    async def reveal_secret(self, job_id: int, name: str) -> str:
        """One secret's value for the editor's explicit Reveal (audited)."""
        return await self.secrets.reveal(job_id, name)

    async def audit_events(
        self,
        *,
        since: datetime | None = None,
        kind: str | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        return await self.secrets.audit_events(since=since, kind=kind, name=name, limit=limit)

    async def secret_key_place(self) -> str:
        return await self.secrets.key_place()
