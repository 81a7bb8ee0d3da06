"""The wire protocol between workers and the hub, shared by both sides.

Every frame is one JSON object with ``type`` and ``v``.  Decoding is strict: anything that is
not exactly a known message of the supported version raises :class:`ProtocolError` with a reason
a person can read, so a caller can answer with that reason and close, and never crashes.

Delivery guarantees rest on ``seq``: within one run, ``started``, ``output`` and ``finished``
carry increasing sequence numbers starting at 1.  The hub acknowledges cumulatively (``ack`` with
seq N means everything up to N of that run is committed), the worker drops its spooled copies up
to N, and replays the rest after a reconnect; the hub drops anything with a seq it already has.

This module is stdlib-only: the worker must stay small.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
# Output batches are at most 64 KiB of text; JSON escaping can roughly double that.
MAX_FRAME_BYTES = 1024 * 1024
DEFAULT_PATH = "/ws/heartbeat"

# "lost": the worker died while the script ran and, on restart, ended what it left (a retry
# may follow, per the job's policy); a console before this outcome refuses the frame.
OUTCOMES = ("succeeded", "failed", "timed_out", "cancelled", "lost")
STREAMS = ("stdout", "stderr")


class ProtocolError(ValueError):
    """A frame that is not a valid message; ``str(err)`` is the reason to send back."""


# --- field validators: each returns None when the value is fine, else what is wrong -------------

Check = Callable[[Any], "str | None"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(max_len: int = 4096) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "must be a string"
        if len(v) > max_len:
            return f"is longer than {max_len} characters"
        return None

    return check


def _int(minimum: int = 0) -> Check:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "must be an integer"
        if v < minimum:
            return f"must be at least {minimum}"
        return None

    return check


def _number(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "must be a number"
    if v != v or v in (float("inf"), float("-inf")):
        return "must be finite"
    return None


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _optional(inner: Check) -> Check:
    def check(v: Any) -> str | None:
        return None if v is None else inner(v)

    return check


def _one_of(*allowed: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _list_of(inner: Check, max_items: int = 10_000) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return "must be a list"
        if len(v) > max_items:
            return f"has more than {max_items} items"
        for i, item in enumerate(v):
            problem = inner(item)
            if problem:
                return f"item {i} {problem}"
        return None

    return check


def _str_map(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must be an object"
    for key, value in v.items():
        if not isinstance(value, str):
            return f"value of {key!r} must be a string"
    return None


def _script_entry(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must be an object with name and sha256"
    for key in ("name", "sha256"):
        if not isinstance(v.get(key), str):
            return f"needs a string {key!r}"
    return None


# type -> {field: (check, required)}.  Optional fields get their default (None, [] or {}) on decode.
_R, _O = True, False
SCHEMAS: dict[str, dict[str, tuple[Check, bool]]] = {
    # worker -> hub
    "hello": {
        "name": (_str(200), _R),
        "token": (_str(500), _R),
        "host": (_str(255), _R),
        "os": (_str(200), _R),
        "version": (_str(50), _R),
        "scripts": (_list_of(_script_entry), _R),
        "slots": (_int(1), _R),
        "tags": (_list_of(_str(100), 100), _O),
        # run ids the worker still holds: running now, or finished with unacked messages
        "runs": (_list_of(_int(1)), _O),
    },
    "heartbeat": {
        "running": (_list_of(_int(1)), _O),
        "at": (_optional(_number), _O),
        # the script catalogue again, only when it changed since the hello or the last one
        "scripts": (_optional(_list_of(_script_entry)), _O),
        # what keeps the worker from working normally (its spool's disk is full), else absent
        "problem": (_optional(_str(1000)), _O),
    },
    "started": {
        "run_id": (_int(1), _R),
        "seq": (_int(1), _R),
        "pid": (_optional(_int(0)), _O),
        "at": (_number, _R),
    },
    "output": {
        "run_id": (_int(1), _R),
        "seq": (_int(1), _R),
        "stream": (_one_of(*STREAMS), _R),
        "text": (_str(MAX_FRAME_BYTES), _R),
        "at": (_optional(_number), _O),
    },
    "finished": {
        "run_id": (_int(1), _R),
        "seq": (_int(1), _R),
        "outcome": (_one_of(*OUTCOMES), _R),
        "exit_code": (_optional(_int(-(2**31))), _O),
        "reason": (_optional(_str()), _O),
        "at": (_number, _R),
    },
    # the worker will not run a dispatch (slots full, unknown or unsafe script): nothing started.
    # permanent: asking this worker again for this run gets the same answer (its env policy,
    # unsafe arguments or script name); consoles that do not know the field ignore it.
    "declined": {
        "run_id": (_int(1), _R),
        "reason": (_str(), _R),
        "permanent": (_optional(_bool), _O),
    },
    "error": {
        "reason": (_str(), _R),
    },
    # hub -> worker
    "welcome": {
        "worker": (_str(200), _R),
        "heartbeat_interval": (_number, _R),
        "server_version": (_str(50), _O),
    },
    "reject": {
        # bad_token, revoked, disabled, unknown, version, duplicate, malformed, flood,
        # too_many_failures (docs/PROTOCOL.md says what each means)
        "code": (_str(50), _R),
        "reason": (_str(), _R),
    },
    "dispatch": {
        "run_id": (_int(1), _R),
        "attempt": (_int(1), _R),
        "script": (_str(255), _R),
        "args": (_list_of(_str(), 1000), _O),
        "env": (_str_map, _O),
        "timeout": (_optional(_number), _O),
        "job": (_optional(_str(200)), _O),
        # seconds to hold the run before starting it: the console fires a scheduled run a
        # moment early so it starts at its due time (absent: start now)
        "delay": (_optional(_number), _O),
    },
    "cancel": {
        "run_id": (_int(1), _R),
        "reason": (_optional(_str()), _O),
    },
    "ack": {
        "run_id": (_int(1), _R),
        "seq": (_int(0), _R),
    },
}

_DEFAULTS: dict[str, Any] = {"tags": [], "runs": [], "running": [], "args": [], "env": {}}


@dataclass(frozen=True)
class Message:
    """A decoded, validated message.  ``fields`` holds every field of its schema."""

    type: str
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def validate(data: Any) -> Message:
    """Check a parsed JSON value against the schemas; return it as a :class:`Message`."""
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    mtype = data.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError("message has no 'type'")
    version = data.get("v")
    if not _is_int(version):
        raise ProtocolError(f"{mtype!r} message has no integer protocol version 'v'")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version} (this side speaks {PROTOCOL_VERSION}); "
            "upgrade the older of worker and console"
        )
    schema = SCHEMAS.get(mtype)
    if schema is None:
        raise ProtocolError(f"unknown message type {mtype[:50]!r}")
    fields: dict[str, Any] = {}
    for name, (check, required) in schema.items():
        if name not in data:
            if required:
                raise ProtocolError(f"{mtype!r} message is missing field {name!r}")
            default = _DEFAULTS.get(name)
            fields[name] = default.copy() if default is not None else None
            continue
        problem = check(data[name])
        if problem:
            raise ProtocolError(f"{mtype!r} field {name!r} {problem}")
        fields[name] = data[name]
    return Message(mtype, fields)


def decode(frame: str | bytes) -> Message:
    """Parse and validate one frame.  Raises :class:`ProtocolError`, never anything else."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes is over the limit of {MAX_FRAME_BYTES}")
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"frame is not UTF-8 text: {exc.reason}") from None
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from None
    return validate(data)


def make(mtype: str, **fields: Any) -> dict[str, Any]:
    """Build a message dict, validated exactly as the other side will validate it."""
    data = {"type": mtype, "v": PROTOCOL_VERSION, **fields}
    validate(data)  # our own bug if this raises: fail where the bad message is built
    return data


# One encoder for every frame: json.dumps given any option builds a new JSONEncoder per call
# (an ack: 4.7 us against 2.4 us with this one; the object keeps no state between calls)
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(mtype: str, **fields: Any) -> str:
    """Build, validate and serialise a message to one compact JSON text frame."""
    return _compact(make(mtype, **fields))


def encode_dict(data: dict[str, Any]) -> str:
    """Serialise an already built message (e.g. one read back from the spool)."""
    return _compact(data)
