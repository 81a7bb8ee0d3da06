"""One scheduler per store: the console holds a lock for as long as it runs, so a second console
on the same data refuses to start instead of firing every occurrence a second time.

The seam is :class:`StoreLock` (``acquire`` / ``release``) and :func:`lock_for`, which picks the
lock for a database URL:

- a SQLite file: :class:`FileLock`, an OS lock on ``<database>.lock`` beside it.  The OS drops
  the lock when its holder dies (even by kill -9), so a stale lock never blocks a restart; the
  pid, host and start time written into the file are information for the message only, never
  the lock itself.
- in-memory SQLite: nothing to share, :class:`NoLock`.
- PostgreSQL: :class:`NoLock`: several consoles may share the database, and which one
  schedules is decided by a lease with a fencing token instead (desktop/store/cluster.py,
  desktop/service/cluster.py, docs/HA.md): a standby waits for the lead rather than exit.

Only the console takes the lock (desktop.service.Core.start); the CLI never does, so commands
that read, or that ask the running console to act (run, runs cancel), keep working beside it.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from typing import Protocol

from desktop.store.db import parse_url
from desktop.store.errors import StoreError

# msvcrt locks are mandatory byte ranges: lock one byte far past the information text, so a
# second console can still read who holds it.  POSIX flock() locks the whole file, advisory.
WINDOWS_LOCK_OFFSET = 1 << 30


class ConsoleRunning(StoreError):
    """Another console already schedules from this store."""

    def __init__(self, where: str, holder: dict) -> None:
        self.holder = holder
        pid = holder.get("pid", "?")
        host = holder.get("host", "?")
        since = holder.get("started", "")
        super().__init__(
            f"another Job Trigger console (pid {pid} on {host}"
            + (f", started {since}" if since else "")
            + f") already runs the scheduler for {where}; stop it first, or give this one "
            "another database with --db"
        )


class StoreLock(Protocol):
    def acquire(self) -> None:
        """Take the lock or raise ConsoleRunning; never blocks."""

    def release(self) -> None:
        """Give the lock up (idempotent)."""


class NoLock:
    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


def lock_path(url: str) -> str | None:
    """The lock file for a database URL, or None when the store needs no file lock."""
    parsed = parse_url(url)
    if parsed.kind != "sqlite" or parsed.path in ("", ":memory:") or "mode=memory" in url:
        return None
    return os.path.abspath(parsed.path) + ".lock"


def lock_for(url: str) -> StoreLock:
    path = lock_path(url)
    return FileLock(path) if path is not None else NoLock()


def check_not_running(url: str) -> None:
    """Raise ConsoleRunning when a console holds the store's lock now.  Only looks: creates
    nothing, so it can run before the start-up checks (a busy port is most often that console)."""
    path = lock_path(url)
    if path is None:
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return  # no lock file: no console ever ran on this store (or it is unreadable: Core says)
    try:
        if not _try_lock(fd):
            raise ConsoleRunning(f"file {path[: -len('.lock')]}", read_holder(path))
        _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows only
        import msvcrt

        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
        except OSError:
            return False
        return True
    import fcntl

    # flock, not lockf: flock belongs to this open file, so a second Core in the same process
    # is refused too, and closing another descriptor of the file cannot drop it.
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover - Windows only
        import msvcrt

        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def read_holder(path: str) -> dict:
    """What the lock file says about its holder ({} when unreadable: it is information only)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(4096) or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class FileLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the console lock {self.path}: {exc.strerror}") from exc
        if not _try_lock(fd):
            os.close(fd)
            raise ConsoleRunning(f"file {self.path[: -len('.lock')]}", read_holder(self.path))
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # the file stays: removing it would let a newcomer lock a name another one has open
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)
