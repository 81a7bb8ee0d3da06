"""Files and folders only the console's own account may read (POSIX: 0600 files, 0700 folders).

The database (token hashes, job arguments and environment), the logs and every file that holds a
worker token are created through here, so their mode never depends on the process umask: a file
is created with 0600 and then set to exactly that (a umask can only take bits away, and 0 takes
none), a folder the console creates is set to 0700.  Folders that already exist (the home
folder, a path the admin chose) are left alone.  ``tighten`` narrows a file made by an older
version.  On Windows these calls only create: a file in the user's profile folders inherits an
owner-only ACL (docs/WINDOWS.md).
"""

from __future__ import annotations

import logging.handlers
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700
POSIX = os.name != "nt"


def private_folder(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700; existing folders keep their mode."""
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


def opener(path: str, flags: int) -> int:
    """For ``open(..., opener=opener)``: a file this call creates is 0600 whatever the umask."""
    fd = os.open(path, flags, FILE_MODE)
    if POSIX and flags & os.O_CREAT:
        st = os.fstat(fd)
        if st.st_size == 0 and st.st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    return fd


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file (an existing file is replaced and narrowed)."""
    with open(path, "w", encoding="utf-8", opener=opener) as f:  # "w" truncates: size 0
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
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077 == 0:
            return None
        os.chmod(path, mode & 0o700)
    except OSError:  # gone, or owned by another account: the open that follows will tell
        return None
    return mode


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose every file (the first and each one after a rollover) is 0600."""

    def _open(self):
        return open(
            self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, opener=opener
        )
