"""The Core facade: store + hub + scheduler (+ local worker) behind the few calls the UI and
headless mode make.  It publishes desktop.core.events and never imports Qt.

    core = Core("sqlite:///jobs.db", "127.0.0.1", 0)
    await core.start()          # StoreError (locked, newer, ...) or OSError (port in use)
    job = await core.save_job({...})
    run_id = await core.run_now(job.id)
    await core.stop()

Changes made by other processes (the CLI) are noticed by polling the store's change marker
about once a second: then JobChanged(0) is published ("reload"), revoked or disabled workers are
disconnected, CLI cancel requests are carried out and the scheduler is woken.  The console also
marks itself alive in the store every few seconds, which is how the CLI knows one is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from desktop import poke
from desktop.core.events import EventBus, JobChanged, WorkerChanged
from desktop.core.timeutil import utcnow
from desktop.hub import cleartext
from desktop.hub.server import Hub
from desktop.scheduler.service import Scheduler
from desktop.store import queries, scheduling
from desktop.store.db import resolve_url
from desktop.store.executor import DbExecutor
from desktop.store.leader import NoLock, StoreLock, lock_for
from desktop.store.records import JobRecord

log = logging.getLogger(__name__)

# Other processes' writes (the CLI) are noticed when the CLI nudges us (desktop/poke.py), or by
# this fallback poll for a CLI on another machine sharing a server database.
POLL_SECONDS = 30.0
# Retention runs shortly after start (not during it: a large prune must not delay the window)
# and then hourly; each prune works in short batches, so writers are never held up for long.
RETENTION_FIRST_DELAY = 30.0
RETENTION_EVERY = 3600.0


@dataclass(frozen=True)
class WorkerStatus:
    name: str
    host: str
    os: str
    version: str
    online: bool
    last_heartbeat: datetime | None
    running: int
    slots: int
    tags: tuple[str, ...]
    in_clear: bool = False  # its token reached a plain ws:// hub from another host
    problem: str = ""  # what the worker says stalls it (e.g. its disk is full)


def ssl_context_from(settings: dict[str, str]) -> ssl.SSLContext | None:
    """TLS for the hub when the settings name a certificate and key (PEM files)."""
    cert, key = settings.get("hub_tls_cert", ""), settings.get("hub_tls_key", "")
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key or None)
    return context


class Core:
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
        self.host = host
        self.port = port
        self.local_worker_wanted = local_worker
        self.events = events or EventBus()
        self.clock = clock
        self.db = DbExecutor(db_url)
        self.hub: Hub | None = None
        self.scheduler: Scheduler | None = None
        self.local_worker: Any = None
        self._known_workers: dict[str, Any] = {}
        self._tasks: list[asyncio.Task] = []
        self._poked = asyncio.Event()  # set by a nudge from the CLI (desktop/poke.py)
        self._poke: asyncio.DatagramTransport | None = None
        self._started = False
        self._stopped = False
        self._lock: StoreLock = NoLock()
        self.cluster: Any = None  # desktop.cluster_service.ClusterService once started

    @property
    def hub_url(self) -> str:
        return (
            self.hub.url if self.hub is not None else f"ws://{self.host}:{self.port}/ws/heartbeat"
        )

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        # first, before anything is written: a second console must change nothing (not even
        # the first one's alive mark) and leave with ConsoleRunning (desktop/store/leader.py)
        lock = lock_for(resolve_url(self.db_url))
        lock.acquire()
        self._lock = lock
        self._started = True
        await self.db.start()
        settings = await self.db.call(queries.all_settings)
        interval = float(settings.get("heartbeat_interval", "10"))
        grace = timedelta(seconds=int(settings.get("lost_grace_seconds", "60")))
        self.hub = Hub(
            self.db,
            self.events,
            host=self.host,
            port=self.port,
            ssl_context=ssl_context_from(settings),
            heartbeat_interval=interval,
            clock=self.clock,
        )
        self.scheduler = Scheduler(self.db, self.hub, self.events, self.clock, lost_grace=grace)
        self.hub.listener = self.scheduler
        await self.hub.start()
        await self._refresh_workers()
        from desktop.cluster_service import ClusterService, is_clustered

        # leadership: the scheduler starts only on the console that leads (cluster_service.py)
        self.cluster = ClusterService(self, clustered=is_clustered(resolve_url(self.db_url)))
        await self.cluster.start(settings)
        poke_key = poke.new_key()  # new at each start: a key from an old run proves nothing
        self._poke, poke_port = await poke.listen(self._poked.set, poke_key)
        await self.db.call(scheduling.mark_alive, self.clock(), poke_port, poke_key)
        # the baseline is read now, so a change made right after start() is not absorbed into it
        marker = await self.db.call(queries.change_marker)
        self._tasks.append(asyncio.create_task(self._poll_changes(marker), name="core-poll"))
        self._tasks.append(asyncio.create_task(self._retention_loop(), name="core-retention"))
        if self.local_worker_wanted:
            from desktop.localworker import LocalWorker, seed_first_run

            await self.db.call(seed_first_run)
            self.local_worker = LocalWorker(self.db, self.hub_url)
            await self.local_worker.start()

    async def stop(self) -> None:
        if self._stopped or not self._started:
            self._stopped = True
            if not self._started:
                await self.db.close()
            return
        self._stopped = True
        if self.local_worker is not None:
            await self.local_worker.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._poke is not None:
            self._poke.close()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.hub is not None:
            await self.hub.stop()
        try:
            await self.db.call(scheduling.clear_alive)
        except Exception:
            log.debug("could not clear the alive mark", exc_info=True)
        await self.db.close()
        self._lock.release()

    async def _poll_changes(self, marker: int) -> None:
        loop = asyncio.get_running_loop()
        last_alive = self.clock()
        last_poll = loop.time()
        while True:
            # the alive mark is due every ALIVE_EVERY; a nudge or the fallback poll may come first
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poked.wait(), scheduling.ALIVE_EVERY.total_seconds())
            poked = self._poked.is_set()
            self._poked.clear()
            try:
                now = self.clock()
                if now - last_alive >= scheduling.ALIVE_EVERY:
                    await self.db.call(scheduling.mark_alive, now)
                    last_alive = now
                if not poked and loop.time() - last_poll < POLL_SECONDS:
                    continue
                last_poll = loop.time()
                current = await self.db.call(queries.change_marker)
                if current == marker:
                    continue
                marker = current
                await self._refresh_workers()
                leading = self.cluster is None or self.cluster.leading
                for run_id in (
                    await self.db.call(scheduling.take_cancel_requests) if leading else ()
                ):
                    try:
                        await self.scheduler.cancel(run_id, "cancelled from the CLI")
                    except Exception as exc:
                        log.info("CLI cancel of run %s: %s", run_id, exc)
                self.events.publish(JobChanged(0))
                self.scheduler.wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("noticing changes from other processes failed; trying again")

    async def prune_history(self) -> dict[str, int]:
        """Apply the retention settings (age, runs per job) to the runs already stored."""
        counts = await self.db.call(queries.prune, self.clock())
        if any(counts.values()):
            log.info("retention pruned %s", counts)
            self.events.publish(JobChanged(0))
        return counts

    async def _retention_loop(self) -> None:
        await asyncio.sleep(RETENTION_FIRST_DELAY)
        while True:
            try:
                await self.prune_history()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pruning old runs failed; trying again in an hour")
            await asyncio.sleep(RETENTION_EVERY)

    async def _refresh_workers(self) -> None:
        records = await self.db.call(queries.list_workers)
        self._known_workers = {r.name: r for r in records}
        for name in list(self.hub.workers):
            rec = self._known_workers.get(name)
            if rec is not None:
                self.hub.configure(name, rec.tags, rec.slots)  # changed from the CLI, maybe
            if rec is None or rec.revoked:
                await self.hub.disconnect(name, "revoked", "this worker was revoked in the console")
            elif not rec.enabled:
                await self.hub.disconnect(
                    name, "disabled", "this worker was disabled in the console"
                )

    # --- jobs and runs --------------------------------------------------------------------------

    async def save_job(self, spec: dict, job_id: int | None = None) -> JobRecord:
        if job_id is None:
            record = await self.db.call(queries.create_job, spec)
        else:
            record = await self.db.call(queries.update_job, job_id, spec)
        self.events.publish(JobChanged(record.id))
        self.scheduler.wake()
        return record

    async def delete_job(self, job_id: int) -> None:
        await self.db.call(queries.delete_job, job_id)
        self.events.publish(JobChanged(job_id, deleted=True))
        self.scheduler.wake()

    async def set_job_enabled(self, job_id: int, enabled: bool) -> None:
        await self.db.call(queries.set_job_enabled, job_id, enabled)
        self.events.publish(JobChanged(job_id))
        self.scheduler.wake()

    @property
    def standby(self) -> bool:
        """Another console leads (docs/HA.md): requests go to it through the database."""
        return self.cluster is not None and not self.cluster.leading

    async def run_now(self, job_id: int, args: list[str] | None = None) -> int:
        record = await self.scheduler.run_now(job_id, args)
        if self.standby:  # the leader reads the change counter every second
            await self.db.call(scheduling.bump)
        self.events.publish(JobChanged(job_id))
        return record.id

    async def cancel_run(self, run_id: int) -> None:
        if self.standby:  # as the CLI does: the leader carries it out (it reaches the worker)
            await self.db.call(scheduling.request_cancel, run_id)
            return
        await self.scheduler.cancel(run_id)

    # --- workers --------------------------------------------------------------------------------

    async def add_worker(self, name: str, tags=(), slots: int = 1) -> str:
        record, token = await self.db.call(queries.add_worker, name, list(tags), slots)
        self._known_workers[record.name] = record
        self.events.publish(WorkerChanged(record.name, False))
        return token

    async def set_worker_config(self, name: str, tags=None, slots: int | None = None) -> None:
        """New tags and/or slots for a worker (None: keep); a connected worker gets them at
        once, its next dispatches follow them."""
        record = await self.db.call(
            queries.set_worker_config, name, None if tags is None else list(tags), slots
        )
        self._known_workers[name] = record
        self.hub.configure(name, record.tags, record.slots)
        self.events.publish(WorkerChanged(name, name in self.hub.workers))
        self.scheduler.wake()

    async def revoke_worker(self, name: str) -> None:
        await self.db.call(queries.revoke_worker, name)
        await self._refresh_workers()
        self.events.publish(WorkerChanged(name, name in self.hub.workers))

    async def set_worker_enabled(self, name: str, enabled: bool) -> None:
        await self.db.call(queries.set_worker_enabled, name, enabled)
        await self._refresh_workers()
        self.events.publish(WorkerChanged(name, name in self.hub.workers))
        self.scheduler.wake()

    def worker_status(self) -> list[WorkerStatus]:
        live = self.hub.workers if self.hub is not None else {}
        running: dict[str, int] = {}
        for w in live.values():
            running[w.name] = len(w.running)
        out = []
        names = sorted(set(self._known_workers) | set(live))
        for name in names:
            w = live.get(name)
            rec = self._known_workers.get(name)
            if w is not None:
                out.append(
                    WorkerStatus(
                        name,
                        w.host,
                        w.os,
                        w.version,
                        True,
                        w.last_heartbeat,
                        running[name],
                        w.slots,
                        tuple(sorted(w.tags)),
                        cleartext.token_in_clear(self.hub.ssl_context is not None, w.remote),
                        w.problem or "",
                    )
                )
            elif rec is not None and not rec.revoked:
                out.append(
                    WorkerStatus(
                        name,
                        rec.host,
                        rec.os_name,
                        rec.version,
                        False,
                        rec.last_seen_at,
                        0,
                        rec.slots,
                        tuple(rec.tags),
                    )
                )
        return out

    def cluster_summary(self) -> str:
        """Who leads, for the status bar ("" on SQLite: one console, no cluster)."""
        return self.cluster.summary() if self.cluster is not None else ""

    async def cluster_status(self) -> list:
        """Every console on this database (desktop.cluster_service.ConsoleStatus records)."""
        return await self.cluster.status() if self.cluster is not None else []

    def script_catalogue(self) -> list[str]:
        live = self.hub.workers if self.hub is not None else {}
        return sorted({s for w in live.values() for s in w.scripts})
