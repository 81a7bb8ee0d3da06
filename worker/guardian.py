"""A script never outlives its worker (POSIX): the guardian process and the worker's handle on it.

The worker starts one small guardian process when it starts, in a process group of its own,
and keeps the write end of a pipe to it.  The guardian only reads: ``+ RUN PID`` when a job
starts (its process leads a group of its own), ``- RUN`` when it ended.  When the pipe reaches
end of file the worker is gone (exited, crashed, ``kill -9``: the kernel closes the pipe in
every case), and the guardian ends every process carrying this worker life's tag plus the
recorded process groups (worker/leftovers.py), then exits.  Cost per job: one short pipe
write at spawn and one at the end (about 5 µs each); no extra process per job.

Why not the alternatives (measured and weighed in docs/SECURITY.md, "processes outlive
nothing"): PR_SET_PDEATHSIG needs a launcher or a preexec_fn per spawn (no more vfork) and
reaches only the direct child, not a daemonised grandchild; a Linux child subreaper keeps
orphans as the worker's children only while it lives and makes it reap strangers, which fights
asyncio's per-pid child watcher; neither exists on macOS.

The guardian also writes each record (pid and creation time) to ``run-<id>/process.json`` in
the spool, and the worker its life's tag to ``life.json``, so a worker that starts after a
crash that took its guardian too (or a host that killed both) ends what its previous life
left: see :func:`sweep_previous_life`.
Windows needs none of this: every job is in a kill-on-close Job Object (worker/winproc.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from worker import leftovers, private

log = logging.getLogger(__name__)

PROCESS_FILE = "process.json"
LIFE_FILE = "life.json"
GUARDIAN_FLAG = "--guardian"
# Run by path-independent import, so an in-place checkout and an installed package both work.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from worker.guardian import main; sys.exit(main(sys.argv[2:]))"
)


def new_life() -> str:
    return secrets.token_hex(8)


def run_tag(life: str, run_id: int) -> str:
    return f"{life}:{run_id}"


# --- the guardian process ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRecord:
    run_id: int
    pid: int
    created: float  # the process's creation time (psutil): a reused pid never matches it
    life: str


def main(argv: list[str]) -> int:
    """The guardian: ``[life, spool_dir]``; reads job records on stdin until end of file, then
    sweeps.  It, not the worker, takes each process's creation time and writes the spool's
    record: that work stays off the worker's event loop, and a job that ends before it is read
    needs no record at all."""
    life = argv[0] if argv else ""
    spool_dir = Path(argv[1]) if len(argv) > 1 else None
    for sig in (signal.SIGINT, signal.SIGHUP):  # a terminal's Ctrl+C or hangup is for the worker
        signal.signal(sig, signal.SIG_IGN)
    groups: dict[int, tuple[int, float]] = {}
    for batch in _batches(sys.stdin.fileno()):
        for sign, run_id, pid in net_of(batch):
            try:
                if sign == "+":
                    created = psutil.Process(pid).create_time()
                    groups[run_id] = (pid, created)
                    if spool_dir is not None:
                        _write_record(spool_dir, ProcessRecord(run_id, pid, created, life))
                elif groups.pop(run_id, None) and spool_dir is not None:
                    with contextlib.suppress(OSError):
                        (spool_dir / f"run-{run_id}" / PROCESS_FILE).unlink(missing_ok=True)
            except psutil.Error:
                continue  # a job already gone
    ended = leftovers.sweep(life, dict(groups.values()))
    if ended:
        print(
            f"guardian: worker gone; ended {ended} process(es) its jobs left running",
            file=sys.stderr,
            flush=True,
        )
    return 0


def _batches(fd: int) -> Iterator[list[bytes]]:
    """The complete lines that arrived together, batch by batch, until end of file."""
    rest = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return
        *lines, rest = (rest + chunk).split(b"\n")
        if lines:
            yield lines


def net_of(lines: list[bytes]) -> list[tuple[str, int, int]]:
    """``(sign, run, pid)`` for what still matters once a batch is read whole: a job whose end
    came in the same batch as its start needs no record (busy workers send many short jobs
    faster than the guardian reads; writing and deleting each record was most of its work).
    Lines it does not know are skipped."""
    parsed: list[tuple[str, int, int]] = []
    for raw in lines:
        parts = raw.split()
        try:
            if parts[0] == b"+":
                parsed.append(("+", int(parts[1]), int(parts[2])))
            elif parts[0] == b"-":
                parsed.append(("-", int(parts[1]), 0))
        except (IndexError, ValueError):
            continue
    last_end = {run: i for i, (sign, run, _) in enumerate(parsed) if sign == "-"}
    started_here: set[int] = set()
    out = []
    for i, (sign, run, pid) in enumerate(parsed):
        if sign == "+" and last_end.get(run, -1) > i:
            started_here.add(run)
            continue
        if sign == "-" and run in started_here:
            started_here.discard(run)  # its start was dropped just above
            continue
        out.append((sign, run, pid))
    return out


def _write_record(spool_dir: Path, rec: ProcessRecord) -> None:
    folder = spool_dir / f"run-{rec.run_id}"
    try:
        # Private like the rest of the spool: a record planted here would aim the next life's
        # sweep at a process.  No fsync: this must outlive the worker, not the machine.
        private.make_dir(folder)
        private.write_private_text(
            folder / PROCESS_FILE,
            json.dumps({"pid": rec.pid, "created": rec.created, "life": rec.life}),
        )
    except OSError as exc:
        print(f"guardian: cannot record run {rec.run_id} in {folder}: {exc}", file=sys.stderr)


# --- the worker's side ---------------------------------------------------------------------------


def _command(life: str, spool_dir: Path) -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, GUARDIAN_FLAG, life, str(spool_dir)]
    root = str(Path(__file__).resolve().parents[1])
    return [sys.executable, "-c", _BOOT, root, life, str(spool_dir)]


class Guardian:
    """The worker's end: starts the guardian, tells it each job's process (one pipe write)."""

    def __init__(self, spool_dir: Path, life: str | None = None) -> None:
        self.spool_dir = spool_dir
        self.life = life or new_life()
        self._proc: subprocess.Popen[bytes] | None = None
        self._live: dict[int, int] = {}  # run id -> pid of its process (group leader)

    def tag(self, run_id: int) -> str:
        return run_tag(self.life, run_id)

    def write_life(self) -> None:
        private.write_private_text(
            self.spool_dir / LIFE_FILE,
            json.dumps(
                {
                    "life": self.life,
                    "pid": os.getpid(),
                    "created": psutil.Process().create_time(),
                    "boot": psutil.boot_time(),
                }
            ),
        )

    def start(self) -> None:
        """Start the guardian now (the worker does at start), not with the first job."""
        self._send("")

    def spawned(self, run_id: int, pid: int) -> None:
        """A job's process exists (called right after the spawn, before ``started``)."""
        self._live[run_id] = pid
        self._send(f"+ {run_id} {pid}\n")

    def ended(self, run_id: int) -> None:
        """The job's process tree is gone (the runner killed or reaped it)."""
        if self._live.pop(run_id, None) is not None:
            self._send(f"- {run_id}\n")

    def _start(self) -> subprocess.Popen[bytes]:
        kwargs: dict[Any, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {}
        proc = subprocess.Popen(
            _command(self.life, self.spool_dir),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=sys.version_info < (3, 11),
            **kwargs,
        )
        log.info("Guardian started (pid %s): jobs end with this worker", proc.pid)
        return proc

    def _send(self, line: str) -> None:
        for attempt in (1, 2):
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    log.warning("The guardian (pid %s) died; starting a new one", self._proc.pid)
                try:
                    self._proc = self._start()
                except OSError as exc:
                    log.error("Cannot start the guardian (%s): jobs may outlive a crash", exc)
                    return
                # the new one learns every job still running (the new line is among them)
                known = "".join(f"+ {run} {pid}\n" for run, pid in self._live.items())
                line = known if line.startswith("+") else known + line
            if not line:
                return
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(line.encode("ascii"))
                self._proc.stdin.flush()
                return
            except OSError:
                if attempt == 2:
                    log.error("Cannot reach the guardian: jobs may outlive a crash")

    def close(self, timeout: float = 5.0) -> None:
        """Clean stop: the guardian sweeps (what a job daemonised is ended too) and exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("The guardian (pid %s) did not finish its sweep in time", proc.pid)


# --- after a crash -------------------------------------------------------------------------------


def previous_life(spool_dir: Path) -> tuple[str, dict[int, ProcessRecord]]:
    """The tag of the worker life that used this spool before, and its jobs' process records
    (none after a reboot: pids and creation times from before it mean nothing now)."""
    life, boot, data = "", None, {}
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        data = json.loads((spool_dir / LIFE_FILE).read_text(encoding="utf-8"))
        life, boot = str(data["life"]), data.get("boot")
    if isinstance(boot, (int, float)) and abs(boot - psutil.boot_time()) > 2:
        return life, {}
    if _still_running(data):
        raise SpoolInUse(
            f"another worker (pid {data['pid']}) is running with the spool folder {spool_dir}: "
            "stop it, or give this worker its own spool_dir"
        )
    records: dict[int, ProcessRecord] = {}
    for path in spool_dir.glob(f"run-*/{PROCESS_FILE}"):
        try:
            run_id = int(path.parent.name[4:])
            data = json.loads(path.read_text(encoding="utf-8"))
            records[run_id] = ProcessRecord(
                run_id, int(data["pid"]), float(data["created"]), str(data["life"])
            )
        except (OSError, ValueError, TypeError, KeyError):
            log.warning("Ignoring a damaged process record %s", path)
    return life, records


class SpoolInUse(OSError):
    """The worker life recorded in the spool is still running: its jobs are not leftovers."""


def _still_running(data: dict[str, Any]) -> bool:
    try:
        pid, created = int(data["pid"]), float(data["created"])
        if pid == os.getpid():
            return False
        return bool(abs(psutil.Process(pid).create_time() - created) <= 0.05)
    except (KeyError, TypeError, ValueError, psutil.Error):
        return False


def sweep_previous_life(spool_dir: Path) -> tuple[int, dict[int, ProcessRecord]]:
    """End what the previous life left (its guardian died with it, or the host killed both).
    Returns how many processes were ended and the records of the runs that were in progress."""
    life, records = previous_life(spool_dir)
    lives = {life, *(r.life for r in records.values())} - {""}
    if not lives:
        return 0, records
    groups = {r.pid: r.created for r in records.values()}
    ended = 0
    for each in sorted(lives):
        ended += leftovers.sweep(each, groups)
        groups = {}  # the groups once is enough
    for rec in records.values():
        with contextlib.suppress(OSError):
            (spool_dir / f"run-{rec.run_id}" / PROCESS_FILE).unlink(missing_ok=True)
    return ended, records
