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


@dataclass
class Session:
    remote: str = ""
    heartbeat_interval: float = 10.0
    flood_limit: int = DEFAULT_FLOOD_LIMIT
    server_version: str = ""
    state: str = AWAIT_HELLO
    worker: str | None = None
    hello: Message | None = None
    last_heard: float | None = None
    # highest seq committed (acked) per run: anything at or below it is a replay
    acked: dict[int, int] = field(default_factory=dict)
    _recent: deque = field(default_factory=deque)

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
            return [Declined(msg["run_id"], msg["reason"])]
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
        return reject(code, reason)

    # --- results of the server's work -----------------------------------------------------------

    def authenticated(self, worker: str, now: float) -> list[Action]:
        if self.state != AUTHENTICATING:
            return []
        self.state = READY
        self.worker = worker
        if self.hello is not None:
            self.flood_limit += PER_SLOT_FLOOD * self.hello["slots"]
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
        self.acked[run_id] = seq
        return [Send(make("ack", run_id=run_id, seq=seq))]

    def forget(self, run_id: int) -> None:
        self.acked.pop(run_id, None)

    # --- timing ---------------------------------------------------------------------------------

    def silent_for(self, now: float) -> float:
        return 0.0 if self.last_heard is None else max(0.0, now - self.last_heard)

    def is_silent(self, now: float, grace: float) -> bool:
        """Nothing heard for longer than ``grace`` seconds (authenticated sessions only)."""
        return self.state == READY and self.silent_for(now) > grace
