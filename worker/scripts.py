"""The allow-list: which script a NAME means, how to start it, and the catalogue for the hub.

Pure path logic (no processes), so every rule is unit-tested.  The hub only ever sends a name;
anything that is not a plain file name of a regular file directly inside the scripts folder is
refused, and the real path is checked again after resolving links so nothing can point out.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import unicodedata
from collections.abc import Collection
from pathlib import Path

# ':' catches drive letters and NTFS alternate streams; control chars never belong in a name.
_FORBIDDEN = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


# Windows opens the device, not a file, for these names with any extension ("nul.bat").
_DEVICES = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9\u00b9\u00b2\u00b3])", re.I)
# Control, format (e.g. U+202E right-to-left override), separator and surrogate code points.
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# cmd.exe parses a .bat/.cmd command line again; no quoting makes these inert in every
# position (%VAR% and !VAR! expand even inside quotes), so arguments holding them are refused.
CMD_METACHARS = frozenset('"%!^&|<>()\r\n')
_CMD_PATH_METACHARS = frozenset('"%!^&|<>\r\n')


class UnsafeScript(ValueError):
    """The name does not denote an allowed script; ``str(err)`` is the reason for the hub.
    Asking again with the same name gets the same answer (the decline is permanent)."""


class UnknownScript(UnsafeScript):
    """A safe name that is not (or not yet) a script in the folder: may change when an admin
    adds the file, so the decline is not permanent."""


def resolve(scripts_dir: Path, name: str, listing: Collection[str] | None = None) -> Path:
    """Return the real path of script NAME inside SCRIPTS_DIR, or raise :class:`UnsafeScript`.
    LISTING: the folder's names when the caller has just listed it (the catalogue scan)."""
    if not name or name in (".", ".."):
        raise UnsafeScript(f"script name {name!r} is empty or a folder reference")
    if ".." in name:
        raise UnsafeScript(f"script name {name!r} contains '..'; only plain file names are allowed")
    if _FORBIDDEN.search(name):
        raise UnsafeScript(
            f"script name {name!r} contains a path separator, drive letter or reserved "
            "character; only plain file names inside the scripts folder are allowed"
        )
    if name != name.strip() or name.endswith("."):
        # Windows silently drops trailing dots/spaces, so "a.ps1." would run "a.ps1".
        raise UnsafeScript(f"script name {name!r} has leading/trailing spaces or a trailing dot")
    if _DEVICES.fullmatch(name.split(".")[0].rstrip(" ")):
        raise UnsafeScript(f"script name {name!r} is a Windows device name")
    if any(unicodedata.category(c) in _INVISIBLE for c in name):
        raise UnsafeScript(
            f"script name {name!r} holds invisible or control characters; only names as "
            "listed in the scripts folder are allowed"
        )
    try:
        root = scripts_dir.resolve(strict=True)
    except OSError:
        raise UnknownScript(f"the worker's scripts folder {scripts_dir} does not exist") from None
    try:
        # Exactly as listed: not another case, a Windows 8.3 short name or another Unicode
        # normalisation that the file system would map to a file of a different name.
        listed = name in (os.listdir(root) if listing is None else listing)
    except OSError:
        listed = False
    if not listed:
        raise UnknownScript(f"unknown script {name!r}: not in the worker's scripts folder")
    candidate = root / name
    try:
        real = candidate.resolve(strict=True)
    except OSError:
        raise UnknownScript(
            f"unknown script {name!r}: not in the worker's scripts folder"
        ) from None
    if real.parent != root:
        raise UnsafeScript(f"script {name!r} is a link that points outside the scripts folder")
    if not real.is_file():
        raise UnknownScript(f"script {name!r} is not a regular file")
    return real


