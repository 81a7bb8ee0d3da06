"""Open the database named by a URL and bind the models to it.

URL forms: ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``sqlite:///:memory:``,
``postgresql://user[:password]@host[:port]/dbname[?libpq options]``.  The URL comes from
``--db``, else ``$JOBTRIGGER_DB_URL``, else the older ``$REFLEX_DB_URL``, else a SQLite file in
the user's data folder (``resolve_url``).

Driver errors are turned into :mod:`desktop.store.errors` classes with messages a person can act
on (``store_errors``); anything else is our bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import peewee

from desktop.store.errors import (
    BadDatabaseUrl,
    DatabaseCorrupt,
    DatabaseLocked,
    DatabaseUnreachable,
    StoreError,
)
from desktop.store.models import database_proxy
from worker import private

log = logging.getLogger(__name__)

ENV_VARS = ("JOBTRIGGER_DB_URL", "REFLEX_DB_URL")
DEFAULT_FILE_NAME = "jobtrigger.db"
BUSY_TIMEOUT_SECONDS = 5.0
PG_CONNECT_TIMEOUT_SECONDS = 5
PG_IDLE_IN_TRANSACTION_MS = 5000
PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    # keepalives do not run while sent data waits for an ack: then this bounds it (ms)
    "tcp_user_timeout": 20000,
}


def default_url() -> str:
    import platformdirs

    folder = Path(platformdirs.user_data_dir("JobTrigger", appauthor=False))
    return "sqlite:///" + (folder / DEFAULT_FILE_NAME).as_posix()


def resolve_url(cli_url: str | None = None) -> str:
    """The database URL to use: --db, then the environment, then the per-user default file."""
    if cli_url:
        return cli_url
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return default_url()


@dataclass(frozen=True)
class ParsedUrl:
    kind: str  # "sqlite" | "postgresql"
    path: str = ""  # sqlite: file path or ":memory:"
    dbname: str = ""
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    options: tuple[tuple[str, str], ...] = ()


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def parse_url(url: str) -> ParsedUrl:
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise BadDatabaseUrl(
            f"database URL {url!r} has no scheme; use sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/dbname"
        )
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise BadDatabaseUrl(
                f"SQLite URL {url!r} needs three slashes and a path: sqlite:///relative.db, "
                "sqlite:////absolute/path.db or sqlite:///:memory:"
            )
        path = unquote(rest[1:].split("?", 1)[0])
        return ParsedUrl("sqlite", path=path)
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise BadDatabaseUrl(
                f"PostgreSQL URL {redact(url)!r} names no database; "
                "use postgresql://user@host:5432/dbname"
            )
        try:
            port = parts.port
        except ValueError:
            raise BadDatabaseUrl(f"PostgreSQL URL {redact(url)!r} has a bad port") from None
        return ParsedUrl(
            "postgresql",
            dbname=dbname,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=port,
            options=tuple(parse_qsl(parts.query)),
        )
    raise BadDatabaseUrl(
        f"database URL scheme {scheme!r} is not supported; use sqlite:/// or postgresql://"
    )


def is_sqlite(db: peewee.Database | peewee.DatabaseProxy) -> bool:
    if isinstance(db, peewee.DatabaseProxy):
        db = db.obj
    return isinstance(db, peewee.SqliteDatabase)


def describe(db: peewee.Database) -> str:
    """Where the data lives, for messages: the file path or host/dbname."""
    if isinstance(db, peewee.DatabaseProxy):
        db = db.obj
    if isinstance(db, peewee.SqliteDatabase):
        return "the in-memory database" if db.database == ":memory:" else f"file {db.database}"
    params = getattr(db, "connect_params", {})
    host = params.get("host") or "localhost"
    port = params.get("port") or 5432
    return f"PostgreSQL database {db.database!r} on {host}:{port}"


def translate(exc: BaseException, where: str) -> StoreError | None:
    """The person-readable StoreError for a driver exception, or None when it is our bug."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "database is locked" in low or "database table is locked" in low:
        return DatabaseLocked(
            f"{where} is locked by another program (waited {BUSY_TIMEOUT_SECONDS:g} s). "
            "Close the other Job Trigger console or tool using it, or try again."
        )
    if "file is not a database" in low or "malformed" in low or "not a database" in low:
        return DatabaseCorrupt(
            f"{where} is not a Job Trigger database or is damaged ({text}). "
            "Restore it from a backup, or point --db / JOBTRIGGER_DB_URL at another file."
        )
    if "unable to open database file" in low:
        return StoreError(
            f"cannot open {where}: the folder is missing or not writable. "
            "Create the folder or choose another path with --db."
        )
    unreachable_hints = (
        "could not connect",
        "connection refused",
        "server closed",
        "connection already closed",
        "timeout expired",
        "password authentication",
        "does not exist",
        "no route",
        "could not translate host",
        "terminating connection",
    )
    is_server_error = isinstance(exc, (peewee.OperationalError, peewee.InterfaceError))
    if is_server_error and any(hint in low for hint in unreachable_hints):
        return DatabaseUnreachable(
            f"cannot use {where}: {text}. Check that the server is running and that the "
            "URL (--db or JOBTRIGGER_DB_URL) has the right host, port, user and database."
        )
    return None


