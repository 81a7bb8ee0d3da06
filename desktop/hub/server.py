"""The WebSocket hub: moves frames between workers and the session state machines.

Decisions live in session.py (per connection) and the scheduler (what runs where); this module
does the I/O: it accepts connections on ``/ws/heartbeat`` (other paths get HTTP 404), decodes
frames and performs the sessions' actions.  Its helpers each have one job: login.py checks a
hello against the store (slowed down per address after failures), reports.py commits reports
from all connections in shared batches (commit.py) before they are acked, silence.py ends
connections that fall silent, connection.py is what the hub keeps per connection.

Bad input from one worker is logged, answered with a reason and that connection is closed; the
hub keeps serving every other worker.

Trust (docs/SECURITY.md): a worker is trusted with its own runs only.  Reports are checked
against the run's owner when they are committed (commit.py), declines and claimed runs against
a fresh read of the store; tags and slots come from the console's store, never from the hello.
Everything a peer can make the hub hold is bounded per connection: message contents by the
session's limits, items waiting for the database by back-pressure (the hub stops reading from
a connection with reports.MAX_PENDING reports uncommitted), connections without a hello by a
deadline and a cap per address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from desktop import __version__
from desktop.core.events import EventBus, OutputAppended, RunChanged, WorkerChanged
from desktop.core.timeutil import utcnow
from desktop.hub import cleartext, ownership
from desktop.hub import session as s
from desktop.hub.admission import Admission
from desktop.hub.commit import CommitResult
from desktop.hub.connection import Conn, remote_of
from desktop.hub.handshakes import HandshakeGate, evictable, gated
from desktop.hub.login import Admitted, Login
from desktop.hub.masks import RunMasks
from desktop.hub.reports import Batch, ReportQueue
from desktop.hub.silence import SilenceWatch
from desktop.hub.throttle import AuthThrottle
from desktop.store import queries
from desktop.store.errors import StoreError
from desktop.store.executor import DbExecutor
from worker.deflate import ServerDeflate
from worker.protocol import (
    DEFAULT_PATH,
    MAX_FRAME_BYTES,
    Message,
    ProtocolError,
    decode,
    encode_dict,
    make,
)

log = logging.getLogger(__name__)

SILENT_SEND_SECONDS = 5.0  # for the reject sent to a silent connection before it is closed

CLOSE_POLICY = 1008  # WebSocket close code "policy violation"
MAX_UNAUTHENTICATED = 8  # connections per remote address that have not been welcomed yet
MAX_UNSTORABLE = 3  # reports the database refused before the connection is closed
# pending TCP connections the kernel queues for accept (asyncio's default is 100): a fleet
# reconnecting at once after a console restart overflows 100 and its SYNs are dropped and
# retried a second or more later (the kernel caps this at net.core.somaxconn)
LISTEN_BACKLOG = 4096
# answers to a worker's messages: ASCII, so a lone surrogate a peer sent and a reason quotes
# goes out escaped instead of failing the frame's UTF-8 encoding; one encoder kept (json.dumps
# given options builds one per call, twice the time)
_ASCII = json.JSONEncoder(separators=(",", ":")).encode


# permessage-deflate without context takeover in either direction: each message is
# compressed on its own, so a connection holds no zlib state between messages.  With
# websockets' default (context kept, 4 KiB windows) each connection held ~40 KB of zlib state:
# 688 MB for 10,000 workers, 295 MB without it (tests/benchmarks/README.md, "Performance round
# 2").  A worker's output still travels compressed (batches of up to 64 KiB lose almost
# nothing without the previous message's 4 KiB window); a fresh inflater per message costs
# about a microsecond.  Messages under worker.deflate.COMPRESS_FROM go out uncompressed.
DEFLATE = ServerDeflate(
    server_no_context_takeover=True,
    client_no_context_takeover=True,
    server_max_window_bits=12,
    client_max_window_bits=12,
    compress_settings={"memLevel": 5},
)


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
    problem: str | None = None  # the worker's own word on what stalls it (heartbeat)


class HubListener:
    """What the hub tells the scheduler.  Called on the loop; must not block."""

    def worker_joined(self, worker: LiveWorker, held_runs: list[int]) -> None: ...

    def worker_left(self, name: str) -> None: ...

    def worker_updated(self, worker: LiveWorker) -> None: ...

    def run_declined(
        self, worker: str, run_id: int, reason: str, permanent: bool = False
    ) -> None: ...

    def runs_committed(self, result: CommitResult) -> None: ...


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
        hello_deadline: float = s.HELLO_DEADLINE,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
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
        self.login = Login(db, clock, throttle or AuthThrottle())
        self.hello_deadline = hello_deadline
        self.max_unauthenticated = max_unauthenticated
        self.handshakes: HandshakeGate = HandshakeGate()
        # logins at once; over it a newcomer gets 503 and an appointment (admission.py)
        self.admission: Admission[ServerConnection] = Admission()
        self.workers: dict[str, LiveWorker] = {}
        # what each worker that left said of itself when it left (host, os, version, last
        # heartbeat): the console's records are not re-read at a login, and a worker that came
        # and went between two refreshes of the window showed the record's older read
        self.departed: dict[str, tuple[str, str, str, datetime]] = {}
        # changes whenever a worker comes, goes or gets other tags, slots or scripts: the
        # scheduler rebuilds its indexed snapshot of them only then (desktop/scheduler/pool.py)
        self.workers_version = 0
        self._names: tuple[int, list[str]] = (-1, [])  # (workers_version, sorted names)
        # run id -> when its worker last said it holds it (hello, heartbeat, any report)
        self.run_reports: dict[int, datetime] = {}
        # secret values of each run, masked out of its output before it is stored (issue 17)
        self.masks = RunMasks()
        self._conns: dict[str, Conn] = {}
        self._all: set[Conn] = set()
        # connections not welcomed yet, per remote address (the per-address cap)
        self._unwelcomed: dict[str, set[Conn]] = {}
        self.reports = ReportQueue(db, self._after_commit, self._reports_refused, self.masks)
        self._server: Server | None = None
        self._tasks: list[asyncio.Task] = []
        self.silence = SilenceWatch(
            self._conns.values,
            heartbeat_interval,
            lambda conn: conn.pending >= self.max_pending,
            self._silent,
        )
        self.bound_port: int | None = None
        self.listening_since: float | None = None
        # leadership gate (desktop/service/cluster.py): None, or returns why this console may
        # not take workers now (a standby names the leader)
        self.gate: Callable[[], str | None] | None = None

    # --- life -----------------------------------------------------------------------------------

    @property
    def pending_reports(self) -> int:
        """Reports received and waiting for the next commit (not the one being written)."""
        return len(self.reports)

    @property
    def throttle(self) -> AuthThrottle:
        return self.login.throttle

    @throttle.setter
    def throttle(self, throttle: AuthThrottle) -> None:
        self.login.throttle = throttle

    @property
    def max_pending(self) -> int:
        """Uncommitted reports of one connection past which the hub stops reading it."""
        return self.reports.max_pending

    @max_pending.setter
    def max_pending(self, value: int) -> None:
        self.reports.max_pending = value

    def worker_names(self) -> list[str]:
        """The connected workers' names, sorted (a new list; sorted once per change of the
        table: the console's status line and lease name all 10,000 every few seconds)."""
        version, names = self._names
        if version != self.workers_version:
            names = sorted(self.workers)
            self._names = (self.workers_version, names)
        return list(names)

    def pending_of(self, name: str) -> int:
        """Reports of a connected worker that are not committed yet (queued or being written)."""
        conn = self._conns.get(name)
        return conn.pending if conn is not None else 0

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
            process_request=self._process_request,
            server_header=f"JobTrigger/{__version__}",
            create_connection=gated(self.handshakes, self._connection_lost),
            # the protocol's own heartbeats find a silent worker (silence.py); websockets'
            # keepalive would add a task and a ping per connection every 20 s
            ping_interval=None,
            extensions=[DEFLATE],  # websockets adds no default deflate beside this one
            backlog=LISTEN_BACKLOG,
        )
        sockets = list(self._server.sockets)
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._tasks = [
            asyncio.create_task(self.reports.run(), name="hub-commit"),
            asyncio.create_task(self.silence.run(), name="hub-silence"),
        ]
        self.listening_since = time.time()  # wall clock, for the log and benchmarks
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

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != DEFAULT_PATH:
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"Job Trigger workers connect to {DEFAULT_PATH}\n"
            )
        if connection.connection_lost_waiter.done():
            # the peer left with its request in flight (a worker whose wait ran out): websockets
            # still asks, after connection_lost, which would never release a slot taken now
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "closed\n")
        now = time.monotonic()
        if self.admission.prune_due(now):
            # a backstop against any other way a closed connection could keep its slot
            self.admission.prune(lambda c: c.connection_lost_waiter.done(), now)
        retry_after = self.admission.admit(connection, remote_of(connection), now)
        if retry_after is None:
            return None
        if self.admission.refused % 1000 == 1:  # a storm is thousands: a line now and then
            log.info(
                "%d workers are logging in; newcomers are asked to come back later (%d so far)",
                self.admission.in_progress,
                self.admission.refused,
            )
        response = connection.respond(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"Job Trigger console busy: {self.admission.in_progress} workers are logging in; "
            f"come back in {retry_after} s\n",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def _connection_lost(self, connection: ServerConnection) -> None:
        self.admission.done(connection, time.monotonic(), welcomed=False)

    # --- what the scheduler calls ---------------------------------------------------------------

    async def send(self, name: str, message: dict[str, Any]) -> bool:
        """Send to a connected worker; False if it is not connected (any more)."""
        conn = self._conns.get(name)
        if conn is None or conn.closing:
            return False
        dispatch = message["run_id"] if message.get("type") == "dispatch" else None
        if dispatch is not None:
            conn.own([dispatch])  # before sending: its heartbeat may come first
        try:
            await conn.ws.send(encode_dict(message))
        except ConnectionClosed:
            if dispatch is not None:
                conn.owned.pop(dispatch, None)  # the scheduler queues it again, for anyone
            return False
        return True

    def configure(self, name: str, tags, slots: int) -> None:
        """The console changed a connected worker's tags or slots: use them from now on."""
        live = self.workers.get(name)
        if live is None or (live.tags, live.slots) == (frozenset(tags), slots):
            return
        live.tags, live.slots = frozenset(tags), slots
        self.workers_version += 1
        log.info("worker %s now has tags %s and %d slots", name, sorted(live.tags), slots)
        self.events.publish(WorkerChanged(name, True))
        self.listener.worker_updated(live)

    async def disconnect(self, name: str, code: str, reason: str) -> None:
        """Refuse a connected worker at once (revoked, disabled)."""
        conn = self._conns.get(name)
        if conn is not None:
            await self._perform(conn, s.reject(code, reason))

    # --- connections ----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self.handshakes.done(ws)  # upgraded: the limits below take over
        loop = asyncio.get_running_loop()
        session = s.Session(
            remote=remote_of(ws),
            heartbeat_interval=self.heartbeat_interval,
            flood_limit=self.flood_limit,
            server_version=__version__,
            opened=loop.time(),
            hello_deadline=self.hello_deadline,
        )
        conn = Conn(ws, session, session.remote)
        # indexed by address: scanning every connection here made a storm of 10,000 connects
        # quadratic (a tenth of the console's time)
        waiting = [
            c for c in self._unwelcomed.get(conn.remote, ()) if c.name is None and not c.closing
        ]
        if len(waiting) >= self.max_unauthenticated:
            # Make room rather than refuse the newcomer: an address is shared (a NAT, a host of
            # many users), and refusing newcomers would let anyone there lock a real worker out
            # by holding idle connections or failed logins.  A real worker says hello at once and
            # is then not evicted while its token is checked.
            victim = evictable(waiting)
            if victim is None:
                await self._perform(
                    conn,
                    s.reject(
                        "too_many_connections",
                        f"{conn.remote} already has {len(waiting)} connections whose hello is "
                        "being checked; retry in a moment",
                    ),
                )
                await asyncio.gather(*conn.tasks, return_exceptions=True)
                return
            await self._perform(
                victim,
                s.reject(
                    "too_many_connections",
                    f"{conn.remote} opened more than {self.max_unauthenticated} connections "
                    "that have not logged in; this one, "
                    + ("whose login failed" if victim.failed_login else "still without hello")
                    + ", was closed to make room",
                ),
            )
        self._all.add(conn)
        self._unwelcomed.setdefault(conn.remote, set()).add(conn)
        # a timer, not a task per connection: a storm of 10,000 connects creates enough tasks
        deadline = loop.call_later(conn.session.hello_deadline, self._hello_overdue, conn)
        try:
            async for frame in ws:
                msg: Any
                if isinstance(frame, bytes):
                    msg = ProtocolError("binary frames are not part of the protocol; send text")
                else:
                    try:
                        msg = decode(frame)
                    except ProtocolError as exc:
                        msg = exc
                actions = session.feed(msg, loop.time())
                if session.state != s.AWAIT_HELLO:
                    # the hello came: its timer would wake an idle console for nothing
                    deadline.cancel()
                await self._perform(conn, actions)  # a closed session ignores the rest
                while conn.pending >= self.max_pending and not conn.closing:
                    # back-pressure: stop reading until the database caught up
                    conn.drained.clear()
                    await conn.drained.wait()
        except ConnectionClosed:
            pass
        finally:
            deadline.cancel()
            self._all.discard(conn)
            self._welcomed(conn)
            for task in conn.tasks:
                task.cancel()
            self._gone(conn)

    def _welcomed(self, conn: Conn, welcomed: bool = False) -> None:
        """No longer counts against its address's connections waiting for a welcome, nor
        against the logins in progress (``welcomed``: it logged in; else it ended)."""
        self.admission.done(conn.ws, time.monotonic(), welcomed)
        waiting = self._unwelcomed.get(conn.remote)
        if waiting is not None:
            waiting.discard(conn)
            if not waiting:
                del self._unwelcomed[conn.remote]

    async def _perform(self, conn: Conn, actions: list[s.Action]) -> None:
        for action in actions:
            if isinstance(action, s.Send):
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(_ASCII(action.message))
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
                    conn.spawn(conn.ws.close(CLOSE_POLICY, reason))
            elif isinstance(action, s.Authenticate):
                conn.spawn(self._answering(conn, self._authenticate(conn, action.hello)))
            elif isinstance(action, s.STORE_ACTIONS):
                if conn.name is not None and not conn.reports_refused:
                    self.reports.add(conn, (conn.name, action))
            elif isinstance(action, s.Heard):
                self._heard(conn, action.running, action.problem)
                if action.scripts is not None:
                    self._catalogue_changed(conn, action.scripts)
            elif isinstance(action, s.Declined):
                if conn.name is not None:
                    conn.spawn(self._answering(conn, self._declined(conn, action)))
            elif isinstance(action, s.WorkerReportedError):
                log.warning("worker %s reports: %s", conn.name, action.reason)

    async def _answering(self, conn: Conn, coro) -> None:
        """Run a message's handling; if it fails on our own bug, the peer still gets an answer
        (and the connection closes) instead of waiting in silence."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling a message from %s failed", conn.name or conn.remote)
            await self._perform(
                conn,
                s.reject("internal", "the console failed to handle this message; see its log"),
            )

    def _hello_overdue(self, conn: Conn) -> None:
        loop = asyncio.get_running_loop()
        session = conn.session
        actions = session.hello_overdue(loop.time())
        if actions:
            conn.spawn(self._perform(conn, actions))
        elif session.state == s.AWAIT_HELLO and conn in self._all:  # still connected
            # asyncio may run a timer up to its clock resolution early (15.6 ms on Windows):
            # still waiting, so look again when the deadline has really passed
            left = session.opened + session.hello_deadline - loop.time()
            loop.call_later(max(left, 0.001), self._hello_overdue, conn)

    async def _declined(self, conn: Conn, action: s.Declined) -> None:
        """A decline puts the run back in the queue: only its own worker may do that."""
        name = conn.name or ""
        try:
            rows = await self.db.call(queries.run_owners, [action.run_id])
        except StoreError as exc:
            log.warning("cannot check the decline of run %s by %s: %s", action.run_id, name, exc)
            return
        state, _, owner = rows.get(action.run_id, (None, 0, None))
        problem = ownership.decline_verdict(name, owner, state)
        if problem:
            log.warning("worker %s: run %s: %s", name, action.run_id, problem)
            reason = f"run {action.run_id}: {problem}"
            await self._perform(conn, [s.Send(make("error", reason=reason))])
            return
        # given back: its heartbeats no longer speak for the run, whoever gets it next
        conn.owned.pop(action.run_id, None)
        self.listener.run_declined(name, action.run_id, action.reason, action.permanent)

    async def _authenticate(self, conn: Conn, hello: Message) -> None:
        refusal = self.gate() if self.gate is not None else None
        if refusal is not None:
            # a standby checks no token (no guessing oracle beside the throttled leader) and
            # needs no database (it may be the one that lost it); the leader's address it
            # names is no secret: every worker.ini lists it
            await self._perform(conn, conn.session.refused("not_leader", refusal))
            return
        admitted = await self.login.admit(conn, hello)
        if not isinstance(admitted, Admitted):
            await self._perform(conn, admitted)
            return
        loop = asyncio.get_running_loop()
        record, held, now = admitted.record, admitted.held, admitted.at
        address = conn.remote
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
        self._welcomed(conn, welcomed=True)
        self._conns[record.name] = conn
        live = LiveWorker(
            name=record.name,
            host=hello["host"],
            os=hello["os"],
            version=hello["version"],
            slots=record.slots,
            tags=frozenset(record.tags),
            scripts=frozenset(e["name"] for e in hello["scripts"]),
            remote=address,
            connected_at=now,
            last_heartbeat=now,
            running=frozenset(held),
        )
        self.workers[record.name] = live
        self.workers_version += 1
        conn.own(held)
        for run_id in held:
            self.run_reports[run_id] = now
        await self._perform(
            conn, conn.session.authenticated(record.name, loop.time(), record.slots)
        )
        log.info(
            "worker %s online from %s (%d scripts, %d slots)",
            record.name,
            address,
            len(live.scripts),
            live.slots,
        )
        if cleartext.token_in_clear(self.ssl_context is not None, address):
            log.warning(
                "worker %s connected from %s over plain ws://: %s",
                record.name,
                address,
                cleartext.ADVICE,
            )
        self.events.publish(WorkerChanged(record.name, True))
        self.listener.worker_joined(live, held)

    def _heard(self, conn: Conn, running: tuple[int, ...], problem: str | None = None) -> None:
        live = self.workers.get(conn.name or "")
        if live is None or self._conns.get(live.name) is not conn:
            return
        # the silence watch's look, if due, runs in this wake-up rather than one of its own
        self.silence.heard(asyncio.get_running_loop().time())
        now = self.clock()
        live.last_heartbeat = now
        # only runs dispatched to (or held and owned by) this connection: a heartbeat cannot
        # keep another worker's run alive
        own = [rid for rid in running if rid in conn.owned]
        live.running = frozenset(own)
        if problem != live.problem:
            if problem:
                log.warning("worker %s: %s", live.name, problem)
            else:
                log.info("worker %s: its problem is solved", live.name)
            live.problem = problem
        for run_id in own:
            self.run_reports[run_id] = now

    def _catalogue_changed(self, conn: Conn, entries: tuple[dict[str, str], ...]) -> None:
        """A connected worker's scripts folder changed: offer what it has now, remember it
        for when it is offline, and let queued runs that wait for a script try again."""
        live = self.workers.get(conn.name or "")
        if live is None or self._conns.get(live.name) is not conn:
            return
        live.scripts = frozenset(e["name"] for e in entries)
        self.workers_version += 1
        log.info("worker %s now offers %d scripts", live.name, len(live.scripts))
        conn.spawn(self._store_catalogue(live.name, list(entries)))
        self.events.publish(WorkerChanged(live.name, True))
        self.listener.worker_updated(live)

    async def _store_catalogue(self, name: str, entries: list[dict[str, str]]) -> None:
        try:
            await self.db.call(queries.set_worker_scripts, name, entries)
        except StoreError as exc:
            log.warning("cannot record the scripts of worker %s: %s", name, exc)

    def _gone(self, conn: Conn) -> None:
        name = conn.name
        if name is None or self._conns.get(name) is not conn:
            return
        del self._conns[name]
        live = self.workers.pop(name, None)
        if live is not None:
            self.departed[name] = (live.host, live.os, live.version, live.last_heartbeat)
        self.workers_version += 1
        log.info("worker %s offline", name)
        self.events.publish(WorkerChanged(name, False))
        self.listener.worker_left(name)

    async def _silent(self, conn: Conn, seconds: float) -> None:
        reject = s.reject(
            "timeout", f"no heartbeat for {seconds:.0f} s; reconnect when the network is back"
        )
        try:
            # a peer that stopped reading (a zero TCP window) would hold this send, and the
            # silence watch with it, forever: no other dead worker would be closed
            await asyncio.wait_for(self._perform(conn, reject), SILENT_SEND_SECONDS)
        except asyncio.TimeoutError:
            log.warning("worker connection from %s does not read; dropped", conn.remote)
            conn.ws.transport.abort()
        self._gone(conn)

    # --- commits --------------------------------------------------------------------------------

    async def _reports_refused(self, conn: Conn) -> None:
        await self._perform(
            conn, s.reject("unavailable", "the console could not store reports; retry")
        )

    def _after_commit(self, batch: Batch, result: CommitResult) -> None:
        refused = {(r.worker, r.run_id, r.seq): r for r in result.refused}
        runs_by_conn: dict[Conn, set[int]] = {}
        answers: dict[Conn, list[s.Action]] = {}
        now = self.clock()
        for conn, (worker, action) in batch:
            refusal = refused.get((worker, action.run_id, action.seq))
            if refusal is not None:
                # its own answer and ack: a refused report never moves the run's shared ack
                answers.setdefault(conn, []).extend(
                    conn.session.refuse_report(refusal.run_id, refusal.seq, refusal.reason)
                )
                conn.unstorable += refusal.unstorable
                continue
            if action.run_id not in result.unknown:
                # the store took it from the run's own worker: a sign of the run, and proof
                # that its heartbeats may speak for it
                self.run_reports[action.run_id] = now
                conn.own([action.run_id])
            runs_by_conn.setdefault(conn, set()).add(action.run_id)
        for conn, run_ids in runs_by_conn.items():
            actions = answers.setdefault(conn, [])
            for run_id in run_ids:
                if run_id in result.acked:
                    actions += conn.session.committed(run_id, result.acked[run_id])
        for conn, actions in answers.items():
            if conn.unstorable >= MAX_UNSTORABLE:
                actions = actions + conn.session.refused(
                    "unstorable",
                    f"{conn.unstorable} reports could not be stored; fix the worker",
                )
            if actions and not conn.closing:
                conn.spawn(self._perform(conn, actions))
        for record in result.changed:
            self.events.publish(RunChanged(record.id, record.job_id, record.state))
        for chunk in result.new_output:
            self.events.publish(OutputAppended(chunk.run_id, chunk.seq, chunk.stream, chunk.text))
        self.masks.apply(result.mask_held, result.mask_learned)
        for record in result.ended:
            self.masks.forget(record.id)
            self.run_reports.pop(record.id, None)
            # only its worker's connection can own it (a decline or a failed send gives a run
            # up before it can go to another worker; a report from any other is refused): not
            # a look through all 10,000 connections for every run that ends
            owner = self._conns.get(record.worker_name or "")
            if owner is not None:
                owner.owned.pop(record.id, None)
        self.listener.runs_committed(result)
