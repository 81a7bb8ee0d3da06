"""Files and folders only the worker's own account may read: 0600 / 0700 on POSIX.

The worker's files hold its token (worker.ini), every output line of every job (the spool)
and what it logs.  They are created with these modes whatever the process umask, which the
worker never changes: the files its jobs create are theirs, under the umask they inherit.
The mode passed to os.open/mkdir only removes bits the umask removes too, so it is set again
explicitly; an existing folder or log file from an older worker is tightened the same way.

Windows: modes mean nothing there; the worker relies on the inherited ACL of the folder it is
installed in (docs/WINDOWS.md says what to check).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
POSIX = os.name == "posix"


def opener(path: str | os.PathLike[str], flags: int) -> int:
    """For ``open(..., opener=private.opener)``: a file created (or reopened) as 0600."""
    fd = os.open(path, flags, FILE_MODE)
    if POSIX:
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError:
            os.close(fd)
            raise
    return fd


def make_dir(path: Path) -> None:
    """PATH (and missing parents, with the default mode: they may be shared) as 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if POSIX:
        os.chmod(path, DIR_MODE)
