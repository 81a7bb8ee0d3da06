"""One worker connection as an I/O-free state machine: decoded message in, actions out.

The server (server.py) moves frames and performs the actions; this module decides.  Time is
passed in, so every rule (authentication order, flood limit, heartbeat silence, duplicate
replays, acks only after commit) is tested with plain values.

    session = Session(remote="10.0.0.5")
    actions = session.feed(decoded_message_or_ProtocolError, now)
    # the server authenticates the hello against the store, then:
    actions = session.authenticated(worker_name, now)  |  session.refused(code, reason)
    # the server commits store actions, then:
    actions = session.committed(run_id, last_seq)       -> the ack
    actions = session.refuse_report(run_id, seq, why)   -> error + ack (never stored)
    actions = session.hello_overdue(now)                -> close an idle connection

Limits (docs/SECURITY.md, "Isolation between workers and limits"): whatever a peer can make the
hub hold is bounded here, per connection, before anything is built from it; over a limit the
connection is refused with code ``limit`` and a reason.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from worker.protocol import Message, ProtocolError, make

AWAIT_HELLO = "await_hello"
AUTHENTICATING = "authenticating"
READY = "ready"
CLOSED = "closed"

# Messages per second one worker may send: this many, plus PER_SLOT_FLOOD for each slot it
# announced (many short runs at once legitimately send ~3 messages each).  The worker batches
# output (64 KiB or 50 ms per stream per run), so a real worker stays far below; a flood is a
# bug or an attack.
DEFAULT_FLOOD_LIMIT = 2000
PER_SLOT_FLOOD = 50

# Per-connection limits.  The protocol (worker/protocol.py) already caps frames at 1 MiB and
# lists at 10,000 items; these are the hub's own, tighter bounds.
MAX_RUN_IDS = 2000  # run ids in a heartbeat's running / a hello's runs (console slots <= 1000)
MAX_SCRIPTS = 5000  # catalogue entries in a hello / heartbeat
MAX_SCRIPT_NAME = 255  # as a dispatch's script field
MAX_SHA256 = 128
MAX_ACKED = 4096  # runs whose ack level a session remembers (replays of older ones hit the store)
HELLO_DEADLINE = 10.0  # seconds from connect to hello
MAX_RUN_ID = 2**63 - 1  # the run table's BIGINT id
MAX_SEQ = 2**31 - 1  # INTEGER columns: last_seq, seq
EXIT_CODE_RANGE = (-(2**31), 2**32 - 1)  # signed (POSIX) and unsigned (Windows) 32-bit codes

WORKER_TYPES = frozenset(
    {"hello", "heartbeat", "started", "output", "finished", "declined", "error"}
)


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: dict[str, Any]


@dataclass(frozen=True)
class Close:
    """Close the connection.  ``code`` is the reject code (or "error") for logs."""

    code: str
    reason: str


@dataclass(frozen=True)
class Authenticate:
    """Check the hello against the store, then call authenticated() or refused()."""

    hello: Message


@dataclass(frozen=True)
class Heard:
    """The worker reported which runs it holds right now (heartbeat ``running``), and its
    script catalogue when that changed (``scripts``; None: unchanged)."""

    running: tuple[int, ...]
    scripts: tuple[dict[str, str], ...] | None = None
    problem: str | None = None  # what stalls the worker (its spool's disk is full), else None


@dataclass(frozen=True)
class StoreStarted:
    run_id: int
    seq: int
    at: float


@dataclass(frozen=True)
class StoreOutput:
    run_id: int
    seq: int
    stream: str
    text: str
    at: float | None


@dataclass(frozen=True)
class StoreFinished:
    run_id: int
    seq: int
    outcome: str
    exit_code: int | None
    reason: str
    at: float


@dataclass(frozen=True)
class Declined:
    run_id: int
    reason: str
    permanent: bool = False  # the worker will refuse this run again (docs/PROTOCOL.md)


@dataclass(frozen=True)
class WorkerReportedError:
    reason: str


Action = (
    Send
    | Close
    | Authenticate
    | Heard
    | StoreStarted
    | StoreOutput
    | StoreFinished
    | Declined
    | WorkerReportedError
)

STORE_ACTIONS = (StoreStarted, StoreOutput, StoreFinished)


def reject(code: str, reason: str) -> list[Action]:
    return [Send(make("reject", code=code, reason=reason)), Close(code, reason)]


def _unencodable(value: str) -> bool:
    """A lone surrogate (valid JSON, not valid UTF-8): no database driver can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def over_limits(msg: Message) -> str | None:
    """Why a decoded worker message exceeds the hub's limits, or None.  Checked before the hub
    builds anything from it; every check is on sizes the decoder already bounded."""
    t = msg.type
    if t == "hello":
        for key in ("name", "token", "host", "os", "version"):
            if _unencodable(msg[key]):
                return f"hello field {key!r} is not valid Unicode text"
            if "\x00" in msg[key]:  # no database stores it (PostgreSQL refuses it outright)
                return f"hello field {key!r} contains a NUL character"
        if len(msg["runs"]) > MAX_RUN_IDS:
            return f"hello lists {len(msg['runs'])} runs; the limit is {MAX_RUN_IDS}"
    if t == "heartbeat" and len(msg["running"]) > MAX_RUN_IDS:
        return f"heartbeat lists {len(msg['running'])} running runs; the limit is {MAX_RUN_IDS}"
    scripts = msg.get("scripts") if t in ("hello", "heartbeat") else None
    if scripts:
        if len(scripts) > MAX_SCRIPTS:
            return f"the catalogue has {len(scripts)} scripts; the limit is {MAX_SCRIPTS}"
        for entry in scripts:
            if "\x00" in entry["name"] or "\x00" in entry["sha256"]:
                return "a catalogue entry contains a NUL character"
            if len(entry["name"]) > MAX_SCRIPT_NAME or len(entry["sha256"]) > MAX_SHA256:
                return (
                    f"a catalogue entry is longer than {MAX_SCRIPT_NAME} (name) or "
                    f"{MAX_SHA256} (sha256) characters"
                )
    if t in ("started", "output", "finished", "declined"):
        if msg["run_id"] > MAX_RUN_ID:
            return f"run_id is over {MAX_RUN_ID}"
        if t != "declined" and msg["seq"] > MAX_SEQ:
            return f"seq is over {MAX_SEQ}"
    if t == "finished" and msg["exit_code"] is not None:
        low, high = EXIT_CODE_RANGE
        if not low <= msg["exit_code"] <= high:
            return f"exit_code is outside {low}..{high}"
    return None


