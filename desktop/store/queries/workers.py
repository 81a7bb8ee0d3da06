"""Workers: registration, tokens (only a hash is kept), authentication and what a worker
reported about its host."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from desktop.store.errors import AuthError, NotFound, ValidationError
from desktop.store.models import Worker
from desktop.store.queries.common import (
    _audit,
    _aware,
    _bump,
    _dt,
    _naive,
    _now,
    _raw_dicts,
    _read,
    _write,
)
from desktop.store.queries.prepared import IN_BATCH, _prepared
from desktop.store.records import WorkerRecord

_WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


def _worker_from(w: Worker) -> WorkerRecord:
    return WorkerRecord(
        id=w.id,
        name=w.name,
        tags=tuple(json.loads(w.tags_json)),
        slots=w.slots,
        enabled=bool(w.enabled),
        revoked_at=_aware(w.revoked_at),
        last_seen_at=_aware(w.last_seen_at),
        version=w.version,
        host=w.host,
        os_name=w.os_name,
        scripts=tuple(json.loads(w.scripts_json)),
        created_at=_aware(w.created_at),
    )


def _check_worker_input(name: Any, tags: Any, slots: Any) -> dict[str, str]:
    errors = {}
    if not isinstance(name, str) or not _WORKER_NAME.match(name):
        errors["name"] = (
            "must start with a letter or digit and use only letters, digits, '.', '_', '-', '@' "
            "(at most 200)"
        )
    if not isinstance(tags, (list, tuple)) or not all(
        isinstance(t, str) and t.strip() and len(t) <= 100 for t in tags
    ):
        errors["tags"] = "must be a list of non-empty tags of at most 100 characters"
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1000:
        errors["slots"] = "must be a whole number from 1 to 1000"
    return errors


def _require_worker(name: str) -> Worker:
    worker = Worker.get_or_none(Worker.name == name)
    if worker is None:
        raise NotFound(f"there is no worker named {name!r}")
    return worker


def add_worker(
    name: str, tags: Sequence[str] = (), slots: int = 1, actor: str = "console"
) -> tuple[WorkerRecord, str]:
    """Register a worker.  Returns its record and its token: shown once, only a hash is kept."""
    errors = _check_worker_input(name, tags, slots)
    if errors:
        raise ValidationError(errors)
    token = _new_token()
    with _write():
        if Worker.select().where(Worker.name == name).exists():
            raise ValidationError({"name": f"a worker named {name!r} already exists"})
        worker = Worker.create(
            name=name,
            token_hash=_hash_token(token),
            tags_json=json.dumps(sorted(set(tags))),
            slots=slots,
            created_at=_now(),
        )
        _audit(actor, "created", "worker", name, f"slots {slots}, tags {sorted(set(tags))}")
        _bump()
        return _worker_from(worker), token


def authenticate_worker(name: str, token: str) -> WorkerRecord:
    """The worker's record if ``token`` is its current token and it may connect; else
    AuthError with the reject code and a reason for the worker's admin."""
    with _read():
        worker = Worker.get_or_none(Worker.name == name)
    return _check_login(worker, name, token)


class Hello(NamedTuple):
    """What admit_workers needs of one hello."""

    name: str
    token: str
    host: str
    os_name: str
    version: str
    scripts: Sequence[dict[str, str]]


def admit_workers(hellos: Sequence[Hello], at: datetime) -> list[WorkerRecord | AuthError]:
    """``authenticate_worker`` for each hello and, for each one admitted, what its hello says
    of its host (never its tags or slots: the console sets those), all in one transaction: the
    hub's login path in a connect storm (10,000 workers reconnecting after a console restart)
    was two transactions per hello.  Each hello is checked on its own exactly as
    authenticate_worker does; the result is in the hellos' order."""
    names = sorted({h.name for h in hellos})
    out: list[WorkerRecord | AuthError] = []
    with _write():
        rows: dict[str, Worker] = {}
        for start in range(0, len(names), IN_BATCH):
            for w in Worker.select().where(Worker.name.in_(names[start : start + IN_BATCH])):
                rows[w.name] = w
        seen_at = _naive(at)
        for hello in hellos:
            try:
                record = _check_login(rows.get(hello.name), hello.name, hello.token)
            except AuthError as exc:
                out.append(exc)
                continue
            cols = _seen_columns(hello.host, hello.os_name, hello.version, hello.scripts, seen_at)
            _prepared(("admit_workers",), _seen_update, [*cols.values(), hello.name])
            out.append(record)
    return out


def _seen_update(host, os_name, version, scripts_json, last_seen_at, name):
    """The hello's UPDATE, compiled once (prepared.py); the order is _seen_columns'."""
    return Worker.update(
        host=host,
        os_name=os_name,
        version=version,
        scripts_json=scripts_json,
        last_seen_at=last_seen_at,
    ).where(Worker.name == name)


def _check_login(worker: Worker | None, name: str, token: str) -> WorkerRecord:
    if worker is None:
        raise AuthError(
            "unknown", f"no worker named {name!r} is registered; add it in the console first"
        )
    if not hmac.compare_digest(worker.token_hash, _hash_token(token or "")):
        raise AuthError(
            "bad_token", "the token is wrong; copy the worker's token from the console again"
        )
    if worker.revoked_at is not None:
        raise AuthError("revoked", "this worker was revoked; issue a new token in the console")
    if not worker.enabled:
        raise AuthError("disabled", "this worker is disabled in the console; enable it there")
    return _worker_from(worker)


