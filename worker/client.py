"""The connection to the hub: hello, heartbeats, dispatch/cancel/ack, replay, reconnect forever.

Message flow: runners emit messages -> the spool writes them durably -> the sender task sends
everything the spool holds past what this connection already sent.  After a reconnect the
"already sent" marks start at the last ack, so unacked messages are replayed in order.

Refusals (``reject``): the worker says why and what to do, then retries every
``REJECT_RETRY`` seconds rather than exiting.  An admin expects an installed agent to recover by
itself once the console side is fixed (token re-issued, worker re-enabled, console upgraded);
a worker that exits needs a visit to the host.  The token is re-read from worker.ini before each
retry, so fixing the file is enough, no restart needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import websockets
from websockets.asyncio.client import ClientConnection, connect

from worker import __version__, scripts, tls
from worker.backoff import Backoff
from worker.config import WorkerConfig
from worker.deflate import client_deflate
from worker.diskhold import DiskHold
from worker.failover import NOT_LEADER_RETRY, TRY_NEXT_CONSOLE, UrlRing
from worker.guardian import Guardian, sweep_previous_life
from worker.logsafe import peer
from worker.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
    encode_dict,
)
from worker.ratelimit import DEFAULT_RATE, RateLimit
from worker.runner import RunRequest, ScriptRun
from worker.spool import Spool
from worker.words import plural

log = logging.getLogger(__name__)

REJECT_RETRY = 60.0
# busy answers in a row from one console before it counts as a failure (the next console in
# server_urls, or the backoff): about 3 minutes at the longest appointments
BUSY_BEFORE_NEXT = 3
GOOD_CONNECTION_SECONDS = 10.0
WELCOME_TIMEOUT = 15.0
# Frames between MAX_FRAME_BYTES and this are answered with an `error`; bigger ones make
# websockets close the connection (1009), and the worker reconnects.
RECEIVE_LIMIT = 4 * MAX_FRAME_BYTES

REJECT_ADVICE = {
    "bad_token": "the token in worker.ini is not valid: copy the worker's token from the console "
    "(Workers) into worker.ini",
    "revoked": "this worker's token was revoked in the console: issue a new one and put it in "
    "worker.ini",
    "disabled": "this worker is disabled in the console: enable it there",
    "unknown": "the console does not know this worker: add it in the console (Workers)",
    "version": "the worker and console versions do not match: upgrade the older one",
    "duplicate": "another worker with the same name is connected: give each worker its own name",
    "malformed": "the console could not read the worker's hello: upgrade the worker",
    "too_many_failures": "the token is wrong, and many recent logins failed from this address or "
    "in this worker's name: check the token (a correct token is always let in)",
    "flood": "the console thought this worker sent too much at once: upgrade the worker, or "
    "report it if it keeps happening",
    "not_leader": "list every console of the cluster in server_url (docs/HA.md)",
}


def _describe_close(ws: ClientConnection) -> str:
    """Both directions of the closing handshake, e.g. "sent 1009 (message too big) ..."."""
    try:
        return str(ws.protocol.close_exc)
    except Exception:  # still open (a task failed first) or websockets internals changed
        return f"code {ws.close_code}"


def _failed(run_id: int, reason: str, outcome: str = "failed") -> dict[str, Any]:
    return {
        "type": "finished",
        "v": PROTOCOL_VERSION,
        "run_id": run_id,
        "outcome": outcome,
        "exit_code": None,
        "reason": reason,
        "at": time.time(),
    }


class Refusal(NamedTuple):
    """Why a dispatch was declined; ``permanent``: asking again gets the same answer."""

    reason: str
    permanent: bool = False


class Rejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Worker:
    def __init__(
        self,
        cfg: WorkerConfig,
        reload_token: Callable[[], str] | None = None,
        kill_grace: float = 3.0,
        send_rate: int = DEFAULT_RATE,
    ) -> None:
        self.cfg = cfg
        self.send_rate = send_rate
        self.reload_token = reload_token
        self.kill_grace = kill_grace
        # Before the spool is loaded: what a previous life left running is ended first.
        self.guardian: Guardian | None = None
        swept = 0
        if sys.platform != "win32":  # Windows: Job Objects end a dead worker's jobs
            swept, _ = sweep_previous_life(cfg.spool_dir)
            if swept:
                log.warning("Ended %d process(es) left running by this worker's last life", swept)
        self.spool = Spool(cfg.spool_dir, cfg.spool_max_bytes, deferred_sync=True)
        if sys.platform != "win32":
            self.guardian = Guardian(cfg.spool_dir)
            self.guardian.write_life()
            self.guardian.start()
        self.catalogue = scripts.Catalogue(cfg.scripts_dir)
        self._announced: list[dict[str, str]] = []  # the catalogue this connection was told
        self._unsynced = asyncio.Event()
        self._syncer: asyncio.Task[None] | None = None
        self.runs: dict[int, tuple[ScriptRun, asyncio.Task[Any]]] = {}
        # What the spool could not write (disk full), retried; its ``problem`` goes in every
        # heartbeat until everything is written.
        self.disk = DiskHold(self.spool, cfg.spool_dir, self._written, self._hold_output)
        self.accepting = True
        self.heartbeat_interval = cfg.heartbeat_interval
        self.ws: ClientConnection | None = None
        self.last_close = ""
        self.closed_by = ""  # reject code the console sent before closing this connection
        self.outbox_changed = asyncio.Event()
        self.acked = asyncio.Event()
        # Highest seq per run that may have reached a hub: what this process sent, and all that
        # a previous process left in the spool (it may have sent it; a hub then rightly acks
        # what it committed back then).  An ack beyond it would drop output no hub has seen.
        self._sent_ever = {run_id: run.last_seq for run_id, run in self.spool.runs.items()}
        self.fallback_encoding: str | None = None
        if sys.platform == "win32":
            from worker import winproc

            self.fallback_encoding = winproc.console_encoding()
        self._close_runs_left_by_crash(swept)

    # --- spool -----------------------------------------------------------------------------------

    def _close_runs_left_by_crash(self, swept: int) -> None:
        left = (
            f"; {swept} process(es) it left were ended when the worker restarted"
            if swept
            else "; nothing of it was still running when the worker restarted"
        )
        for run_id in self.spool.unfinished():
            log.warning("Run %s was interrupted by a worker restart; reporting it lost", run_id)
            reason = "the worker stopped while the script ran (crash or power loss)" + left
            self._emit(run_id, [_failed(run_id, reason, outcome="lost")])

    def _emit(self, run_id: int, messages: list[dict[str, Any]]) -> None:
        if self.disk.holds(run_id):  # behind what waits for the disk: keep the order
            self.disk.hold(run_id, messages)
            return
        try:
            written = self.spool.append(run_id, messages)
        except OSError as exc:
            self.disk.hold(run_id, messages, exc)
            return
        if written:
            self._written()

    def _written(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # before the loop runs (runs left by a crash): sync right here
            self.spool.sync_now()
            self.outbox_changed.set()
            return
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.create_task(self._sync_forever(), name="spool-sync")
        self._unsynced.set()

    def _hold_output(self, run_id: int, hold: bool) -> None:
        entry = self.runs.get(run_id)
        if entry is not None:
            entry[0].hold_output(hold)

    async def _sync_forever(self) -> None:
        """The spool's group commit: fsync what was written, off the loop, then let the sender
        send it.  What is written during one sync goes with the next."""
        while True:
            await self._unsynced.wait()
            self._unsynced.clear()
            paths, seqs = self.spool.take_unsynced()
            if not paths:
                continue
            try:
                await asyncio.to_thread(Spool.sync_files, paths)
            except OSError as exc:
                log.error("Cannot sync the spool to disk (%s); retrying in 1 s", exc)
                self.spool.retry_unsynced(paths, seqs)
                await asyncio.sleep(1.0)  # a failing disk: not a busy loop
                self._unsynced.set()
                continue
            self.spool.mark_synced(seqs)
            self.outbox_changed.set()

    def held_runs(self) -> list[int]:
        return sorted(set(self.runs) | set(self.spool.runs) | set(self.disk.held))

    # --- connection loop -------------------------------------------------------------------------

    async def serve_forever(self, once: bool = False) -> int:
        """Connect, serve, reconnect; returns only with ``once`` (0 served, 1 refused/failed)."""
        backoff = Backoff()
        # several consoles, one leader: move to the next address on failure (failover.py)
        ring = UrlRing(self.cfg.server_urls or [self.cfg.server_url])
        self.cfg.server_url = ring.current
        busy_in_a_row = 0  # "come back later" answers from the current console
        self.disk.start()  # messages held since before the loop ran
        while True:
            try:
                self.closed_by = ""
                await self._connect_and_serve(backoff)
                busy_in_a_row = 0
                ring.worked()
                if self.closed_by in TRY_NEXT_CONSOLE:  # this console stepped down
                    ring.failed()
                    self.cfg.server_url = ring.current
                if once:
                    return 0
                log.warning(
                    "Connection to %s closed (%s); reconnecting",
                    self.cfg.server_url,
                    self.last_close,
                )
                delay = backoff.next_delay()
            except tls.PinMismatch as exc:
                # Before ssl.SSLError (its base), which would read as a network problem.
                log.error(
                    "Refusing the console at %s: %s. Nothing was sent to it. What to do: if "
                    "the console's certificate was renewed, put its new fingerprint (`python -m "
                    "desktop workers fingerprint` on the console) in cert_sha256 in %s and "
                    "restart the worker; otherwise something else answers at that address. %s",
                    self.cfg.server_url,
                    exc,
                    self.cfg.path,
                    "Exiting (--once)." if once else f"Retrying every {REJECT_RETRY:g} s.",
                )
                if once:
                    return 1
                delay = REJECT_RETRY
            except Rejected as exc:
                if exc.code in TRY_NEXT_CONSOLE and len(ring.urls) > 1 and not once:
                    log.info("%s: %s; trying the next console", self.cfg.server_url, exc.reason)
                    ring.failed()
                    self.cfg.server_url = ring.current
                    await asyncio.sleep(NOT_LEADER_RETRY)
                    continue
                advice = REJECT_ADVICE.get(exc.code, "check the console's log")
                log.error(
                    "The console refused this worker (%s): %s. What to do: %s. %s",
                    exc.code,
                    exc.reason,
                    advice,
                    "Exiting (--once)." if once else f"Retrying every {REJECT_RETRY:g} s.",
                )
                if once:
                    return 1
                delay = REJECT_RETRY
                if self.reload_token:
                    with contextlib.suppress(Exception):
                        self.cfg.token = self.reload_token()
            except ssl.SSLCertVerificationError as exc:
                delay = backoff.next_delay()
                log.error(
                    "The console at %s is not trusted (%s); nothing was sent to it. What to do: "
                    "set ca_file in %s to the console's certificate (or the authority that "
                    "signed it), or cert_sha256 to its fingerprint, and check that the host in "
                    "server_url is the name in the certificate; %s",
                    self.cfg.server_url,
                    getattr(exc, "verify_message", None) or exc,
                    self.cfg.path,
                    "giving up (--once)" if once else f"retrying in {delay:.1f} s",
                )
                if once:
                    return 1
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
                busy = backoff.busy_delay(exc)
                if busy is not None and busy_in_a_row < BUSY_BEFORE_NEXT:
                    # the console is up, with a queue of logins: keep the appointment.  Not
                    # forever: a console that only ever says so (one that is not the leader and
                    # overloaded, or an answer injected on ws://) must not hold the worker
                    busy_in_a_row += 1
                    log.info(
                        "The console at %s is busy with other workers logging in; it asked "
                        "this one to come back later: retrying in %.1f s",
                        self.cfg.server_url,
                        busy,
                    )
                    if once:
                        return 1
                    await asyncio.sleep(busy)
                    continue
                busy_in_a_row = 0
                # the next console at once; the backoff only after every one failed in a row
                failed_url = self.cfg.server_url
                delay = backoff.next_delay() if ring.failed() else 0.0
                self.cfg.server_url = ring.current
                log.warning(
                    "Cannot reach the console at %s (%s); %s",
                    failed_url,
                    exc or type(exc).__name__,
                    "giving up (--once)" if once else f"retrying in {delay:.1f} s",
                )
                if once:
                    return 1
            await asyncio.sleep(delay)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.cfg.server_url.startswith("wss://"):
            return None  # websockets refuses an ssl context for ws://
        return tls.client_context(self.cfg.ca_file, self.cfg.cert_sha256)

    async def _connect_and_serve(self, backoff: Backoff) -> None:
        async with connect(
            self.cfg.server_url,
            max_size=RECEIVE_LIMIT,
            open_timeout=WELCOME_TIMEOUT,
            ssl=self._ssl_context(),
            extensions=[client_deflate()],  # heartbeats and acks go uncompressed (deflate.py)
        ) as ws:
            tls.check_peer(ws.transport, self.cfg.cert_sha256)  # the token goes out next
            await ws.send(self._hello())
            welcome = await asyncio.wait_for(self._first_reply(ws), WELCOME_TIMEOUT)
            self.heartbeat_interval = max(0.1, float(welcome["heartbeat_interval"]))
            connected_at = time.monotonic()
            log.info("Connected to %s as %s", self.cfg.server_url, self.cfg.name)
            self.ws = ws
            sent: dict[int, int] = {}  # run id -> highest seq sent on this connection
            tasks = [
                asyncio.create_task(self._receiver(ws)),
                asyncio.create_task(self._sender(ws, sent)),
                asyncio.create_task(self._heartbeats(ws)),
            ]
            try:
                # Whichever ends first ends the connection: a dead sender must not leave a
                # connection that looks healthy but delivers nothing.
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc and not isinstance(exc, websockets.exceptions.ConnectionClosed):
                        log.error("Worker bug, reconnecting", exc_info=exc)
            finally:
                self.ws = None
                self.last_close = _describe_close(ws)
                # Only a connection that held counts as good: a hub that drops every worker right
                # after welcome must not be hammered at the shortest delay.
                if time.monotonic() - connected_at >= GOOD_CONNECTION_SECONDS:
                    backoff.reset()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _hello(self) -> str:
        return encode(
            "hello",
            name=self.cfg.name,
            token=self.cfg.token,
            host=socket.gethostname(),
            os=f"{platform.system()} {platform.release()}",
            version=__version__,
            scripts=self._announce_catalogue(self.catalogue.scan()),
            slots=self.cfg.slots,
            tags=self.cfg.tags,
            runs=self.held_runs(),
        )

    async def _first_reply(self, ws: ClientConnection) -> Any:
        while True:
            frame = await ws.recv()
            try:
                msg = decode(frame)
            except ProtocolError as exc:
                log.warning("Unreadable reply to hello from the console: %s", exc)
                await ws.send(encode("error", reason=f"unreadable frame: {exc}"))
                continue
            if msg.type == "reject":
                raise Rejected(msg["code"], msg["reason"])
            if msg.type == "welcome":
                return msg
            log.warning("Console sent %r before welcome; ignored", msg.type)

    async def _sender(self, ws: ClientConnection, sent: dict[int, int]) -> None:
        pace = RateLimit(self.send_rate)
        while True:
            progressed = False
            for run_id in list(self.spool.runs):
                msgs = self.spool.pending(run_id, sent.get(run_id, 0))
                for m in msgs:
                    wait = pace.delay(time.monotonic())
                    if wait > 0:
                        await asyncio.sleep(wait)  # pacing, see worker/ratelimit.py
                    # Before the send: its ack may be handled while send() still awaits.
                    sent[run_id] = m["seq"]
                    if m["seq"] > self._sent_ever.get(run_id, 0):
                        self._sent_ever[run_id] = m["seq"]
                    await ws.send(encode_dict(m))
                    pace.sent(time.monotonic())
                if msgs:
                    progressed = True
            if not progressed:
                await self.outbox_changed.wait()
                self.outbox_changed.clear()

    def _announce_catalogue(self, entries: list[dict[str, str]]) -> list[dict[str, str]]:
        self._announced = entries
        return entries

    async def _heartbeats(self, ws: ClientConnection) -> None:
        while True:
            # a run whose result waits for the disk is still this worker's: not lost
            running = sorted(set(self.runs) | set(self.disk.held))
            fields: dict[str, Any] = {"running": running, "at": time.time()}
            if self.disk.problem:
                fields["problem"] = self.disk.problem[:1000]
            current = self._announced
            if self.catalogue.stale():  # hashing in a thread: a new script may be large
                current = await asyncio.to_thread(self.catalogue.scan)
            if current != self._announced:
                names = ", ".join(e["name"] for e in current) or "none"
                log.info("The scripts folder changed; offering: %s", names)
                fields["scripts"] = self._announce_catalogue(current)
            await ws.send(encode("heartbeat", **fields))
            await asyncio.sleep(self.heartbeat_interval)

    async def _receiver(self, ws: ClientConnection) -> None:
        async for frame in ws:
            try:
                msg = decode(frame)
            except ProtocolError as exc:
                log.warning("Ignored a bad frame from the console: %s", exc)
                await ws.send(encode("error", reason=f"worker ignored a frame: {exc}"))
                continue
            await self._handle(ws, msg)

    async def _handle(self, ws: ClientConnection, msg: Any) -> None:
        if msg.type == "dispatch":
            refusal = self._start(msg)
            if refusal:
                reason = refusal.reason[:4000]  # the protocol's limit; names in it are the hub's
                log.warning("Declined run %s: %s", msg["run_id"], reason)
                fields: dict[str, Any] = {"permanent": True} if refusal.permanent else {}
                await ws.send(encode("declined", run_id=msg["run_id"], reason=reason, **fields))
        elif msg.type == "cancel":
            entry = self.runs.get(msg["run_id"])
            if entry is None:
                await ws.send(
                    encode("error", reason=f"cancel for run {msg['run_id']}: not running here")
                )
            else:
                log.info("Cancelling run %s", msg["run_id"])
                # Cut: the reason goes into `finished` (4096 at most) with words of ours added.
                entry[0].cancel((msg["reason"] or "cancelled from the console")[:1000])
        elif msg.type == "ack":
            run_id, seq = msg["run_id"], msg["seq"]
            sent = self._sent_ever.get(run_id, 0)
            if seq > sent and self.spool.has(run_id):
                # Acking what was never sent would delete spooled output no hub has seen.
                await ws.send(
                    encode("error", reason=f"ack for run {run_id} seq {seq}: sent up to {sent}")
                )
                seq = sent
            if self.spool.ack(run_id, seq):
                self._sent_ever.pop(run_id, None)
            self.acked.set()
        elif msg.type == "welcome":
            self.heartbeat_interval = max(0.1, float(msg["heartbeat_interval"]))
        elif msg.type == "error":
            # The hub refused something of ours (e.g. a report it will not store).  Answering
            # would start a ping-pong of errors; the reason is the hub's text, so the escaping
            # formatter and peer() keep it on one line.
            log.warning("The console refused a message of this worker: %s", peer(msg["reason"]))
        elif msg.type == "reject":  # the hub closes the connection next; say why, and remember
            self.closed_by = msg["code"]
            log.warning(
                "The console closes the connection (%s): %s", msg["code"], peer(msg["reason"])
            )
        else:
            reason = f"worker does not accept {msg.type!r} messages"
            log.warning("Console sent a %r message; ignored", msg.type)
            await ws.send(encode("error", reason=reason))

    # --- runs ------------------------------------------------------------------------------------

    def _start(self, msg: Any) -> Refusal | None:
        """Start a dispatched run; return why not (nothing started) or None."""
        run_id = msg["run_id"]
        if not self.accepting:
            return Refusal("the worker is shutting down")
        if run_id in self.runs or self.spool.has(run_id):
            return Refusal(f"run {run_id} is already held by this worker")
        if len(self.runs) >= self.cfg.slots:
            n = self.cfg.slots
            busy = "the one slot of this worker is" if n == 1 else f"all {plural(n, 'slot')} are"
            return Refusal(f"{busy} busy")
        try:
            path = scripts.resolve(self.cfg.scripts_dir, msg["script"])
        except scripts.UnsafeScript as exc:
            return Refusal(str(exc), permanent=not isinstance(exc, scripts.UnknownScript))
        # The hub may not choose the program, its loader or start-up hooks (docs/SECURITY.md).
        problem = self.cfg.env_policy.check(msg["env"]) or scripts.argument_problem(
            path, msg["args"], self.cfg.interpreters
        )
        if problem:
            # the policy and the arguments do not change while this worker runs
            return Refusal(problem, permanent=True)
        argv = scripts.command(path, msg["args"], self.cfg.interpreters)
        delay = max(0.0, float(msg.get("delay") or 0.0))
        request = RunRequest(run_id, argv, str(path.parent), msg["env"], msg["timeout"], delay)
        if self.guardian is not None:
            request.tag = self.guardian.tag(run_id)
        run = ScriptRun(
            request,
            lambda batch: self._emit(run_id, batch),
            self.kill_grace,
            fallback_encoding=self.fallback_encoding,
            guard=self.guardian,
        )
        task = asyncio.create_task(self._guarded(run))
        self.runs[run_id] = (run, task)
        task.add_done_callback(lambda _t: self.runs.pop(run_id, None))
        return None

    async def _guarded(self, run: ScriptRun) -> None:
        """A bug or a full disk in the runner must still stop the process and end the run with a
        result, or the console would wait for it forever."""
        run_id = run.request.run_id
        try:
            await run.run()
        except Exception as exc:
            log.exception("Run %s failed inside the worker", run_id)
            if run.proc is not None and run.proc.returncode is None:
                with contextlib.suppress(Exception):
                    await run.kill_tree()
            if self.spool.runs.get(run_id) is None or not self.spool.runs[run_id].finished:
                try:
                    self._emit(run_id, [_failed(run_id, f"worker error: {exc!r}; see its log")])
                except Exception:
                    log.exception("Run %s: cannot record its result in the spool", run_id)

    async def shutdown(self, grace: float) -> None:
        """Stop taking work, give running jobs GRACE seconds, then kill and record them."""
        self.accepting = False
        tasks = [task for _, task in self.runs.values()]
        if tasks:
            log.info(
                "Shutting down: waiting up to %g s for %s",
                grace,
                plural(len(tasks), "running job"),
            )
            _, left = await asyncio.wait(tasks, timeout=grace)
            for run, task in list(self.runs.values()):
                if task in left:
                    run.cancel("worker shutdown")
            if left:
                await asyncio.wait(left)
        # Deliver what we can while still connected; the rest stays spooled for next start.
        deadline = time.monotonic() + 5.0
        while self.ws is not None and self.spool.runs and time.monotonic() < deadline:
            self.acked.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.acked.wait(), deadline - time.monotonic())
        # what is still unsynced (written during the wait) is on disk before the process ends
        with contextlib.suppress(OSError):
            self.spool.sync_now()
        if self.disk.held:
            log.error(
                "Stopping while the spool's disk is full: the held messages of %d run(s) (%s) "
                "are lost; free space before stopping the worker next time",
                len(self.disk.held),
                ", ".join(map(str, sorted(self.disk.held))),
            )
        if self.guardian is not None:
            # its sweep also ends what a finished job daemonised: nothing outlives the worker
            await asyncio.to_thread(self.guardian.close)
