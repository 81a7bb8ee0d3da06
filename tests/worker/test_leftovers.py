"""Which processes a sweep may end (pure decisions), and the sweep against real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from worker import guardian, leftovers
from worker.leftovers import Seen, is_leftover, trusted_groups

LIFE = "abc123"


def test_tagged_process_of_this_life_is_a_leftover_even_outside_every_group():
    assert is_leftover(Seen(50, 50, 10.0, f"{LIFE}:7"), LIFE, {}, own_pid=1)


def test_another_life_or_a_lookalike_tag_is_not():
    assert not is_leftover(Seen(50, 50, 10.0, "zzz:7"), LIFE, {}, own_pid=1)
    assert not is_leftover(Seen(50, 50, 10.0, f"{LIFE}7:1"), LIFE, {}, own_pid=1)
    assert not is_leftover(Seen(50, 50, 10.0, f"{LIFE}:1"), "", {}, own_pid=1)


def test_group_member_counts_only_when_created_after_the_recorded_leader():
    groups = {40: 100.0}
    assert is_leftover(Seen(41, 40, 100.5, None), LIFE, groups, own_pid=1)
    assert not is_leftover(Seen(42, 40, 90.0, None), LIFE, groups, own_pid=1)
    assert not is_leftover(Seen(43, 44, 200.0, None), LIFE, groups, own_pid=1)


def test_the_sweeper_never_picks_itself():
    assert not is_leftover(Seen(9, 9, 1.0, f"{LIFE}:1"), LIFE, {9: 0.0}, own_pid=9)


def test_a_reused_leader_pid_voids_its_group():
    # pid 40 now belongs to a process created later than the recorded leader: not ours
    assert trusted_groups({40: 100.0}, {40: 500.0}) == {}
    # the recorded leader itself, or no process with that pid (members may remain): ours
    assert trusted_groups({40: 100.0, 41: 7.0}, {40: 100.0, 41: None}) == {40: 100.0, 41: 7.0}


def _sleeper(env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=env, **kwargs
    )


def test_sweep_ends_tagged_and_grouped_processes_and_spares_a_stranger():
    tagged = _sleeper({**os.environ, leftovers.TAG_VAR: f"{LIFE}x:1"}, start_new_session=True)
    grouped = _sleeper(process_group=0)
    stranger = _sleeper(process_group=0)  # same kind of process, not recorded, no tag
    try:
        created = psutil.Process(grouped.pid).create_time()
        t0 = time.monotonic()
        n = leftovers.sweep(f"{LIFE}x", {grouped.pid: created})
        assert n == 2 and time.monotonic() - t0 < 2.0
        assert tagged.wait(5) == -15 and grouped.wait(5) == -15
        assert stranger.poll() is None
    finally:
        for p in (tagged, grouped, stranger):
            p.kill()
            p.wait()


def test_sweep_kills_what_ignores_sigterm_within_two_seconds():
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    stubborn = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, leftovers.TAG_VAR: f"{LIFE}y:1"},
        stdout=subprocess.PIPE,
    )
    try:
        assert stubborn.stdout.readline() == b"ready\n"  # its SIGTERM handler is in place
        t0 = time.monotonic()
        assert leftovers.sweep(f"{LIFE}y", {}) == 1
        assert stubborn.wait(5) == -9 and time.monotonic() - t0 < 2.0
    finally:
        stubborn.kill()
        stubborn.wait()
        stubborn.stdout.close()


def test_previous_life_reads_records_and_skips_damaged_ones(tmp_path):
    g = guardian.Guardian(tmp_path, life="L1")
    g.write_life()
    (tmp_path / "run-3").mkdir()
    (tmp_path / "run-3" / guardian.PROCESS_FILE).write_text(
        '{"pid": 12, "created": 5.5, "life": "L1"}'
    )
    (tmp_path / "run-4").mkdir()
    (tmp_path / "run-4" / guardian.PROCESS_FILE).write_text("{not json")
    life, records = guardian.previous_life(tmp_path)
    assert life == "L1"
    assert records == {3: guardian.ProcessRecord(3, 12, 5.5, "L1")}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX guardian")
def test_guardian_ends_the_recorded_group_when_its_worker_end_closes(tmp_path):
    """The guardian itself, for real: a job process recorded through the pipe dies at EOF."""
    g = guardian.Guardian(tmp_path)
    job = _sleeper(process_group=0)
    try:
        created = psutil.Process(job.pid).create_time()
        g.spawned(5, job.pid)
        g.spawned(6, job.pid)
        g.ended(6)
        g.close()  # what the kernel does to the pipe when the worker dies
        assert job.wait(5) == -15
        # it recorded the process for a later life: pid and creation time, not the pid alone
        _, records = guardian.previous_life(tmp_path)
        assert records == {5: guardian.ProcessRecord(5, job.pid, created, g.life)}
    finally:
        job.kill()
        job.wait()


def test_a_spool_whose_worker_still_runs_is_not_swept(tmp_path):
    """A second worker started on the same spool must not end the first one's jobs."""
    other = _sleeper()
    try:
        created = psutil.Process(other.pid).create_time()
        life = {"life": "L2", "pid": other.pid, "created": created}
        (tmp_path / guardian.LIFE_FILE).write_text(json.dumps(life))
        with pytest.raises(guardian.SpoolInUse, match=f"another worker \\(pid {other.pid}\\)"):
            guardian.sweep_previous_life(tmp_path)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    # once it is gone (a reused pid would have another creation time), the sweep goes ahead
    assert guardian.sweep_previous_life(tmp_path) == (0, {})


def test_the_guardian_skips_records_of_jobs_that_ended_in_the_same_batch():
    from worker.guardian import net_of

    batch = [b"+ 1 100", b"+ 2 200", b"- 1", b"junk", b"- 3", b"+ 4 400", b"- 4", b"+ 4 401"]
    # 1 and the first 4 started and ended here: nothing to record or delete for them; 3 began
    # in an earlier batch, so its record goes; 2 and the second 4 still run
    assert net_of(batch) == [("+", 2, 200), ("-", 3, 0), ("+", 4, 401)]
    assert net_of([b"- 9"]) == [("-", 9, 0)]
    assert net_of([b"+ x y", b"+"]) == []