def _worker_from_row(row: dict[str, Any], parsed: dict[str, tuple]) -> WorkerRecord:
    """_worker_from for a raw row (common._raw_dicts).  PARSED memoizes the JSON columns
    within one read: most workers share their tags ("[]") and many their catalogue.  The
    records share those tuples, which nobody changes (records are read-only)."""
    tags, scripts = row["tags_json"], row["scripts_json"]
    if tags not in parsed:
        parsed[tags] = tuple(json.loads(tags))
    if scripts not in parsed:
        parsed[scripts] = tuple(json.loads(scripts))
    return WorkerRecord(
        id=row["id"],
        name=row["name"],
        tags=parsed[tags],
        slots=row["slots"],
        enabled=bool(row["enabled"]),
        revoked_at=_dt(row["revoked_at"]),
        last_seen_at=_dt(row["last_seen_at"]),
        version=row["version"],
        host=row["host"],
        os_name=row["os_name"],
        scripts=parsed[scripts],
        created_at=_dt(row["created_at"]),
    )


def _worker_rows(query) -> list[WorkerRecord]:
    # raw rows, not models: peewee's per-field conversion was most of the time (10,000 workers:
    # 600 ms of CPU on the database thread, holding up every scheduler pass behind it)
    parsed: dict[str, tuple] = {}
    return [_worker_from_row(r, parsed) for r in _raw_dicts(query)]


def list_workers() -> list[WorkerRecord]:
    with _read():
        return _worker_rows(_worker_columns().order_by(Worker.name))


def list_workers_page(after: str = "", limit: int = 1000) -> list[WorkerRecord]:
    """list_workers in name order, ``limit`` at a time after the name ``after``: the console
    re-reads all its workers in pieces (service/workers.py), so the scheduler's passes on the
    one database thread go between them instead of waiting for the whole table."""
    with _read():
        query = _worker_columns().where(Worker.name > after).order_by(Worker.name).limit(limit)
        return _worker_rows(query)


def _worker_columns():
    """Every column but the token's hash, which a record never carries."""
    return Worker.select(*[f for f in Worker._meta.sorted_fields if f is not Worker.token_hash])


def get_worker(name: str) -> WorkerRecord | None:
    with _read():
        worker = Worker.get_or_none(Worker.name == name)
        return _worker_from(worker) if worker else None


def revoke_worker(name: str, actor: str = "console") -> WorkerRecord:
    """Its token stops working at once (the hub should also close its connection)."""
    with _write():
        worker = _require_worker(name)
        Worker.update(revoked_at=_now()).where(Worker.id == worker.id).execute()
        _audit(actor, "revoked", "worker", name)
        _bump()
        return _worker_from(Worker.get_by_id(worker.id))


def set_worker_enabled(name: str, enabled: bool, actor: str = "console") -> WorkerRecord:
    with _write():
        worker = _require_worker(name)
        if bool(worker.enabled) != bool(enabled):
            Worker.update(enabled=bool(enabled)).where(Worker.id == worker.id).execute()
            _audit(actor, "enabled" if enabled else "disabled", "worker", name)
            _bump()
        return _worker_from(Worker.get_by_id(worker.id))


def rotate_token(name: str, actor: str = "console") -> str:
    """Issue a new token (the old one stops working).  This also lifts a revocation: it is how
    a revoked worker is enrolled again."""
    token = _new_token()
    with _write():
        worker = _require_worker(name)
        Worker.update(token_hash=_hash_token(token), revoked_at=None).where(
            Worker.id == worker.id
        ).execute()
        _audit(actor, "token_rotated", "worker", name)
        _bump()
    return token


def _seen_columns(
    host: str, os_name: str, version: str, scripts: Sequence[dict[str, str]], at: datetime
) -> dict[str, Any]:
    return {
        "host": (host or "")[:255],
        "os_name": (os_name or "")[:200],
        "version": (version or "")[:50],
        "scripts_json": json.dumps(list(scripts), sort_keys=True),
        "last_seen_at": at,
    }


def set_worker_config(
    name: str,
    tags: Sequence[str] | None = None,
    slots: int | None = None,
    actor: str = "console",
) -> WorkerRecord:
    """Change a worker's tags and/or slots (None: keep).  Only the console does this: which
    jobs a worker gets (tags) and how many at once (slots) are the admin's decision."""
    worker_name = name if isinstance(name, str) else ""
    errors = _check_worker_input(
        worker_name or "x", [] if tags is None else tags, 1 if slots is None else slots
    )
    errors.pop("name", None)
    if errors:
        raise ValidationError(errors)
    with _write():
        worker = _require_worker(name)
        cols: dict[str, Any] = {}
        changes = []
        if tags is not None:
            new_tags = sorted({t.strip() for t in tags})
            if new_tags != sorted(json.loads(worker.tags_json)):
                cols["tags_json"] = json.dumps(new_tags)
                changes.append(f"tags {new_tags}")
        if slots is not None and slots != worker.slots:
            cols["slots"] = slots
            changes.append(f"slots {slots}")
        if cols:
            Worker.update(**cols).where(Worker.id == worker.id).execute()
            _audit(actor, "updated", "worker", name, ", ".join(changes))
            _bump()
        return _worker_from(Worker.get_by_id(worker.id))


def set_worker_scripts(name: str, scripts: Sequence[dict[str, str]]) -> None:
    """The script catalogue a connected worker reported after its hello (it changed)."""
    with _write():
        cols = {"scripts_json": json.dumps(list(scripts), sort_keys=True)}
        if not Worker.update(**cols).where(Worker.name == name).execute():
            raise NotFound(f"there is no worker named {name!r}")