@contextlib.contextmanager
def store_errors(db: peewee.Database | peewee.DatabaseProxy | str) -> Iterator[None]:
    """Re-raise driver errors as StoreError with a readable message; leave bugs alone."""
    try:
        yield
    except (peewee.PeeweeException, sqlite3.Error) as exc:
        target = db.obj if isinstance(db, peewee.DatabaseProxy) else db
        where = target if isinstance(target, str) else describe(target)
        translated = translate(exc, where)
        if translated is None or translated is exc:
            raise
        raise translated from exc


def _make_database(parsed: ParsedUrl, busy_timeout: float) -> peewee.Database:
    if parsed.kind == "sqlite":
        pragmas: list[tuple[str, object]] = [
            ("foreign_keys", 1),
            ("busy_timeout", int(busy_timeout * 1000)),
        ]
        if parsed.path != ":memory:":
            # WAL: the console reads while the CLI writes; NORMAL is safe with WAL (a power cut
            # can lose the last commits, never corrupt the file) and much faster than FULL.
            pragmas += [("journal_mode", "wal"), ("synchronous", "normal")]
        return peewee.SqliteDatabase(
            parsed.path, pragmas=pragmas, timeout=busy_timeout, check_same_thread=True
        )
    kwargs: dict[str, Any] = {
        "connect_timeout": PG_CONNECT_TIMEOUT_SECONDS,
        # a network that drops packets silently ends a connection in 20-25 s, not after the
        # system's hours: a console (above all a leader, docs/HA.md) must notice
        **PG_KEEPALIVES,
    }
    for key in ("user", "password", "host", "port"):
        value = getattr(parsed, key)
        if value is not None:
            kwargs[key] = value
    kwargs.update(dict(parsed.options))
    # A session that falls silent inside a transaction (its network dropping packets) would
    # hold its row locks until TCP gives up; the server ends it after this instead, so the
    # other console of a cluster (docs/HA.md) is not blocked.  Our transactions never wait on
    # anything but the database, so none is idle this long.
    idle = f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_MS}"
    kwargs["options"] = f"{kwargs['options']} {idle}" if kwargs.get("options") else idle
    return peewee.PostgresqlDatabase(parsed.dbname, **kwargs)


def _private_sqlite_files(path: Path) -> None:
    """The database holds token hashes and jobs' environment: owner-only.  A new file is made
    0600 here, before SQLite would make it with the umask's mode (its -wal and -shm files copy
    the database file's mode); an existing one is narrowed, and the log says so."""
    files = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    for file in files:
        # planted by another account in a shared folder: SQLite would write into it
        problem = private.foreign(file)
        if problem:
            raise StoreError(
                f"{file} {problem}; the database would write token hashes and jobs' "
                "environment into it. Remove it, or keep the database in a folder only this "
                "account can write to"
            )
    with contextlib.suppress(OSError):  # a read-only folder: SQLite's own error says it better
        private.create_private(path)
    for file in files:
        old = private.tighten(file)
        if old is not None:
            log.warning(
                "%s was readable by other accounts (mode %o); made it owner-only (600)",
                file,
                old,
            )


def connect(
    url: str | None = None, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS
) -> peewee.Database:
    """Open the database at ``url`` (``resolve_url`` when None), check it answers, and bind
    the models to it.  Does not create or migrate tables: see migrations.migrate / open_store.
    Raises StoreError subclasses with a message for the person."""
    url = resolve_url(url)
    parsed = parse_url(url)
    if parsed.kind == "sqlite" and parsed.path != ":memory:":
        path = Path(parsed.path).expanduser()
        if url == default_url():
            private.private_folder(path.parent)
        elif not path.parent.exists():
            raise StoreError(
                f"the folder {path.parent} for database file {path.name} does not exist; "
                "create it or choose another path with --db"
            )
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a database file; choose a file with --db")
        _private_sqlite_files(path)
    db = _make_database(parsed, busy_timeout)
    where = describe(db) if parsed.kind == "sqlite" else f"{describe(db)} ({redact(url)})"
    with store_errors(where):
        db.connect()
        try:
            # Reading the catalogue makes SQLite look at the file's header: garbage fails here.
            db.execute_sql("SELECT 1").fetchone()
            if parsed.kind == "sqlite":
                db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            db.close()
            raise
    database_proxy.initialize(db)
    return db


def open_store(url: str | None = None, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS):
    """connect() + migrate(): what the CLI and the executor call.  Returns the Database."""
    from desktop.store.migrations import migrate

    db = connect(url, busy_timeout=busy_timeout)
    try:
        with store_errors(db):
            migrate(db)
    except BaseException:
        db.close()
        raise
    return db