@dataclass
class Session:
    remote: str = ""
    heartbeat_interval: float = 10.0
    flood_limit: int = DEFAULT_FLOOD_LIMIT
    server_version: str = ""
    opened: float = 0.0  # when the connection was accepted (for the hello deadline)
    hello_deadline: float = HELLO_DEADLINE
    state: str = AWAIT_HELLO
    worker: str | None = None
    hello: Message | None = None
    last_heard: float | None = None
    # highest seq committed (acked) per run: anything at or below it is a replay
    acked: dict[int, int] = field(default_factory=dict)
    _recent: deque[float] = field(default_factory=deque)  # times of recent messages

    # --- input ----------------------------------------------------------------------------------

    def feed(self, msg: Message | ProtocolError, now: float) -> list[Action]:
        if self.state == CLOSED:
            return []
        if self._flooding(now):
            return self._close(
                "flood",
                f"more than {self.flood_limit} messages in one second; the worker is misbehaving "
                "(upgrade it or check its scripts)",
            )
        if isinstance(msg, ProtocolError):
            return self._close("malformed", f"unreadable message: {msg}")
        self.last_heard = now
        if msg.type not in WORKER_TYPES:
            return self._close("malformed", f"a worker may not send {msg.type!r} messages")
        problem = over_limits(msg)
        if problem:
            return self._close("limit", problem)
        if self.state == AWAIT_HELLO:
            if msg.type != "hello":
                return self._close("malformed", f"the first message must be hello, not {msg.type}")
            self.state = AUTHENTICATING
            self.hello = msg
            return [Authenticate(msg)]
        if self.state == AUTHENTICATING or msg.type == "hello":
            return self._close("malformed", f"{msg.type!r} sent before or after the welcome")
        return self._ready(msg)

    def _ready(self, msg: Message) -> list[Action]:
        t = msg.type
        if t == "heartbeat":
            scripts = msg["scripts"]
            return [
                Heard(
                    tuple(msg["running"]),
                    None if scripts is None else tuple(scripts),
                    msg["problem"],
                )
            ]
        if t == "declined":
            return [Declined(msg["run_id"], msg["reason"], msg["permanent"] is True)]
        if t == "error":
            return [WorkerReportedError(msg["reason"])]
        run_id, seq = msg["run_id"], msg["seq"]
        if seq <= self.acked.get(run_id, 0):
            # a replay of something committed: ack again so the worker can drop it
            return [Send(make("ack", run_id=run_id, seq=self.acked[run_id]))]
        if t == "started":
            return [StoreStarted(run_id, seq, msg["at"])]
        if t == "output":
            return [StoreOutput(run_id, seq, msg["stream"], msg["text"], msg["at"])]
        return [
            StoreFinished(
                run_id, seq, msg["outcome"], msg["exit_code"], msg["reason"] or "", msg["at"]
            )
        ]

    def _flooding(self, now: float) -> bool:
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        return len(recent) > self.flood_limit

    def _close(self, code: str, reason: str) -> list[Action]:
        self.state = CLOSED
        self.hello = None
        return reject(code, reason)

    # --- results of the server's work -----------------------------------------------------------

    def authenticated(self, worker: str, now: float, slots: int = 1) -> list[Action]:
        """``slots`` is the console's setting for this worker (never the hello's)."""
        if self.state != AUTHENTICATING:
            return []
        self.state = READY
        self.worker = worker
        self.hello = None  # its token and catalogue need not stay in memory with the connection
        self.flood_limit += PER_SLOT_FLOOD * slots
        self.last_heard = now
        return [
            Send(
                make(
                    "welcome",
                    worker=worker,
                    heartbeat_interval=self.heartbeat_interval,
                    server_version=self.server_version,
                )
            )
        ]

    def refused(self, code: str, reason: str) -> list[Action]:
        if self.state == CLOSED:
            return []
        return self._close(code, reason)

    def committed(self, run_id: int, seq: int) -> list[Action]:
        """The store holds everything of ``run_id`` up to ``seq``: ack it (once per level)."""
        if self.state != READY or seq <= self.acked.get(run_id, 0):
            return []
        self._remember_ack(run_id, seq)
        return [Send(make("ack", run_id=run_id, seq=seq))]

    def refuse_report(self, run_id: int, seq: int, reason: str) -> list[Action]:
        """A report the hub will never store (not this worker's run, or unstorable): say why,
        and ack it so the worker drops its copy instead of replaying it on every reconnect.
        The ack is this connection's own: it never moves the run's owner's ack."""
        if self.state != READY:
            return []
        actions: list[Action] = [Send(make("error", reason=reason[:4000]))]
        return actions + self.committed(run_id, seq)

    def _remember_ack(self, run_id: int, seq: int) -> None:
        acked = self.acked
        acked.pop(run_id, None)
        acked[run_id] = seq  # most recent last: the oldest is forgotten first
        while len(acked) > MAX_ACKED:
            del acked[next(iter(acked))]

    def forget(self, run_id: int) -> None:
        self.acked.pop(run_id, None)

    # --- timing ---------------------------------------------------------------------------------

    def hello_overdue(self, now: float) -> list[Action]:
        """A connection that has not said hello within the deadline is closed: an idle peer
        must not hold a connection (and its buffers) open indefinitely."""
        if self.state != AWAIT_HELLO or now - self.opened < self.hello_deadline:
            return []
        return self._close(
            "timeout", f"no hello within {self.hello_deadline:.0f} s of connecting; closed"
        )

    def silent_for(self, now: float) -> float:
        return 0.0 if self.last_heard is None else max(0.0, now - self.last_heard)

    def is_silent(self, now: float, grace: float) -> bool:
        """Nothing heard for longer than ``grace`` seconds (authenticated sessions only)."""
        return self.state == READY and self.silent_for(now) > grace