def command(
    script: Path,
    args: list[str],
    interpreters: dict[str, list[str]],
    *,
    frozen: bool | None = None,
    executable: str | None = None,
) -> list[str]:
    """The argv that runs SCRIPT: never a shell, arguments passed as a list."""
    frozen = getattr(sys, "frozen", False) if frozen is None else frozen
    executable = executable or sys.executable
    ext = script.suffix.lower()
    if ext == ".py":
        if frozen:
            # The packaged worker carries its own Python: it runs the script via runpy.
            return [executable, "--run-script", str(script), *args]
        # -u: unbuffered, so output streams live instead of arriving in 8 KiB lumps.
        return [executable, "-u", str(script), *args]
    if ext in interpreters:
        return [*interpreters[ext], str(script), *args]
    return [str(script), *args]


def runs_through_cmd(script: Path, interpreters: dict[str, list[str]]) -> bool:
    """Whether cmd.exe parses the command line (a .bat/.cmd, or an interpreter that is cmd)."""
    ext = script.suffix.lower()
    if ext in (".bat", ".cmd"):
        return True
    program = interpreters.get(ext, [""])[0]
    return re.sub(r"^.*[\\/]", "", program).lower() in ("cmd", "cmd.exe")


def argument_problem(
    script: Path, args: list[str], interpreters: dict[str, list[str]]
) -> str | None:
    """Why ARGS cannot be passed to SCRIPT (a reason for the hub), or None."""
    for i, arg in enumerate(args):
        if "\x00" in arg or any(unicodedata.category(c) == "Cs" for c in arg):
            return f"argument {i + 1} holds a NUL or an unpaired surrogate: no program gets those"
    if not runs_through_cmd(script, interpreters):
        return None
    # The "BatBadBut" class: cmd.exe re-parses the line that CreateProcess received, so an
    # argument like 'x" & calc & "' or '%PATH%' would run or expand something.
    for i, arg in enumerate(args):
        bad = sorted(set(arg) & CMD_METACHARS)
        if bad:
            shown = " ".join(repr(c) for c in bad)
            return (
                f"argument {i + 1} holds {shown}, which cmd.exe would interpret in a "
                f"{script.suffix or 'cmd'} script; pass such values another way (a file, or a "
                ".ps1 / .py script)"
            )
    bad = sorted(set(str(script)) & _CMD_PATH_METACHARS)
    if bad:
        return f"the script's path holds {' '.join(map(repr, bad))}, which cmd.exe would interpret"
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def catalogue(scripts_dir: Path) -> list[dict[str, str]]:
    """Name and sha256 of every runnable script, sorted; empty when the folder is missing."""
    return Catalogue(scripts_dir).scan()


class Catalogue:
    """A scripts folder's catalogue, scanned again cheaply: a script is hashed again only when
    its real path, size or modification time changed (the worker rescans at every heartbeat,
    so scripts added or changed after it connected are offered without a restart)."""

    def __init__(self, scripts_dir: Path) -> None:
        self.scripts_dir = scripts_dir
        self._known: dict[str, tuple[tuple[str, int, int], str]] = {}  # name -> (stat key, sha)

    def _stat_all(self) -> dict[str, tuple[Path, tuple[str, int, int]]]:
        """name -> (real path, (real path, size, mtime)) of every runnable script."""
        try:
            children = sorted(self.scripts_dir.iterdir())
        except OSError:
            return {}
        out = {}
        listing = {child.name for child in children}
        for child in children:
            try:
                real = resolve(self.scripts_dir, child.name, listing)
                st = real.stat()
            except (UnsafeScript, OSError):
                continue  # links out, folders, unreadable files: not offered to the hub
            out[child.name] = (real, (str(real), st.st_size, st.st_mtime_ns))
        return out

    def stale(self) -> bool:
        """Whether a scan would differ from the last one (names, paths, sizes, times): cheap,
        no hashing, so it can run on the event loop at every heartbeat."""
        now = self._stat_all()
        return now.keys() != self._known.keys() or any(
            self._known[name][0] != key for name, (_, key) in now.items()
        )

    def scan(self) -> list[dict[str, str]]:
        entries, known = [], {}
        for name, (real, key) in self._stat_all().items():
            cached = self._known.get(name)
            try:
                digest = cached[1] if cached and cached[0] == key else sha256_of(real)
            except OSError:
                continue
            known[name] = (key, digest)
            entries.append({"name": name, "sha256": digest})
        self._known = known
        return entries
