"""Chaos cases 1 and 5: real console core (store, hub, scheduler), real worker processes.

1. ``kill -9`` of the worker while a job runs: within 2 s no process of the job is alive (by pid
   and by a psutil scan of the job's tag), the run becomes ``lost``, is retried per the job's
   policy, and no two attempts ever run at once (each process records start/stop with its pid).
   Also the worse case where the guardian is killed with the worker: the next start of the
   worker ends what was left, and a pid that is still the recorded process is the only one hit.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from desktop.service import Core
from tests.conftest import timeout
from tests.e2e.conftest import FAST, Stack, WorkerProcs, prepare_db
from worker.leftovers import TAG_VAR

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process trees")

HERE = Path(__file__).resolve().parent
TREE = HERE / "scripts" / "chaos_tree.py"
ORPHAN_DEADLINE = 2.0  # seconds: the promise in docs/SECURITY.md


@pytest_asyncio.fixture
async def stack(tmp_path, request):
    """The e2e stack.  Parametrized indirectly with N, the console waits N s of silence before
    it calls a run lost itself (4 s otherwise), so what reports "lost" is not a race."""
    grace = str(getattr(request, "param", FAST["lost_grace_seconds"]))
    url = f"sqlite:///{tmp_path / 'chaos.db'}"
    prepare_db(url, {**FAST, "lost_grace_seconds": grace})
    core = Core(url, "127.0.0.1", 0)
    await core.start()
    workers = WorkerProcs(tmp_path)
    try:
        yield Stack(core, workers)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, workers.stop_all)
        await core.stop()


def records(path: Path) -> list[tuple[str, str, int, float]]:
    out = []
    for line in path.read_text().splitlines():
        what, role, pid, at = line.split()
        out.append((what, role, int(pid), float(at)))
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tagged(prefix: str) -> list[int]:
    """Every live process whose environment carries a run tag of this worker life."""
    found = []
    for proc in psutil.process_iter():
        try:
            tag = proc.environ().get(TAG_VAR, "")
            if tag.startswith(prefix) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def guardian_of(worker_pid: int) -> psutil.Process:
    children = psutil.Process(worker_pid).children()
    found = [p for p in children if "worker.guardian" in " ".join(p.cmdline())]
    assert len(found) == 1, found
    return found[0]


async def started_tree(path: Path, seconds: float = 30) -> list[int]:
    """The pids of script, child and grandchild once all three recorded their start."""
    deadline = time.monotonic() + timeout(seconds)
    while time.monotonic() < deadline:
        if path.exists():
            pids = [pid for what, _, pid, _ in records(path) if what == "start"]
            if len(pids) == 3:
                return pids
        await asyncio.sleep(0.05)  # another process writes the file: nothing to await
    raise AssertionError(f"the job's three processes did not start: {path.read_text()!r}")


async def gone_within(pids: list[int], seconds: float) -> float:
    """Seconds until none of PIDS is alive; fails after SECONDS."""
    t0 = time.monotonic()
    while any(alive(p) for p in pids):
        if time.monotonic() - t0 > seconds:
            left = [p for p in pids if alive(p)]
            for p in left:  # do not leave them to the next test
                os.kill(p, signal.SIGKILL)
            raise AssertionError(f"processes {left} outlived the worker by {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def no_overlap(recs: list[tuple[str, str, int, float]], killed_at: float) -> None:
    """Attempt 1's processes all stopped (recorded, or killed by then) before attempt 2's start."""
    starts = [r for r in recs if r[0] == "start" and r[1] == "script"]
    assert len(starts) == 2, recs
    second = starts[1][3]
    first_pids = {pid for what, _, pid, _ in recs if what == "start"} - {starts[1][2]}
    for what, role, pid, at in recs:
        if what == "stop":
            assert pid in first_pids and at < second, f"{role} {pid} stopped at {at} > {second}"
    assert killed_at < second


async def setup(stack: Stack, tmp_path: Path) -> tuple[int, Path]:
    await stack.add_worker("w1", start=False)
    shutil.copy(TREE, tmp_path / "w1" / "scripts")
    stack.workers.start("w1")
    await stack.online("w1")
    record_file = tmp_path / "tree.log"
    job_id = await stack.job(
        name="tree",
        script="chaos_tree.py",
        args=[str(record_file)],
        max_retries=1,
        retry_delay_seconds=0,
    )
    return job_id, record_file


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", [120], indirect=True)
async def test_kill9_worker_leaves_no_orphan_run_lost_then_retried_never_twice(stack, tmp_path):
    job_id, record_file = await setup(stack, tmp_path)
    first = await stack.core.run_now(job_id)
    pids = await started_tree(record_file)
    await stack.until_state(first, "running")
    life = (tmp_path / "w1" / "spool" / "life.json").read_text()
    prefix = life.split('"life": "')[1].split('"')[0] + ":"
    assert sorted(tagged(prefix)) == sorted(pids)  # the tag marks all three, daemon included
    worker_pid = stack.workers.procs["w1"].pid
    guardians = [guardian_of(worker_pid).pid]

    killed_at = time.time()
    stack.workers.kill9("w1")
    took = await gone_within(pids, ORPHAN_DEADLINE)
    assert tagged(prefix) == []
    print(f"\n[chaos 1] job's 3 processes gone {took:.3f} s after kill -9 of the worker")
    await gone_within(guardians, 5)  # the guardian swept and left

    stack.workers.start("w1")  # the restarted worker reports the run it lost
    lost = await stack.until_state(first, "lost")
    assert "worker stopped while the script ran" in lost.reason, lost.reason

    # the retry policy: attempt 2 runs (quickly: the record file exists) and succeeds
    async def retried():
        runs = await stack.runs(job_id)
        return len(runs) == 2 and runs[1].state == "succeeded" and runs

    from tests.e2e.conftest import wait_until

    runs = await wait_until(stack.core, retried, 60, "the retry to succeed")
    assert runs[1].attempt == 2 and runs[1].trigger == "retry"
    no_overlap(records(record_file), killed_at)


@pytest.mark.asyncio
@pytest.mark.parametrize("stack", [120], indirect=True)
async def test_worker_restart_ends_what_a_dead_worker_and_guardian_left(stack, tmp_path):
    job_id, record_file = await setup(stack, tmp_path)
    first = await stack.core.run_now(job_id)
    pids = await started_tree(record_file)
    await stack.until_state(first, "running")
    worker = stack.workers.procs["w1"]
    guardian = guardian_of(worker.pid)
    guardian.kill()  # the host killed both (an OOM killer, `kill -9 -1` by a careless admin)
    await gone_within([guardian.pid], timeout(5))  # a zombie of the worker's: dead is enough
    stack.workers.kill9("w1")
    await asyncio.sleep(0.5)  # the negative control: nothing is watching now
    assert all(alive(p) for p in pids), "without guardian the tree should still run here"
    # an unrelated process in the script's recorded group?  It cannot exist while the group
    # does; the pid-reuse rule is checked in tests/worker/test_leftovers.py.
    t0 = time.monotonic()
    stack.workers.start("w1")
    await gone_within(pids, 15)
    print(f"\n[chaos 1b] restarted worker ended the tree {time.monotonic() - t0:.2f} s after start")
    lost = await stack.until_state(first, "lost")
    assert "3 process(es) it left were ended" in lost.reason, lost.reason


# --- case 5: the worker's disk is full ---------------------------------------------------------

NUMBERED = HERE / "scripts" / "numbered.py"
# About 1.5 MB of output: the spool's segment fills at 256 KiB, then 1 MiB is held in memory
# and the worker stops reading, and the rest (about 130 KB) fits in the pipe and the reader's
# buffer: the script exits *during* the stall, and what the pipe holds must be read after it.
LINES = 17_500
FILE_LIMIT = 256 * 1024  # RLIMIT_FSIZE: no file of the worker may grow past this (EFBIG)


def expected_lines() -> list[str]:
    return [
        f"line {i:07d} of a job that fills the worker's disk ........................."
        for i in range(LINES)
    ]


@pytest.mark.asyncio
async def test_disk_full_worker_holds_says_why_and_resumes_every_line_once(stack, tmp_path):
    """The disk is "full" for the worker only: its RLIMIT_FSIZE is lowered from outside
    (prlimit, unprivileged for one's own processes), so writing a spool segment past 256 KiB
    fails with EFBIG as a full disk fails with ENOSPC.  Raised again = space is back."""
    from desktop.store import queries
    from tests.e2e.conftest import wait_until

    await stack.add_worker("w1", start=False)
    shutil.copy(NUMBERED, tmp_path / "w1" / "scripts")
    worker = stack.workers.start("w1")
    await stack.online("w1")
    job_id = await stack.job(name="numbered", script="numbered.py", args=[str(LINES)])
    proc = psutil.Process(worker.pid)
    soft, hard = proc.rlimit(psutil.RLIMIT_FSIZE)
    t0 = time.monotonic()
    proc.rlimit(psutil.RLIMIT_FSIZE, (FILE_LIMIT, hard))
    try:
        run_id = await stack.core.run_now(job_id)

        async def stalled():
            status = {s.name: s for s in stack.core.worker_status()}["w1"]
            return status.problem

        problem = await wait_until(stack.core, stalled, 30, "the worker to report its disk")
        assert "cannot write to the spool" in problem and "File too large" in problem, problem
        assert "Disk full?" in stack.workers.log_text("w1")
        # stalled, not lost: longer than the lost grace (4 s here), the run stays running
        await asyncio.sleep(5)  # the thing checked is that nothing happens for a while
        assert (await stack.run(run_id)).state == "running"
        spooled = sum(f.stat().st_size for f in (tmp_path / "w1" / "spool").rglob("*.jsonl"))
        assert spooled > 0  # what was written before the disk filled is kept
    finally:
        proc.rlimit(psutil.RLIMIT_FSIZE, (soft, hard))  # space is back
    record = await stack.until_state(run_id, ("succeeded", "failed"), seconds=60)
    took = time.monotonic() - t0
    assert record.state == "succeeded" and not record.reason, record.reason

    async def cleared():
        return not {s.name: s for s in stack.core.worker_status()}["w1"].problem

    await wait_until(stack.core, cleared, 10, "the worker's problem to clear")
    chunks = await stack.core.db.call(queries.read_output, run_id)
    seqs = [c.seq for c in chunks]
    assert seqs == sorted(set(seqs))  # no seq twice
    lines = "".join(c.text for c in chunks if c.stream == "stdout").splitlines()
    expected = expected_lines()
    lost = len(set(expected) - set(lines))
    duplicated = len(lines) - len(set(lines))
    assert (lost, duplicated) == (0, 0)
    assert lines == expected
    print(f"\n[chaos 5] {len(lines)} lines checked, {lost} lost, {duplicated} dup, {took:.1f} s")
