"""The WebSocket hub: moves frames between workers and the session state machines.

Decisions live in session.py (per connection) and the scheduler (what runs where); this module
does the I/O: it accepts connections on ``/ws/heartbeat`` (other paths get HTTP 404), decodes
frames, performs the sessions' actions, authenticates against the store (slowed down per
address after failures), commits reports from all connections in shared batches (commit.py)
and only then acks, and closes connections that fall silent.

Bad input from one worker is logged, answered with a reason and that connection is closed; the
hub keeps serving every other worker.

Trust (docs/SECURITY.md): a worker is trusted with its own runs only.  Reports are checked
against the run's owner when they are committed (commit.py), declines and claimed runs against
a fresh read of the store; tags and slots come from the console's store, never from the hello.
Everything a peer can make the hub hold is bounded per connection: message contents by the
session's limits, items waiting for the database by back-pressure (the hub stops reading from
a connection with MAX_PENDING reports uncommitted), connections without a hello by a deadline
and a cap per address.
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
from desktop.hub import cleartext, ownership
from desktop.hub import session as s
from desktop.hub.commit import CommitResult, Item, commit_isolated
from desktop.hub.throttle import AuthThrottle
from desktop.store import queries
from desktop.store.errors import AuthError, StoreError
from desktop.store.executor import DbExecutor
from worker.protocol import DEFAULT_PATH, MAX_FRAME_BYTES, ProtocolError, decode, make

log = logging.getLogger(__name__)

SILENCE_FACTOR = 3  # heartbeats a worker may miss before it counts as offline
CLOSE_POLICY = 1008  # WebSocket close code "policy violation"
# Reports of one connection waiting for (or in) a commit; past this the hub stops reading from
# it until the database caught up.  Bounds memory per connection; an honest worker just waits.
MAX_PENDING = 5000
MAX_UNAUTHENTICATED = 8  # connections per remote address that have not been welcomed yet
MAX_OWNED = 4 * s.MAX_RUN_IDS  # runs dispatched to one connection that the hub remembers
MAX_UNSTORABLE = 3  # reports the database refused before the connection is closed


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
    # runs dispatched to this connection, or claimed in its hello and assigned to it in the
    # store (insertion ordered, capped): only these may be kept alive by its heartbeats
    owned: dict[int, None] = field(default_factory=dict)
    pending: int = 0  # reports queued for or in a commit
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    unstorable: int = 0

    def own(self, run_ids) -> None:
        for run_id in run_ids:
            self.owned.pop(run_id, None)
            self.owned[run_id] = None
        while len(self.owned) > MAX_OWNED:
            del self.owned[next(iter(self.owned))]


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
        self.throttle = throttle or AuthThrottle()
        self.hello_deadline = hello_deadline
        self.max_pending = MAX_PENDING
        self.max_unauthenticated = max_unauthenticated
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
        # leadership gate (desktop/cluster_service.py): None, or returns why this console may
        # not take workers now (a standby names the leader)
        self.gate: Callable[[], str | None] | None = None

    # --- life -----------------------------------------------------------------------------------

    @property
    def pending_reports(self) -> int:
        """Reports received and waiting for the next commit (not the one being written)."""
        return len(self._pending)

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
        dispatch = message["run_id"] if message.get("type") == "dispatch" else None
        if dispatch is not None:
            conn.own([dispatch])  # before sending: its heartbeat may come first
        try:
            await conn.ws.send(json.dumps(message, separators=(",", ":"), ensure_ascii=False))
        except ConnectionClosed:
            conn.owned.pop(dispatch, None)  # the scheduler queues it again, for anyone
            return False
        return True

    def configure(self, name: str, tags, slots: int) -> None:
        """The console changed a connected worker's tags or slots: use them from now on."""
        live = self.workers.get(name)
        if live is None or (live.tags, live.slots) == (frozenset(tags), slots):
            return
        live.tags, live.slots = frozenset(tags), slots
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
        loop = asyncio.get_running_loop()
        session = s.Session(
            remote=_remote(ws),
            heartbeat_interval=self.heartbeat_interval,
            flood_limit=self.flood_limit,
            server_version=__version__,
            opened=loop.time(),
            hello_deadline=self.hello_deadline,
        )
        conn = _Conn(ws, session, session.remote)
        waiting = sum(
            1 for c in self._all if c.remote == conn.remote and c.name is None and not c.closing
        )
        if waiting >= self.max_unauthenticated:
            await self._perform(
                conn,
                s.reject(
                    "too_many_connections",
                    f"{conn.remote} already has {waiting} connections that have not said "
                    "hello; wait for them to finish",
                ),
            )
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            return
        self._all.add(conn)
        self._spawn(conn, self._hello_deadline(conn))
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
                await self._perform(conn, actions)  # a closed session ignores the rest
                while conn.pending >= self.max_pending and not conn.closing:
                    # back-pressure: stop reading until the database caught up
                    conn.drained.clear()
                    await conn.drained.wait()
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
                self._spawn(conn, self._answering(conn, self._authenticate(conn, action.hello)))
            elif isinstance(action, s.STORE_ACTIONS):
                if conn.name is not None and not conn.reports_refused:
                    conn.pending += 1
                    self._pending.append((conn, (conn.name, action)))
                    self._work.set()
            elif isinstance(action, s.Heard):
                self._heard(conn, action.running, action.problem)
                if action.scripts is not None:
                    self._catalogue_changed(conn, action.scripts)
            elif isinstance(action, s.Declined):
                if conn.name is not None:
                    self._spawn(conn, self._answering(conn, self._declined(conn, action)))
            elif isinstance(action, s.WorkerReportedError):
                log.warning("worker %s reports: %s", conn.name, action.reason)

    async def _answering(self, conn: _Conn, coro) -> None:
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

    async def _hello_deadline(self, conn: _Conn) -> None:
        await asyncio.sleep(conn.session.hello_deadline)  # the deadline itself
        await self._perform(conn, conn.session.hello_overdue(asyncio.get_running_loop().time()))

    async def _declined(self, conn: _Conn, action: s.Declined) -> None:
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
        self.listener.run_declined(name, action.run_id, action.reason)

    def _spawn(self, conn: _Conn, coro) -> None:
        task = asyncio.create_task(coro)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _authenticate(self, conn: _Conn, hello) -> None:
        # Every token is checked, whatever the throttle says: a correct one is welcomed at once,
        # so wrong tokens sent in a worker's name or from its address cannot lock it out
        # (desktop/hub/throttle.py, docs/SECURITY.md).
        loop = asyncio.get_running_loop()
        address = conn.remote
        refusal = self.gate() if self.gate is not None else None
        if refusal is not None:
            # a standby checks no token (no guessing oracle beside the throttled leader) and
            # needs no database (it may be the one that lost it); the leader's address it
            # names is no secret: every worker.ini lists it
            await self._perform(conn, conn.session.refused("not_leader", refusal))
            return
        try:
            record = await self.db.call(queries.authenticate_worker, hello["name"], hello["token"])
        except AuthError as exc:
            await self._refuse_login(conn, hello["name"], exc)
            return
        except StoreError as exc:
            log.error("cannot check worker %r: %s", hello["name"], exc)
            await self._perform(
                conn,
                conn.session.refused("unavailable", "the console cannot read its database; retry"),
            )
            return
        now = self.clock()
        scripts = [e for e in hello["scripts"]]
        try:
            # the hello describes the host; its tags and slots grant nothing (the console's
            # store is the only authority on those)
            await self.db.call(
                queries.worker_seen,
                record.name,
                hello["host"],
                hello["os"],
                hello["version"],
                scripts,
                at=now,
            )
        except StoreError as exc:
            log.warning("cannot record worker %s: %s", record.name, exc)
        held = await self._own_claims(record.name, hello["runs"])
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
            slots=record.slots,
            tags=frozenset(record.tags),
            scripts=frozenset(e["name"] for e in scripts),
            remote=address,
            connected_at=now,
            last_heartbeat=now,
            running=frozenset(held),
        )
        self.workers[record.name] = live
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

    async def _own_claims(self, name: str, claimed: list[int]) -> list[int]:
        """The runs a hello says the worker holds, less those assigned to another worker (or
        to none): a claim must not keep another worker's run alive or reach its cancel."""
        if not claimed:
            return []
        try:
            rows = await self.db.call(queries.run_owners, claimed)
        except StoreError as exc:
            log.warning("cannot check the runs worker %s holds: %s", name, exc)
            return []
        owners = {rid: row[2] for rid, row in rows.items()}
        held = ownership.own_runs(name, claimed, owners)
        if len(held) < len(claimed):
            others = sorted(set(claimed) - set(held))[:20]
            log.warning("worker %s claims runs that are not its own; ignored: %s", name, others)
        return held

    async def _refuse_login(self, conn: _Conn, name: str, exc: AuthError) -> None:
        """Hold the refusal as long as the throttle says; only failures are slowed down."""
        now = asyncio.get_running_loop().time()
        delay = self.throttle.refusal_delay(conn.remote, name, now)
        failures = self.throttle.failed(conn.remote, name, now)
        code, reason = exc.code, exc.reason
        if failures >= self.throttle.block_after:
            code = "too_many_failures"
            reason = (
                "too many failed logins for this worker or from this address; "
                "check the worker's token (a correct token is still accepted)"
            )
        warn, held_back = self.throttle.warn(now)  # a flood must not bury the log
        log.log(
            logging.WARNING if warn else logging.DEBUG,
            "worker %r from %s refused (%d recent failures): %s%s",
            name,
            conn.remote,
            failures,
            exc.reason,
            f" ({held_back} more refused logins were logged at debug level only)"
            if held_back
            else "",
        )
        if delay:
            await asyncio.sleep(delay)  # the slow-down itself, not a wait for an event
        await self._perform(conn, conn.session.refused(code, reason))

    def _heard(self, conn: _Conn, running: tuple[int, ...], problem: str | None = None) -> None:
        live = self.workers.get(conn.name or "")
        if live is None or self._conns.get(live.name) is not conn:
            return
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
                if conn.pending >= self.max_pending:
                    continue  # silent because the hub stopped reading it (back-pressure)
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
                result = await self.db.call(commit_isolated, [item for _, item in batch])
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
                behind = [(c, item) for c, item in self._pending if c in refused]
                self._pending = [(c, item) for c, item in self._pending if c not in refused]
                self._drained(batch + behind)
                for conn in refused:
                    await self._perform(
                        conn, s.reject("unavailable", "the console could not store reports; retry")
                    )
                continue
            self._drained(batch)
            self._after_commit(batch, result)

    def _drained(self, batch: list[tuple[_Conn, Item]]) -> None:
        for conn, _ in batch:
            conn.pending -= 1
            if conn.pending < self.max_pending:
                conn.drained.set()

    def _after_commit(self, batch: list[tuple[_Conn, Item]], result: CommitResult) -> None:
        refused = {(r.worker, r.run_id, r.seq): r for r in result.refused}
        runs_by_conn: dict[_Conn, set[int]] = {}
        answers: dict[_Conn, list[s.Action]] = {}
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
                self._spawn(conn, self._perform(conn, actions))
        for record in result.changed:
            self.events.publish(RunChanged(record.id, record.job_id, record.state))
        for chunk in result.new_output:
            self.events.publish(OutputAppended(chunk.run_id, chunk.seq, chunk.stream, chunk.text))
        for record in result.ended:
            self.run_reports.pop(record.id, None)
            for conn in self._conns.values():
                conn.owned.pop(record.id, None)
        self.listener.runs_committed(result)
