"""Workers: the stored records (tokens, tags, slots, revoked/disabled) and the live connections
in the hub, kept in line with each other; `status()` merges the two for display."""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from desktop.core.events import EventBus, WorkerChanged
from desktop.hub import cleartext
from desktop.service.lifecycle import Stack
from desktop.store import queries
from desktop.store.executor import DbExecutor
from desktop.store.records import WorkerRecord

# Workers re-read per trip to the database thread, and connected workers looked at per turn of
# the loop, in refresh().  All 10,000 at once held the database thread for 600 ms and more (a
# scheduler pass waiting behind it: the dispatch's p99 with 10,000 workers connected); a page
# costs a few milliseconds.
REFRESH_PAGE = 200
REFRESH_SLICE = 500


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


class WorkerService:
    def __init__(self, db: DbExecutor, events: EventBus, stack: Stack, actor: str) -> None:
        self.db = db
        self.events = events
        self.stack = stack
        self.actor = actor  # the audit trail's "who"
        self.known: dict[str, WorkerRecord] = {}
        # records this service wrote (add, set_config, revoke, enable, learn), numbered: a
        # refresh that read a worker's page before such a write keeps the written record
        # (the window and the hub's tags/slots follow ``known``)
        self._writes = 0
        self._written: dict[str, tuple[int, WorkerRecord]] = {}

    def _remember(self, record: WorkerRecord) -> None:
        self._writes += 1
        self._written[record.name] = (self._writes, record)
        self.known[record.name] = record

    def _wake(self) -> None:
        if self.stack.scheduler is not None:
            self.stack.scheduler.wake()

    def _online(self, name: str) -> bool:
        return self.stack.hub is not None and name in self.stack.hub.workers

    async def list(self) -> list[WorkerRecord]:
        return await self.db.call(queries.list_workers)

    def known_records(self) -> builtins.list[WorkerRecord]:
        """In name order, as queries.list_workers."""
        return [self.known[name] for name in sorted(self.known)]

    async def learn(self, name: str) -> None:
        """Read one worker's record into ``known``: registered on the database thread behind
        this service (the local worker on first start), not seen by the last refresh."""
        record = await self.db.call(queries.get_worker, name)
        if record is not None:
            self._remember(record)

    async def get(self, name: str) -> WorkerRecord | None:
        return await self.db.call(queries.get_worker, name)

    async def refresh(self) -> None:
        """Re-read the records; connected workers get changed tags/slots (from the CLI,
        maybe), revoked or disabled ones are disconnected."""
        known: dict[str, WorkerRecord] = {}
        started = self._writes
        after = ""
        while True:
            page = await self.db.call(queries.list_workers_page, after, REFRESH_PAGE)
            known.update((r.name, r) for r in page)
            if len(page) < REFRESH_PAGE:
                break
            after = page[-1].name
        # workers are never deleted: one known before but not read now was added (add()) while
        # the pages were read, behind the page its name falls in
        for name, earlier in self.known.items():
            known.setdefault(name, earlier)
        for name, (seq, written) in self._written.items():
            if seq > started:  # written while the pages were read: newer than its page
                known[name] = written
        # what another process changed (the CLI, another console): the window shows these
        # records and refreshes on WorkerChanged, nothing else tells it
        before = self.known
        changed = [name for name, rec in known.items() if before.get(name) != rec]
        self.known = known
        try:
            await self._configure_live(known)
        finally:
            for name in changed:
                self.events.publish(WorkerChanged(name, self._online(name)))

    async def _configure_live(self, known: dict[str, WorkerRecord]) -> None:
        hub = self.stack.hub
        if hub is None:
            return
        for i, name in enumerate(list(hub.workers)):
            if i and i % REFRESH_SLICE == 0:
                await asyncio.sleep(0)  # let the loop serve heartbeats and passes between
            rec = known.get(name)
            if rec is None and name in hub.workers:
                # registered (from the CLI) behind the pages read so far, and connected: look
                # again before taking it for one that was removed
                rec = await self.db.call(queries.get_worker, name)
                if rec is not None:
                    known[name] = rec
            if rec is not None and (rec.revoked or not rec.enabled):
                # the pages were read a while ago: re-enabled since and connected again, it
                # must not be sent away on an old record (only the few disconnects pay this)
                rec = await self.db.call(queries.get_worker, name)
                if rec is not None:
                    known[name] = rec
            if name not in hub.workers:
                continue
            if rec is not None:
                hub.configure(name, rec.tags, rec.slots)
            if rec is None or rec.revoked:
                await hub.disconnect(name, "revoked", "this worker was revoked in the console")
            elif not rec.enabled:
                await hub.disconnect(name, "disabled", "this worker was disabled in the console")

    async def add(self, name: str, tags=(), slots: int = 1) -> str:
        record, token = await self.db.call(queries.add_worker, name, list(tags), slots, self.actor)
        self._remember(record)
        self.events.publish(WorkerChanged(record.name, False))
        return token

    async def set_config(self, name: str, tags=None, slots: int | None = None) -> None:
        """New tags and/or slots for a worker (None: keep); a connected worker gets them at
        once, its next dispatches follow them."""
        record = await self.db.call(
            queries.set_worker_config,
            name,
            None if tags is None else list(tags),
            slots,
            self.actor,
        )
        self._remember(record)
        if self.stack.hub is not None:
            self.stack.hub.configure(name, record.tags, record.slots)
        self.events.publish(WorkerChanged(name, self._online(name)))
        self._wake()

    async def revoke(self, name: str) -> None:
        self._remember(await self.db.call(queries.revoke_worker, name, self.actor))
        await self.refresh()
        self.events.publish(WorkerChanged(name, self._online(name)))

    async def set_enabled(self, name: str, enabled: bool) -> None:
        self._remember(await self.db.call(queries.set_worker_enabled, name, enabled, self.actor))
        await self.refresh()
        self.events.publish(WorkerChanged(name, self._online(name)))
        self._wake()

    # builtins.list: inside the class, `list` is the method above
    def status(self) -> builtins.list[WorkerStatus]:
        hub = self.stack.hub
        live: dict[str, Any] = hub.workers if hub is not None else {}
        departed: dict[str, tuple] = hub.departed if hub is not None else {}
        tls = hub is not None and hub.ssl_context is not None
        out = []
        for name in sorted(set(self.known) | set(live)):
            w = live.get(name)
            rec = self.known.get(name)
            if w is not None:
                out.append(
                    WorkerStatus(
                        name,
                        w.host,
                        w.os,
                        w.version,
                        True,
                        w.last_heartbeat,
                        len(w.running),
                        w.slots,
                        tuple(sorted(w.tags)),
                        cleartext.token_in_clear(tls, w.remote),
                        w.problem or "",
                    )
                )
            elif rec is not None and not rec.revoked:
                host, os_name, version, seen = rec.host, rec.os_name, rec.version, rec.last_seen_at
                left = departed.get(name)
                if left is not None and (seen is None or left[3] > seen):
                    host, os_name, version, seen = left  # here since the records were read
                out.append(
                    WorkerStatus(
                        name,
                        host,
                        os_name,
                        version,
                        False,
                        seen,
                        0,
                        rec.slots,
                        tuple(rec.tags),
                    )
                )
        return out

    def script_catalogue(self) -> builtins.list[str]:
        """Scripts the connected workers allow (their allow-lists), for the editor's completer."""
        live = self.stack.hub.workers if self.stack.hub is not None else {}
        return sorted({s for w in live.values() for s in w.scripts})
