"""Find and end what a worker's jobs left running (POSIX).  Used by the guardian process when its
worker dies, and by a worker that starts after a crash.

Two marks identify a job's processes, so a process is never killed for its pid alone:

- the tag: every job starts with ``JOBTRIGGER_RUN_TAG=<life>:<run id>`` in its environment,
  where ``<life>`` is random per worker process.  Children inherit it, also the ones that
  ``setsid`` or daemonise, which leave the job's process group (Jenkins finds a build's
  processes by its BUILD_ID the same way).
- the process group: each job leads a group of its own, recorded as (group id, creation time
  of its leader).  A group counts only while its leader is either gone or still the recorded
  process (same creation time): once a whole group is gone its id can be reused, and a new
  process with that pid has a later creation time.  A member counts only when it was created
  at or after the recorded leader.

What neither catches: a process that clears its environment *and* leaves the group.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil

from worker import envpolicy

TAG_VAR = envpolicy.RUN_TAG  # reserved there: no job may set it
TERM_GRACE = 0.8  # seconds between SIGTERM and SIGKILL: the whole sweep must end within 2 s
ROUNDS = 5  # a process forking while we kill: scan again, at most this often
_CLOCK_SLACK = 0.05  # psutil's creation times are rounded to the clock tick (10 ms)


@dataclass(frozen=True)
class Seen:
    """What the decision needs to know about one process (plain values, no psutil)."""

    pid: int
    pgid: int
    created: float
    tag: str | None


def is_leftover(p: Seen, life: str, groups: Mapping[int, float], own_pid: int) -> bool:
    """Whether P belongs to a job of the worker life LIFE, or to one of GROUPS (group id ->
    creation time of its leader, as recorded at spawn)."""
    if p.pid == own_pid:
        return False
    if p.tag is not None and life and p.tag.startswith(life + ":"):
        return True
    leader_created = groups.get(p.pgid)
    return leader_created is not None and p.created >= leader_created - _CLOCK_SLACK


def trusted_groups(
    groups: Mapping[int, float], leaders: Mapping[int, float | None]
) -> dict[int, float]:
    """The recorded GROUPS still safe to act on, given LEADERS (group id -> creation time of
    the process now holding that pid, None when no process has it)."""
    out = {}
    for pgid, created in groups.items():
        now = leaders.get(pgid)
        if now is None or abs(now - created) <= _CLOCK_SLACK:
            out[pgid] = created
    return out


def _created(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _seen(proc: psutil.Process) -> Seen | None:
    try:
        pgid = os.getpgid(proc.pid)
        created = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None  # already dead, only not reaped
        try:
            tag = proc.environ().get(TAG_VAR)
        except (psutil.AccessDenied, OSError):
            tag = None  # another account's process: only the group rule applies
        return Seen(proc.pid, pgid, created, tag)
    except (psutil.Error, ProcessLookupError, PermissionError):
        return None


def find(life: str, groups: Mapping[int, float]) -> list[psutil.Process]:
    own = os.getpid()
    groups = trusted_groups(groups, {pgid: _created(pgid) for pgid in groups})
    found = []
    for proc in psutil.process_iter():
        seen = _seen(proc)
        if seen is not None and is_leftover(seen, life, groups, own):
            found.append(proc)
    return found


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def _gone(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)  # dead; its new parent reaps it
    except psutil.Error:
        return True


def _wait(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The ones still alive after up to TIMEOUT.  Not psutil.wait_procs: these are not our
    children, and a zombie whose new parent is slow to reap it would count as alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if not _gone(p)]
    return alive


def sweep(life: str, groups: Mapping[int, float], grace: float = TERM_GRACE) -> int:
    """SIGTERM everything found, SIGKILL what is left after GRACE, and again anything forked
    meanwhile; returns how many processes were ended.  Bounded: GRACE plus a few scans."""
    procs = find(life, groups)
    if not procs:
        return 0
    ended = {p.pid for p in procs}
    _signal(procs, signal.SIGTERM)
    alive = _wait(procs, grace)
    for _ in range(ROUNDS):
        _signal(alive, signal.SIGKILL)
        _wait(alive, 0.5)
        alive = find(life, groups)
        if not alive:
            break
        ended.update(p.pid for p in alive)
    return len(ended)
