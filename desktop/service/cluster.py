"""Which console schedules: the Core's leadership service.

On PostgreSQL every console ticks the lease (desktop/store/cluster.py) every TICK_SECONDS.
The one holding it is the **leader**: its scheduler runs and its hub takes workers.  The others
are **standbys**: the window works (jobs, history, editing), the scheduler does not run, and the
hub refuses workers with ``not_leader`` and a reason naming the leader, so they try their next
``server_url``.  A standby takes over when the lease has expired (LEASE_SECONDS after the
leader's last renewal: kill -9, cut network, database restarted) or at once when the leader
stops cleanly (it resigns).

A leader that cannot renew steps down by its OWN clock before its lease can have expired in
the database (it counts from the moment it sent its last successful renewal), so two consoles
never schedule at the same time even when one cannot reach the database to learn it lost; the
fencing check in every firing transaction is the second line.

On SQLite there is no cluster (the file lock allows one console): this service then only
records "this console, leader" in the settings table for ``cluster status``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from desktop.core.timeutil import utcnow
from desktop.store import cluster, scheduling
from desktop.store.db import parse_url
from desktop.store.errors import StoreError

if TYPE_CHECKING:
    from desktop.hub.server import Hub
    from desktop.scheduler.service import Scheduler
    from desktop.service.core import Core

log = logging.getLogger(__name__)

SOLO_KEY = "cluster.console"  # SQLite: this console's status, JSON, in the settings table
SOLO_EVERY = scheduling.ALIVE_EVERY.total_seconds()  # written with the alive mark
# a leader that could not renew for this long stops scheduling (before its lease ends)
STEP_DOWN_MARGIN = 1.5


@dataclass(frozen=True)
class ConsoleStatus:
    """One console as ``cluster status`` and the status bar show it."""

    host: str
    pid: int
    hub_url: str
    role: str  # leader | standby | stopped
    since: datetime | None
    last_heartbeat: datetime | None
    workers: tuple[str, ...]
    me: bool = False


class ClusterService:
    def __init__(self, core: Core, *, clustered: bool) -> None:
        self.core = core
        self.clustered = clustered
        self.member_id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.leading = False
        self.leader: cluster.Member | None = None
        self.since: datetime | None = None
        self.takeovers = 0
        self._task: asyncio.Task | None = None
        self._settings: dict[str, str] = {}
        self.fence = cluster.Fence(self.member_id)
        # the lease's own thread, hence its own connection (peewee: one per thread): a firing
        # transaction waiting for a row lock on the database thread cannot delay a renewal
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._names_json: tuple[int, str] = (-1, "[]")  # (hub's workers_version, JSON names)

    # --- life -----------------------------------------------------------------------------------

    @property
    def _scheduler(self) -> Scheduler:
        assert self.core.scheduler is not None, "the stack is open before leadership starts"
        return self.core.scheduler

    @property
    def _hub(self) -> Hub:
        assert self.core.hub is not None, "the stack is open before leadership starts"
        return self.core.hub

    async def start(self, settings: dict[str, str]) -> None:
        """After the hub listens: the first tick decides, and the leader's scheduler starts."""
        self._settings = settings
        self.since = utcnow()
        if not self.clustered:
            self.leading = True
            await self._scheduler.start()
            await self.core.db.call(self._solo_writer())
            # renewed with the console's alive mark, in the same database call (no loop of its
            # own: one more timer and thread hand-off every SOLO_EVERY on an idle console)
            self.core.changes.also_alive = self._solo_writer
            return
        await self.core.db.call(cluster.ensure_schema)
        await self.core.db.call(cluster.bind_fence, self.fence)
        self._hub.gate = self._gate
        loop = asyncio.get_running_loop()
        sent = loop.time()
        state = await self._call(self._tick_call())
        await self._apply(state, sent, sent)
        if not self.leading:
            log.info("standing by: %s", self._leader_text())
            # a worker that said hello while the hub listened but before the gate was set is
            # sent on to the leader like any other (else it would wait here, never dispatched)
            for name in list(self._hub.workers):
                await self._hub.disconnect(name, "not_leader", self._gate() or "")
        self._task = asyncio.create_task(self._loop(sent), name="cluster-lease")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.fence.token = None
        if not self.clustered and self.core.changes.also_alive == self._solo_writer:
            self.core.changes.also_alive = None
        try:
            if self.clustered:
                await asyncio.wait_for(self._call(lambda: cluster.resign(self.member_id)), 5)
            else:
                await self.core.db.call(_clear_solo)
        except Exception:
            log.debug("could not resign the lead", exc_info=True)
        if self._pool is not None:
            self._pool.submit(cluster.close_connection)
            self._pool.shutdown(wait=False)

    async def _call(self, fn):
        """Run ``fn`` on the lease thread (person-readable StoreErrors, as DbExecutor does)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "jobtrigger-lease")
        return await asyncio.wrap_future(self._pool.submit(cluster.run_guarded, fn))

    @property
    def lease_seconds(self) -> float:
        return _number(self._settings, "cluster_lease_seconds", cluster.LEASE_SECONDS, 2.0, 600.0)

    @property
    def tick_seconds(self) -> float:
        # at least three renewals per lease, or one slow tick would cost the lead
        tick = _number(self._settings, "cluster_tick_seconds", cluster.TICK_SECONDS, 0.2, 60.0)
        return min(tick, self.lease_seconds / 3)

    # --- the lease ------------------------------------------------------------------------------

    def _tick_call(self):
        workers = self._hub.worker_names() if self.core.hub is not None else []
        member, host, pid, url, lease = (
            self.member_id,
            self.host,
            self.pid,
            self.core.hub_url,
            self.lease_seconds,
        )
        return lambda: cluster.tick(member, host, pid, url, workers, lease)

    async def _loop(self, last_ok: float) -> None:
        loop = asyncio.get_running_loop()
        seen_marker = -1  # the first tick that leads nudges (what changed before it led)
        while True:
            await asyncio.sleep(self.tick_seconds)
            sent = loop.time()
            # bounded: a call stuck on a silent connection must not keep a leader leading past
            # its own step-down deadline
            limit = self.lease_seconds
            if self.leading:
                limit = max(0.1, last_ok + self.lease_seconds - STEP_DOWN_MARGIN - sent)
            try:
                state = await asyncio.wait_for(self._call(self._tick_call()), limit)
            except asyncio.CancelledError:
                raise
            except (StoreError, asyncio.TimeoutError) as exc:
                deadline = last_ok + self.lease_seconds - STEP_DOWN_MARGIN
                if self.leading and loop.time() >= deadline - 0.05:  # wait_for's own rounding
                    log.error("cannot renew the lead (%s); stepping down", exc)
                    await self._demote()
                else:
                    log.warning("cluster: cannot reach the database: %s", exc)
                continue
            except Exception:
                log.exception("cluster tick failed; trying again")
                continue
            if state.leading:
                last_ok = sent
                # a standby's edits bump the change marker, which the tick reads: the leader
                # looks at what changed when it moved (a nudge on every tick was a database
                # call every second on an idle leader; benchmarks: idle wake-ups)
                if state.marker != seen_marker:
                    seen_marker = state.marker
                    self.core.changes.nudge()
            await self._apply(state, sent, last_ok)

    async def _apply(self, state: cluster.LeaseState, sent: float, last_ok: float) -> None:
        self.leader = state.leader
        self.fence.token = state.epoch if state.leading else None
        if state.leading and not self.leading:
            await self._promote(state.epoch)
        elif not state.leading and self.leading:
            await self._demote()

    async def _promote(self, epoch: int) -> None:
        self.leading = True
        self.since = utcnow()
        self.takeovers += 1
        log.warning("this console now leads (epoch %d): scheduling and taking workers", epoch)
        await self._scheduler.start()
        self._scheduler.wake()

    async def _demote(self) -> None:
        self.leading = False
        self.since = utcnow()
        self.fence.token = None
        log.warning("this console no longer leads: scheduler stopped, workers sent to the leader")
        await self._scheduler.stop()
        for name in list(self._hub.workers):
            await self._hub.disconnect(name, "not_leader", self._gate() or "")

    def _gate(self) -> str | None:
        if self.leading:
            return None
        return f"this console is a standby; {self._leader_text()}"

    def _leader_text(self) -> str:
        lead = self.leader
        if lead is None or lead.member_id == self.member_id:
            return "no console leads right now (a takeover is under way): try the next server_url"
        return f"the leader is {lead.host} (pid {lead.pid}) at {lead.hub_url}"

    # --- SQLite: one console ----------------------------------------------------------------------

    def _solo_writer(self) -> Callable[[], None]:
        """This console's status line, taken now on the loop; the function that stores it runs
        on the database thread."""
        info = {
            "host": self.host,
            "pid": self.pid,
            "hub_url": self.core.hub_url,
            "since": self.since.isoformat() if self.since else None,
            "heartbeat_at": utcnow().isoformat(),
        }
        # the names (10,000 of them: milliseconds to encode on the loop) are encoded again only
        # when the hub's table changed; spliced in as the object's last member
        version = self._hub.workers_version
        if self._names_json[0] != version:
            self._names_json = (version, json.dumps(self._hub.worker_names()))
        text = json.dumps(info)[:-1] + ', "workers": ' + self._names_json[1] + "}"
        return lambda: _put_solo(text)

    # --- status ---------------------------------------------------------------------------------

    async def status(self) -> list[ConsoleStatus]:
        """Every console (the leader first); this one is marked ``me``."""
        if not self.clustered:
            return [
                ConsoleStatus(
                    self.host,
                    self.pid,
                    self.core.hub_url,
                    "leader",
                    self.since,
                    utcnow(),
                    tuple(self._hub.worker_names()),
                    me=True,
                )
            ]
        rows = await self.core.db.call(cluster.members)
        return [from_member(m, m.member_id == self.member_id) for m in rows]

    def summary(self) -> str:
        """One line for the status bar (no database trip)."""
        if not self.clustered:
            return ""
        if self.leading:
            return "Cluster: this console leads"
        return "Cluster: standby; " + self._leader_text()


def _number(settings: dict[str, str], key: str, default: float, lo: float, hi: float) -> float:
    """A setting in bounds; a bad value is logged and the default used (never a failed start)."""
    raw = settings.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        log.error(
            "setting %s = %r is not a number from %g to %g; using %g", key, raw, lo, hi, default
        )
        return default
    return value


def from_member(m: cluster.Member, me: bool = False) -> ConsoleStatus:
    return ConsoleStatus(
        m.host, m.pid, m.hub_url, m.role, m.since, m.heartbeat_at, m.workers, me=me
    )


def is_clustered(url: str) -> bool:
    return parse_url(url).kind == "postgresql"


def _put_solo(text: str) -> None:
    cluster.put_setting(SOLO_KEY, text)


def _clear_solo() -> None:
    cluster.delete_setting(SOLO_KEY)


def read_solo(now: datetime | None = None) -> list[ConsoleStatus]:
    """SQLite, for the CLI: the one console, if it ran recently (on the database thread)."""
    text = cluster.get_setting(SOLO_KEY)
    if not text:
        return []
    try:
        info = json.loads(text)
        beat = datetime.fromisoformat(info["heartbeat_at"])
        since = datetime.fromisoformat(info["since"]) if info.get("since") else None
    except (ValueError, KeyError, TypeError):
        return []
    now = now or utcnow()
    # a clean stop removes the line: a stale one is a console that died (kill -9, power cut)
    role = "leader" if now - beat <= timedelta(seconds=3 * SOLO_EVERY) else "gone"
    return [
        ConsoleStatus(
            str(info.get("host", "?")),
            int(info.get("pid", 0)),
            str(info.get("hub_url", "")),
            role,
            since,
            beat,
            tuple(info.get("workers", ())),
        )
    ]
