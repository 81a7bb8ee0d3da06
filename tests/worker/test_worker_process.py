"""A real `python -m worker` subprocess driven by a real hub over 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re

import psutil
import pytest

from tests.conftest import timeout
from tests.worker.hubfixture import connected_worker, start_worker, stop_worker, write_config

pytestmark = pytest.mark.asyncio


async def test_dispatch_streams_output_in_order_and_reports_exit_code(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        hello = hub.hellos[0]
        assert hello["name"] == "test-worker" and hello["token"] == "secret-token"
        names = {s["name"] for s in hello["scripts"]}
        assert {"echo_job.py", "numbered.py"} <= names
        assert all(re.fullmatch(r"[0-9a-f]{64}", s["sha256"]) for s in hello["scripts"])

        await hub.dispatch(1, "echo_job.py", "a b", "--x", env={"EXIT_CODE": "0"})
        await hub.dispatch(2, "echo_job.py", env={"EXIT_CODE": "3"})
        ok, bad = await hub.wait_finished(1), await hub.wait_finished(2)
        assert (ok["outcome"], ok["exit_code"]) == ("succeeded", 0)
        assert (bad["outcome"], bad["exit_code"]) == ("failed", 3)
        assert hub.ordered(1)[0].type == "started" and hub.ordered(1)[-1].type == "finished"
        assert [m["seq"] for m in hub.ordered(1)] == list(range(1, len(hub.ordered(1)) + 1))
        # arguments arrive as a list, untouched by any shell
        assert hub.text(1).startswith("arg: a b\narg: --x\n")
        assert "bad byte: \ufffd end\n" in hub.text(1)
        assert hub.text(1, "stderr") == "to stderr\n"
        assert "to stderr" not in hub.text(1)


async def test_timeout_kills_the_whole_process_tree(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(5, "spawner.py", timeout=timeout(5))
        await hub.wait_for(lambda: "grandchild" in hub.text(5))
        pids = [int(p) for p in re.findall(r"(?:child|grandchild) (\d+)", hub.text(5))]
        assert len(pids) == 2
        started = hub.ordered(5)[0]
        result = await hub.wait_finished(5)
        assert result["outcome"] == "timed_out"
        assert "timed out" in result["reason"]
        for pid in [started["pid"], *pids]:
            assert not _alive(pid), f"process {pid} survived the timeout"


async def test_cancel_stops_a_script_that_ignores_sigterm(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(7, "stubborn.py")
        await hub.wait_for(lambda: "ignoring SIGTERM" in hub.text(7))
        await hub.send("cancel", run_id=7, reason="admin pressed stop")
        result = await hub.wait_finished(7)
        assert result["outcome"] == "cancelled"
        assert result["reason"] == "admin pressed stop"
        assert not _alive(hub.ordered(7)[0]["pid"])


async def test_slots_decline_extra_dispatch_then_accept_when_free(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url, slots=1)):
        await hub.dispatch(10, "sleeper.py")
        await hub.wait_for(lambda: "sleeping" in hub.text(10))
        await hub.dispatch(11, "echo_job.py")
        await hub.wait_for(lambda: hub.of_type("declined", 11))
        assert "slot" in hub.of_type("declined", 11)[0]["reason"]
        assert 11 not in hub.runs  # nothing started
        await hub.send("cancel", run_id=10)
        await hub.wait_finished(10)
        await hub.dispatch(12, "echo_job.py")
        assert (await hub.wait_finished(12))["outcome"] == "succeeded"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


BAD_DISPATCHES = [
    ("../echo_job.py", "'..'"),
    ("..", "folder reference"),
    ("sub/echo_job.py", "path separator"),
    ("sub\\echo_job.py", "path separator"),
    ("C:echo_job.py", "drive letter"),
    ("/etc/passwd", "path separator"),
    ("escape.py", "outside the scripts folder"),
    ("missing.py", "unknown script"),
]


@pytest.mark.parametrize(("script", "expected"), BAD_DISPATCHES)
async def test_unsafe_or_unknown_scripts_are_declined_and_worker_keeps_serving(
    hub, worker_dir, tmp_path_factory, script, expected
):
    outside = tmp_path_factory.mktemp("outside") / "evil.py"
    outside.write_text("print('should never run')\n")
    os.symlink(outside, worker_dir / "scripts" / "escape.py")
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        assert "escape.py" not in {s["name"] for s in hub.hellos[0]["scripts"]}
        await hub.dispatch(20, script)
        await hub.wait_for(lambda: hub.of_type("declined", 20))
        assert expected in hub.of_type("declined", 20)[0]["reason"]
        assert 20 not in hub.runs
        await hub.dispatch(21, "echo_job.py")
        assert (await hub.wait_finished(21))["outcome"] == "succeeded"


BAD_FRAMES = [
    ("{not json", "not valid JSON"),
    ('{"type": "launch_missiles", "v": 1}', "unknown message type"),
    ('{"type": "dispatch", "v": 1, "run_id": 1}', "missing field"),
    ('{"type": "ack", "v": 99, "run_id": 1, "seq": 1}', "unsupported protocol version"),
    ('{"type": "hello", "v": 1}', "missing field"),
    ('["a list"]', "JSON object"),
    ("x" * (1024 * 1024 + 10), "over the limit"),
]


@pytest.mark.parametrize(("frame", "expected"), BAD_FRAMES, ids=lambda v: str(v)[:20])
async def test_bad_frames_get_an_error_reply_and_worker_keeps_serving(
    hub, worker_dir, frame, expected
):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.send_raw(frame)
        await hub.wait_for(lambda: hub.of_type("error"))
        assert expected in hub.of_type("error")[0]["reason"]
        await hub.dispatch(30, "echo_job.py")
        assert (await hub.wait_finished(30))["outcome"] == "succeeded"
        assert len(hub.hellos) == 1  # same connection: nothing was dropped


async def test_hub_killed_mid_run_gets_every_line_exactly_once(hub, worker_dir):
    proc = await start_worker(write_config(worker_dir, hub.url))
    n = 100_000
    gate = worker_dir / "gate"
    try:
        await hub.connected()
        await hub.dispatch(40, "numbered.py", str(n), str(gate))
        await hub.wait_for(lambda: f"line {n // 2}\n" in hub.text(40))
        await hub.stop()
        gate.touch()  # the second half is printed while the hub is away
        await hub.start()  # same port
        result = await hub.wait_finished(40, units=60)
        assert result["outcome"] == "succeeded"
        await hub.wait_for(lambda: hub.contiguous(result) == result["seq"], units=30)
        lines = hub.text(40).splitlines()
        assert lines == [f"line {i}" for i in range(1, n + 1)]
        assert len(hub.hellos) == 2 and 40 in hub.hellos[1]["runs"]
        await hub.wait_for(lambda: not (worker_dir / "spool" / "run-40").exists())
    finally:
        await stop_worker(proc)


async def test_finished_but_unacked_run_is_replayed_after_worker_restart(hub, worker_dir):
    config = write_config(worker_dir, hub.url)
    hub.auto_ack = False
    proc = await start_worker(config)
    try:
        await hub.connected()
        await hub.dispatch(50, "echo_job.py", "kept", env={"EXIT_CODE": "4"})
        await hub.wait_finished(50)
    finally:
        assert await stop_worker(proc) == 0
    assert list((worker_dir / "spool").glob("run-50/*.jsonl")), "nothing spooled"
    first_text = hub.text(50)
    hub.runs.clear()
    hub.auto_ack = True
    proc = await start_worker(config)
    try:
        result = await hub.wait_finished(50)
        assert (result["outcome"], result["exit_code"]) == ("failed", 4)
        assert 50 in hub.hellos[-1]["runs"]
        assert hub.text(50) == first_text
        await hub.wait_for(lambda: not (worker_dir / "spool" / "run-50").exists())
    finally:
        await stop_worker(proc)


async def test_sigterm_gives_jobs_grace_then_records_worker_shutdown(hub, worker_dir):
    proc = await start_worker(write_config(worker_dir, hub.url, shutdown_grace_seconds=0.5))
    try:
        await hub.connected()
        await hub.dispatch(60, "sleeper.py")
        await hub.wait_for(lambda: "sleeping" in hub.text(60))
        proc.terminate()
        result = await hub.wait_finished(60)
        assert (result["outcome"], result["reason"]) == ("cancelled", "worker shutdown")
        assert await stop_worker(proc) == 0
        assert not _alive(hub.ordered(60)[0]["pid"])
    finally:
        await stop_worker(proc)


async def test_reject_is_explained(hub, worker_dir):
    hub.reject = ("bad_token", "token not recognised")
    proc = await start_worker(write_config(worker_dir, hub.url), "--once")
    assert await asyncio.wait_for(proc.wait(), timeout(20)) == 1
    log = (worker_dir / "worker.log").read_text()
    assert "refused this worker (bad_token)" in log
    assert "token" in log.split("What to do:")[1]


async def test_logs_connected(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(70, "echo_job.py")
        await hub.wait_finished(70)
    assert f"Connected to {hub.url}" in (worker_dir / "worker.log").read_text()


async def test_leftover_background_processes_are_stopped_when_the_script_exits(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(80, "orphan_maker.py")
        result = await hub.wait_finished(80)
        orphan = int(re.search(r"orphan (\d+)", hub.text(80)).group(1))
        assert (result["outcome"], result["exit_code"]) == ("succeeded", 0)
        assert "kept running" in result["reason"]
        assert not _alive(orphan)


async def test_missing_interpreter_fails_the_run_with_a_reason(hub, worker_dir):
    config = write_config(worker_dir, hub.url)
    with open(config, "a") as f:
        f.write("[interpreters]\n.ps1 = no-such-powershell-here -File\n")
    proc = await start_worker(config)
    try:
        await hub.connected()
        await hub.dispatch(81, "hello.ps1")
        result = await hub.wait_finished(81)
        assert result["outcome"] == "failed" and result["exit_code"] is None
        assert "cannot start 'no-such-powershell-here'" in result["reason"]
        assert [m.type for m in hub.ordered(81)] == ["finished"]
        await hub.dispatch(82, "echo_job.py")
        assert (await hub.wait_finished(82))["outcome"] == "succeeded"
    finally:
        await stop_worker(proc)


async def test_heartbeats_list_running_runs_and_duplicate_dispatch_is_declined(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(90, "sleeper.py")
        await hub.wait_for(lambda: "sleeping" in hub.text(90))
        await hub.wait_for(lambda: any(90 in m["running"] for m in hub.of_type("heartbeat")))
        await hub.dispatch(90, "sleeper.py")
        await hub.wait_for(lambda: hub.of_type("declined", 90))
        assert "already held" in hub.of_type("declined", 90)[0]["reason"]
        assert len(hub.of_type("started", 90)) == 1


async def test_shutdown_lets_a_job_finish_within_the_grace(hub, worker_dir):
    proc = await start_worker(write_config(worker_dir, hub.url, shutdown_grace_seconds=60))
    try:
        await hub.connected()
        await hub.dispatch(91, "sleeper.py", "0.5")
        await hub.wait_for(lambda: "sleeping" in hub.text(91))
        proc.terminate()
        result = await hub.wait_finished(91)
        assert (result["outcome"], hub.text(91)) == ("succeeded", "sleeping\nwoke up\n")
        assert await stop_worker(proc) == 0
    finally:
        await stop_worker(proc)


async def test_giant_frame_drops_the_connection_and_the_worker_comes_back(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.send_raw("y" * (5 * 1024 * 1024))  # past the 4 MiB receive limit
        await hub.wait_for(lambda: len(hub.hellos) == 2)
        await hub.connected()
        await hub.dispatch(95, "echo_job.py")
        assert (await hub.wait_finished(95))["outcome"] == "succeeded"
    log = (worker_dir / "worker.log").read_text()
    assert "sent 1009 (message too big)" in log
