"""The WebSocket hub: moves frames between workers and the session state machines.

Decisions live in session.py (per connection) and the scheduler (what runs where); this module
does the I/O: it accepts connections on ``/ws/heartbeat`` (other paths get HTTP 404), decodes
frames, performs the sessions' actions, authenticates against the store (slowed down per
address after failures), commits reports from all connections in shared batches (commit.py)
and only then acks, and closes connections that fall silent.

Bad input from one worker is logged, answered with a reason and that connection is closed; the
hub keeps serving every other worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from desktop import __version__
from desktop.core.events import EventBus, OutputAppended, RunChanged, WorkerChanged
from desktop.core.timeutil import utcnow
from desktop.hub import session as s
from desktop.hub.commit import CommitResult, Item, commit_batch
from desktop.hub.throttle import AuthThrottle
from desktop.store import queries
from desktop.store.errors import AuthError, StoreError
from desktop.store.executor import DbExecutor
from worker.protocol import DEFAULT_PATH, MAX_FRAME_BYTES, ProtocolError, decode

log = logging.getLogger(__name__)

SILENCE_FACTOR = 3  # heartbeats a worker may miss before it counts as offline
CLOSE_POLICY = 1008  # WebSocket close code "policy violation"


@dataclass
class LiveWorker:
    """A connected, authenticated worker as the scheduler sees it."""

    name: str
    host: str
    os: str
    version: str
    slots: int
    tags: frozenset[str]
    scripts: frozenset[str]
    remote: str
    connected_at: datetime
    last_heartbeat: datetime
    running: frozenset[int] = frozenset()


class HubListener:
    """What the hub tells the scheduler.  Called on the loop; must not block."""

    def worker_joined(self, worker: LiveWorker, held_runs: list[int]) -> None: ...

    def worker_left(self, name: str) -> None: ...

    def worker_updated(self, worker: LiveWorker) -> None: ...

    def run_declined(self, worker: str, run_id: int, reason: str) -> None: ...

    def runs_committed(self, result: CommitResult) -> None: ...


@dataclass(eq=False)  # identity: connections are kept in sets
class _Conn:
    ws: ServerConnection
    session: s.Session
    remote: str
    name: str | None = None
    closing: bool = False
    # set when a commit of its reports failed: nothing more from this connection may be stored,
    # or a later report would commit past the failed ones and the replay would be dropped as old
    reports_refused: bool = False
    tasks: set = field(default_factory=set)


def _remote(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if addr else "?"


class Hub:
    def __init__(
        self,
        db: DbExecutor,
        events: EventBus,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_interval: float = 10.0,
        flood_limit: int = s.DEFAULT_FLOOD_LIMIT,
        listener: HubListener | None = None,
        clock: Callable[[], datetime] = utcnow,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.heartbeat_interval = heartbeat_interval
        self.flood_limit = flood_limit
        self.listener = listener or HubListener()
        self.clock = clock
        self.throttle = throttle or AuthThrottle()
        self.workers: dict[str, LiveWorker] = {}
        # run id -> when its worker last said it holds it (hello, heartbeat, any report)
        self.run_reports: dict[int, datetime] = {}
        self._conns: dict[str, _Conn] = {}
        self._all: set[_Conn] = set()
        self._pending: list[tuple[_Conn, Item]] = []
        self._work = asyncio.Event()
        self._server: Server | None = None
        self._tasks: list[asyncio.Task] = []
        self.bound_port: int | None = None

    # --- life -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.bound_port or self.port}{DEFAULT_PATH}"

    async def start(self) -> None:
        """Listen; raises OSError (port in use, address not available) for the caller."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self.ssl_context,
            max_size=MAX_FRAME_BYTES,
            process_request=self._check_path,
            server_header=f"JobTrigger/{__version__}",
        )
        sockets = list(self._server.sockets)
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._tasks = [
            asyncio.create_task(self._commit_loop(), name="hub-commit"),
            asyncio.create_task(self._watch_silence(), name="hub-silence"),
        ]
        log.info("hub listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @staticmethod
    def _check_path(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != DEFAULT_PATH:
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"Job Trigger workers connect to {DEFAULT_PATH}\n"
            )
        return None

    # --- what the scheduler calls ---------------------------------------------------------------

    async def send(self, name: str, message: dict[str, Any]) -> bool:
        """Send to a connected worker; False if it is not connected (any more)."""
        conn = self._conns.get(name)
        if conn is None or conn.closing:
            return False
        try:
            await conn.ws.send(json.dumps(message, separators=(",", ":"), ensure_ascii=False))
        except ConnectionClosed:
            return False
        return True

    async def disconnect(self, name: str, code: str, reason: str) -> None:
        """Refuse a connected worker at once (revoked, disabled)."""
        conn = self._conns.get(name)
        if conn is not None:
            await self._perform(conn, s.reject(code, reason))

    # --- connections ----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        session = s.Session(
            remote=_remote(ws),
            heartbeat_interval=self.heartbeat_interval,
            flood_limit=self.flood_limit,
            server_version=__version__,
        )
        conn = _Conn(ws, session, session.remote)
        self._all.add(conn)
        try:
            async for frame in ws:
                try:
                    msg: Any = decode(frame)
                except ProtocolError as exc:
                    msg = exc
                actions = session.feed(msg, loop.time())
                await self._perform(conn, actions)  # a closed session ignores the rest
        except ConnectionClosed:
            pass
        finally:
            self._all.discard(conn)
            for task in conn.tasks:
                task.cancel()
            self._gone(conn)

    async def _perform(self, conn: _Conn, actions: list[s.Action]) -> None:
        for action in actions:
            if isinstance(action, s.Send):
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(json.dumps(action.message, separators=(",", ":")))
            elif isinstance(action, s.Close):
                if not conn.closing:
                    conn.closing = True
                    log.warning(
                        "closing worker connection %s from %s (%s): %s",
                        conn.name or "(before hello)",
                        conn.remote,
                        action.code,
                        action.reason,
                    )
                    # Not awaited here: the reader must keep draining what the peer already
                    # sent (a flood fills the queue), or it never sees the close reply.
                    reason = action.reason.encode()[:120].decode(errors="ignore")
                    self._spawn(conn, conn.ws.close(CLOSE_POLICY, reason))
            elif isinstance(action, s.Authenticate):
                self._spawn(conn, self._authenticate(conn, action.hello))
            elif isinstance(action, s.STORE_ACTIONS):
                if conn.name is not None and not conn.reports_refused:
                    self.run_reports[action.run_id] = self.clock()
                    self._pending.append((conn, (conn.name, action)))
                    self._work.set()
            elif isinstance(action, s.Heard):
                self._heard(conn, action.running)
                if action.scripts is not None:
                    self._catalogue_changed(conn, action.scripts)
            elif isinstance(action, s.Declined):
                if conn.name is not None:
                    self.listener.run_declined(conn.name, action.run_id, action.reason)
            elif isinstance(action, s.WorkerReportedError):
                log.warning("worker %s reports: %s", conn.name, action.reason)

    def _spawn(self, conn: _Conn, coro) -> None:
        task = asyncio.create_task(coro)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _authenticate(self, conn: _Conn, hello) -> None:
        loop = asyncio.get_running_loop()
        address = conn.remote
        if self.throttle.blocked(address, loop.time()):
            await self._perform(
                conn,
                conn.session.refused(
                    "too_many_failures",
                    f"too many failed logins from {address}; wait a few minutes, then check the "
                    "worker's token",
                ),
            )
            return
        delay = self.throttle.delay(address, loop.time())
        if delay:
            await asyncio.sleep(delay)  # the slow-down itself, not a wait for an event
        try:
            record = await self.db.call(queries.authenticate_worker, hello["name"], hello["token"])
        except AuthError as exc:
            self.throttle.failed(address, loop.time())
            log.warning("worker %r from %s refused: %s", hello["name"], address, exc.reason)
            await self._perform(conn, conn.session.refused(exc.code, exc.reason))
            return
        except StoreError as exc:
            log.error("cannot check worker %r: %s", hello["name"], exc)
            await self._perform(
                conn,
                conn.session.refused("unavailable", "the console cannot read its database; retry"),
            )
            return
        self.throttle.succeeded(address)
        now = self.clock()
        scripts = [e for e in hello["scripts"]]
        try:
            await self.db.call(
                queries.worker_seen,
                record.name,
                hello["host"],
                hello["os"],
                hello["version"],
                scripts,
                hello["tags"] or None,
                hello["slots"],
                now,
            )
        except StoreError as exc:
            log.warning("cannot record worker %s: %s", record.name, exc)
        old = self._conns.get(record.name)
        if old is not None and old is not conn:
            log.warning(
                "worker %s connected again from %s; closing its old connection",
                record.name,
                address,
            )
            old.name = None  # so its ending does not take the new connection offline
            await self._perform(
                old, s.reject("duplicate", "this worker connected again; old connection closed")
            )
        if conn.closing:
            return
        conn.name = record.name
        self._conns[record.name] = conn
        live = LiveWorker(
            name=record.name,
            host=hello["host"],
            os=hello["os"],
            version=hello["version"],
            slots=hello["slots"],
            tags=frozenset(hello["tags"] or record.tags),
            scripts=frozenset(e["name"] for e in scripts),
            remote=address,
            connected_at=now,
            last_heartbeat=now,
            running=frozenset(hello["runs"]),
        )
        self.workers[record.name] = live
        for run_id in hello["runs"]:
            self.run_reports[run_id] = now
        await self._perform(conn, conn.session.authenticated(record.name, loop.time()))
        log.info(
            "worker %s online from %s (%d scripts, %d slots)",
            record.name,
            address,
            len(live.scripts),
            live.slots,
        )
        self.events.publish(WorkerChanged(record.name, True))
        self.listener.worker_joined(live, list(hello["runs"]))

    def _heard(self, conn: _Conn, running: tuple[int, ...]) -> None:
        live = self.workers.get(conn.name or "")
        if live is None or self._conns.get(live.name) is not conn:
            return
        now = self.clock()
        live.last_heartbeat = now
        live.running = frozenset(running)
        for run_id in running:
            self.run_reports[run_id] = now

    def _catalogue_changed(self, conn: _Conn, entries: tuple[dict[str, str], ...]) -> None:
        """A connected worker's scripts folder changed: offer what it has now, remember it
        for when it is offline, and let queued runs that wait for a script try again."""
        live = self.workers.get(conn.name or "")
        if live is None or self._conns.get(live.name) is not conn:
            return
        live.scripts = frozenset(e["name"] for e in entries)
        log.info("worker %s now offers %d scripts", live.name, len(live.scripts))
        self._spawn(conn, self._store_catalogue(live.name, list(entries)))
        self.events.publish(WorkerChanged(live.name, True))
        self.listener.worker_updated(live)

    async def _store_catalogue(self, name: str, entries: list[dict[str, str]]) -> None:
        try:
            await self.db.call(queries.set_worker_scripts, name, entries)
        except StoreError as exc:
            log.warning("cannot record the scripts of worker %s: %s", name, exc)

    def _gone(self, conn: _Conn) -> None:
        name = conn.name
        if name is None or self._conns.get(name) is not conn:
            return
        del self._conns[name]
        self.workers.pop(name, None)
        log.info("worker %s offline", name)
        self.events.publish(WorkerChanged(name, False))
        self.listener.worker_left(name)

    async def _watch_silence(self) -> None:
        loop = asyncio.get_running_loop()
        grace = SILENCE_FACTOR * self.heartbeat_interval
        while True:
            # sleep until the first connection could have been silent too long, not on a tick:
            # an idle console with quiet workers wakes about once per grace period
            now = loop.time()
            wait = min(
                (grace - c.session.silent_for(now) for c in self._conns.values()), default=grace
            )
            await asyncio.sleep(max(0.05, wait))
            now = loop.time()
            for conn in list(self._conns.values()):
                if conn.session.is_silent(now, grace):
                    await self._perform(
                        conn,
                        s.reject(
                            "timeout",
                            f"no heartbeat for {conn.session.silent_for(now):.0f} s; "
                            "reconnect when the network is back",
                        ),
                    )
                    self._gone(conn)

    # --- commits --------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                result = await self.db.call(commit_batch, [item for _, item in batch])
            except Exception as exc:
                # Nothing acked: the workers keep their copies.  Drop their connections so they
                # replay after reconnecting instead of waiting for acks that will never come.
                if isinstance(exc, StoreError):
                    log.error("cannot store worker reports: %s", exc)
                else:
                    log.exception("storing worker reports failed")
                refused = {c for c, _ in batch}
                for conn in refused:
                    conn.reports_refused = True
                # reports that came in behind the failed ones wait for the replay too
                self._pending = [(c, item) for c, item in self._pending if c not in refused]
                for conn in refused:
                    await self._perform(
                        conn, s.reject("unavailable", "the console could not store reports; retry")
                    )
                continue
            self._after_commit(batch, result)

    def _after_commit(self, batch: list[tuple[_Conn, Item]], result: CommitResult) -> None:
        runs_by_conn: dict[_Conn, set[int]] = {}
        for conn, (_, action) in batch:
            runs_by_conn.setdefault(conn, set()).add(action.run_id)
        for conn, run_ids in runs_by_conn.items():
            actions: list[s.Action] = []
            for run_id in run_ids:
                if run_id in result.acked:
                    actions += conn.session.committed(run_id, result.acked[run_id])
            if actions and not conn.closing:
                self._spawn(conn, self._perform(conn, actions))
        for record in result.changed:
            self.events.publish(RunChanged(record.id, record.job_id, record.state))
        for chunk in result.new_output:
            self.events.publish(OutputAppended(chunk.run_id, chunk.seq, chunk.stream, chunk.text))
        for record in result.ended:
            self.run_reports.pop(record.id, None)
        self.listener.runs_committed(result)
