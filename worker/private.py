"""Files and folders only this program's own account may read: 0600 / 0700 on POSIX.

One helper for both sides (stdlib only: the worker uses it, the console imports it from here).
The worker's files hold its token (worker.ini), every output line of every job (the spool) and
what it logs; the console's hold token hashes, jobs' arguments and environment (the database),
logs and the worker.ini files it writes.  They are created with these modes whatever the
process umask, which is never changed: files that jobs create are theirs, under the umask they
inherit.  The mode passed to os.open/mkdir only removes bits the umask removes too, so it is
set again explicitly.

What another local account may have planted where one of these files goes (a shared or
world-writable folder) is refused, not followed: a symbolic link (``O_NOFOLLOW``: the token
would be written wherever it points), and a file or folder another account owns (it could read
it back or chmod it open again).  The error says whose it is; nothing is written.

Windows: modes and owners are not checked here; what protects these files is the ACL of the
folder they are in (docs/WINDOWS.md says what to check).
"""

from __future__ import annotations

import errno
import logging.handlers
import os
import stat
from io import TextIOWrapper
from pathlib import Path
from typing import cast

FILE_MODE = 0o600
DIR_MODE = FOLDER_MODE = 0o700
POSIX = os.name == "posix"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class NotPrivate(PermissionError):
    """A path that cannot be made private: a link, or another account's file or folder."""


def _check_owned(path: str | os.PathLike[str], st: os.stat_result, what: str) -> None:
    if POSIX and st.st_uid != os.geteuid():
        raise NotPrivate(
            errno.EPERM,
            f"{what} belongs to another account (uid {st.st_uid}), so it cannot be made "
            "private; remove it or choose another folder",
            str(path),
        )


def opener(path: str | os.PathLike[str], flags: int) -> int:
    """For ``open(..., opener=private.opener)``: a file created (or reopened) as 0600.  A link
    or another account's file at PATH is refused (:class:`NotPrivate`)."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _NOFOLLOW:  # what O_NOFOLLOW says about a link
            raise NotPrivate(
                errno.EPERM,
                "is a symbolic link; a private file is never written through one (another "
                "account may have placed it): remove it",
                str(path),
            ) from None
        raise
    try:
        if POSIX:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotPrivate(errno.EPERM, "is not a regular file", str(path))
            _check_owned(path, st, "the file")
            if st.st_mode & 0o777 != FILE_MODE:
                os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def foreign(path: Path) -> str | None:
    """Why a file another program (SQLite) will open at ``path`` is not safely ours: it is
    another account's (followed through links: a link to a file of our own is the admin's
    choice) or a link to nothing (the program would create the file where it points).
    None when it is ours or absent."""
    if not POSIX:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is a link to a file that does not exist" if os.path.islink(path) else None
    if st.st_uid != os.geteuid():
        return f"belongs to another account (uid {st.st_uid})"
    return None


def make_dir(path: Path) -> None:
    """PATH as a 0700 folder of ours (missing parents with the default mode: they may be
    shared).  An existing one is tightened; a link or another account's folder is refused."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if POSIX:
        _own_folder(path)


def _own_folder(path: Path) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise NotPrivate(
            errno.EPERM,
            "is a symbolic link, not a folder of this account's: remove it",
            str(path),
        )
    _check_owned(path, st, "the folder")
    if st.st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def private_folder(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700; folders that already existed (a home,
    a path the admin chose) keep their mode."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made by someone else meanwhile: not ours to change
            continue
        if POSIX:
            os.chmod(folder, FOLDER_MODE)
    return path


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file (an existing file is replaced and narrowed)."""
    with open(path, "w", encoding="utf-8", opener=opener) as f:
        f.write(text)


def create_private(path: Path) -> bool:
    """Create an empty 0600 file unless one exists; True when it was created."""
    try:
        fd = opener(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def tighten(path: Path) -> int | None:
    """Take group and other access away from an existing file or folder; returns its old mode
    bits when they changed (for the log), else None.  Not ours to change (another owner): None."""
    if not POSIX:
        return None
    try:
        st = os.lstat(path)
        mode = st.st_mode & 0o777
        # a link is not followed (it could make us narrow a system file it points to), nor is
        # another account's file changed: the private open that follows refuses both
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or mode & 0o077 == 0:
            return None
        os.chmod(path, mode & 0o700)
    except OSError:  # gone meanwhile: the open that follows will tell
        return None
    return mode


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file (the first and each one after a rollover) is 0600."""

    def _open(self) -> TextIOWrapper:
        # typeshed types open() with a non-literal mode as IO[Any]; the handler's mode is text
        return cast(
            TextIOWrapper,
            open(
                self.baseFilename,
                self.mode,
                encoding=self.encoding,
                errors=self.errors,
                opener=opener,
            ),
        )
