"""A compromised hub attacks a real worker process over 127.0.0.1 (docs/SECURITY.md, the
sections "worker environment policy", "what a hub can make a worker do" and "private files on
the worker host, and transport").  Each test performs the attack and checks what happened on
disk, not only the answer."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, timeout
from tests.worker.hubfixture import connected_worker, start_worker, stop_worker, write_config
from worker.protocol import encode


def _attacker_tools(tmp: Path) -> dict[str, Path]:
    """Programs and hooks an attacker would point the environment at; each leaves a marker."""
    marker = tmp / "pwned"
    evil_bin = tmp / "bin"
    evil_bin.mkdir()
    fake_bash = evil_bin / "bash"
    fake_bash.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake_bash.chmod(0o755)
    hooks = tmp / "pylib"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    bash_env = tmp / "bash_env.sh"
    bash_env.write_text(f"touch {marker}\n")
    return {"marker": marker, "bin": evil_bin, "pylib": hooks, "bash_env": bash_env}


def _probe_scripts(worker_dir: Path) -> None:
    (worker_dir / "scripts" / "probe.sh").write_text("echo probe ran\n")
    (worker_dir / "scripts" / "run.bat").write_text("@echo %1\n")


ENV_ATTACKS = [
    ("probe.sh", "PATH", "bin"),  # the worker looks 'bash' up in the child's PATH
    ("probe.sh", "Path", "bin"),  # Windows reads it as PATH: refused everywhere
    ("probe.sh", "BASH_ENV", "bash_env"),
    ("echo_job.py", "PYTHONPATH", "pylib"),
]


@pytest.mark.parametrize(("script", "name", "tool"), ENV_ATTACKS)
@pytest.mark.asyncio
async def test_env_that_changes_the_program_is_declined_and_nothing_runs(
    hub, worker_dir, tmp_path_factory, script, name, tool
):
    tools = _attacker_tools(tmp_path_factory.mktemp("attacker"))
    _probe_scripts(worker_dir)
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(70, script, env={name: str(tools[tool]), "EXIT_CODE": "0"})
        await hub.wait_for(lambda: hub.of_type("declined", 70))
        reason = hub.of_type("declined", 70)[0]["reason"]
        assert name in reason and "[env] allow" in reason and "EXIT_CODE" not in reason
        await hub.dispatch(71, "echo_job.py", env={"EXIT_CODE": "0"})
        assert (await hub.wait_finished(71))["outcome"] == "succeeded"
    assert 70 not in hub.runs  # not even `started`
    assert not tools["marker"].exists()
    assert not (worker_dir / "spool" / "run-70").exists()


@pytest.mark.asyncio
async def test_an_admin_can_allow_what_the_default_refuses_and_deny_more(
    hub, worker_dir, tmp_path_factory
):
    # The same attacks with the names permitted: they work, so the tests above test something.
    tools = _attacker_tools(tmp_path_factory.mktemp("attacker"))
    _probe_scripts(worker_dir)
    config = write_config(worker_dir, hub.url)
    with open(config, "a") as f:
        f.write("[env]\nallow = bash_env, PYTHON*\ndeny = SECRET_*\n")
    async with connected_worker(hub, config):
        await hub.dispatch(72, "probe.sh", env={"BASH_ENV": str(tools["bash_env"])})
        assert (await hub.wait_finished(72))["outcome"] == "succeeded"
        assert tools["marker"].exists()
        tools["marker"].unlink()
        await hub.dispatch(73, "echo_job.py", env={"PYTHONPATH": str(tools["pylib"])})
        assert (await hub.wait_finished(73))["outcome"] == "succeeded"
        assert tools["marker"].exists()
        await hub.dispatch(74, "echo_job.py", env={"Secret_Key": "k", "PATH": "/x"})
        await hub.wait_for(lambda: hub.of_type("declined", 74))
        reason = hub.of_type("declined", 74)[0]["reason"]
        assert "Secret_Key" in reason and "PATH" in reason
        # what the worker sets itself stays its own, whatever [env] allow says
        await hub.dispatch(75, "echo_job.py", env={"PYTHONIOENCODING": "latin-1"})
        await hub.wait_for(lambda: hub.of_type("declined", 75))
        assert "set by the worker itself" in hub.of_type("declined", 75)[0]["reason"]
    assert 74 not in hub.runs and 75 not in hub.runs


# Raw frames: a hostile hub is not bound to send what json.dumps would (lone surrogates).
def _dispatch_frame(run_id: int, script: str, args: list[str], env: dict[str, str]) -> str:
    return json.dumps(
        {"type": "dispatch", "v": 1, "run_id": run_id, "attempt": 1, "script": script,
         "args": args, "env": env},
        ensure_ascii=True,
    )  # fmt: skip


DISPATCH_ATTACKS = [
    ("run.bat", ['x" & touch pwned & "'], {}, "cmd.exe would interpret"),
    ("run.bat", ["%COMSPEC%"], {}, "cmd.exe would interpret"),
    ("NUL.sh", [], {}, "device name"),
    ("echo_job.py\u202e", [], {}, "invisible or control"),
    ("echo_job.py\ud800", [], {}, "invisible or control"),
    ("ECHO_JOB.PY", [], {}, "unknown script"),
    ("echo_job.py:stream", [], {}, "reserved character"),
    ("echo_job.py. ", [], {}, "trailing"),
    ("echo_job.py", ["ok", "nul\x00byte"], {}, "NUL or an unpaired surrogate"),
    ("echo_job.py", ["\udc80"], {}, "NUL or an unpaired surrogate"),
    ("echo_job.py", [], {"X": "a\x00b"}, "NUL or an unpaired surrogate"),
    ("echo_job.py", [], {"=C:": "C:\\evil"}, "not valid variable names"),
    ("echo_job.py", [], {"BASH_FUNC_echo%%": "() { touch pwned; }"}, "not valid variable"),
]


@pytest.mark.parametrize(("script", "args", "env", "expected"), DISPATCH_ATTACKS)
@pytest.mark.asyncio
async def test_hostile_dispatches_are_declined_and_the_worker_keeps_serving(
    hub, worker_dir, script, args, env, expected
):
    _probe_scripts(worker_dir)
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.send_raw(_dispatch_frame(80, script, args, env))
        await hub.wait_for(lambda: hub.of_type("declined", 80))
        assert expected in hub.of_type("declined", 80)[0]["reason"]
        await hub.dispatch(81, "echo_job.py")
        assert (await hub.wait_finished(81))["outcome"] == "succeeded"
        assert len(hub.hellos) == 1  # the same connection: nothing crashed
    assert 80 not in hub.runs
    assert not list(worker_dir.rglob("pwned"))


@pytest.mark.asyncio
async def test_an_ack_beyond_what_was_sent_is_cut_and_a_replay_ack_is_not(hub, worker_dir):
    config = write_config(worker_dir, hub.url)
    hub.auto_ack = False
    async with connected_worker(hub, config):
        await hub.dispatch(90, "echo_job.py", "kept")
        await hub.wait_finished(90)
        last = max(hub.runs[90])
        await hub.send("ack", run_id=90, seq=last + 1000)
        await hub.wait_for(lambda: hub.of_type("error"))
        assert (
            hub.of_type("error")[0]["reason"]
            == f"ack for run 90 seq {last + 1000}: sent up to {last}"
        )
        await hub.wait_for(lambda: not (worker_dir / "spool" / "run-90").exists())
        # a run kept in the spool, unacked, for the restart below
        await hub.dispatch(91, "echo_job.py", "replayed")
        await hub.wait_finished(91)
    # After a restart the hub acks what it committed from the first connection as soon as the
    # replay starts (like desktop/hub): legitimate, not cut, no error.
    hub.auto_ack = True
    errors_before = len(hub.of_type("error"))
    async with connected_worker(hub, config):
        await hub.wait_for(lambda: not (worker_dir / "spool" / "run-91").exists())
        assert len(hub.of_type("error")) == errors_before
        assert "arg: replayed" in hub.text(91)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.asyncio
async def test_worker_files_are_private_whatever_the_umask_and_jobs_keep_theirs(hub, worker_dir):
    (worker_dir / "scripts" / "make_file.py").write_text(
        "import sys\nopen(sys.argv[1], 'w').close()\nprint('made')\n"
    )
    (worker_dir / "spool").mkdir(mode=0o755)  # left by an older worker
    os.chmod(worker_dir / "spool", 0o755)
    config = write_config(worker_dir, hub.url, log_file="private.log")
    hub.auto_ack = False  # keep the spool on disk to look at it
    proc = await start_worker(config, umask=0)
    try:
        await hub.connected()
        job_file = worker_dir / "job_made.txt"
        await hub.dispatch(95, "make_file.py", str(job_file))
        await hub.wait_finished(95)
        spool = worker_dir / "spool"
        segments = list((spool / "run-95").glob("*.jsonl"))
        assert segments
        assert _mode(spool) == 0o700 and _mode(spool / "run-95") == 0o700
        assert {_mode(s) for s in segments} == {0o600}
        # every file in it, the guardian's records too (a planted record aims the next sweep)
        assert (spool / "life.json").is_file()
        assert {_mode(f) for f in spool.rglob("*") if f.is_file()} == {0o600}
        assert {_mode(d) for d in spool.rglob("*") if d.is_dir()} == {0o700}
        assert _mode(worker_dir / "private.log") == 0o600
        assert "Connected" in (worker_dir / "private.log").read_text()
        assert _mode(job_file) == 0o666  # the job's own file: the umask it inherited (0)
    finally:
        await stop_worker(proc)


def _run_worker(*args: str, cwd: Path, env: dict[str, str] | None = None, umask: int = -1):
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout(30),
        umask=umask,
    )


def test_the_template_worker_writes_is_private_whatever_the_umask(tmp_path):
    result = _run_worker(cwd=tmp_path, umask=0)
    assert result.returncode == 1
    assert _mode(tmp_path / "worker.ini") == 0o600


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plain_ws_to_another_computer_warns_loudly_and_loopback_does_not(tmp_path):
    port = _closed_port()
    # 0.0.0.0 is not a loopback address, yet connecting to it stays on this machine.
    for url, warns in ((f"ws://0.0.0.0:{port}/ws", True), (f"ws://127.0.0.1:{port}/ws", False)):
        ini = write_config(tmp_path, url)
        result = _run_worker("--config", str(ini), "--once", cwd=tmp_path)
        assert result.returncode == 1  # nothing listens: --once gives up
        assert ("INSECURE" in result.stderr) is warns, result.stderr
        if warns:
            assert "token" in result.stderr and "require_tls" in result.stderr


def test_a_worker_ini_other_accounts_can_read_is_pointed_out(tmp_path):
    ini = write_config(tmp_path, f"ws://127.0.0.1:{_closed_port()}/ws")
    for mode, warns in ((0o644, True), (0o600, False)):
        ini.chmod(mode)
        result = _run_worker("--config", str(ini), "--once", cwd=tmp_path)
        assert ("chmod 600" in result.stderr) is warns, result.stderr


def test_require_tls_refuses_plain_ws_before_anything_is_sent(tmp_path):
    with socket.socket() as listener:  # a hub that would record a connection
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/ws"
        ini = write_config(tmp_path, url)
        result = _run_worker(
            "--config", str(ini), "--once", cwd=tmp_path, env={"JOBTRIGGER_REQUIRE_TLS": "true"}
        )
        assert result.returncode == 2
        assert "require_tls" in result.stderr and "Traceback" not in result.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()  # the worker never connected


@pytest.mark.asyncio
async def test_absurd_timeouts_and_delays_neither_crash_nor_hold_the_worker(hub, worker_dir):
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(96, "echo_job.py", timeout=1e308, delay=-1e308)
        assert (await hub.wait_finished(96))["outcome"] == "succeeded"
        await hub.dispatch(97, "sleeper.py", timeout=-5)
        assert (await hub.wait_finished(97))["outcome"] == "timed_out"
        await hub.send_raw(
            '{"type":"dispatch","v":1,"run_id":98,"attempt":1,"script":"echo_job.py",'
            '"timeout":NaN,"delay":Infinity}'
        )
        await hub.wait_for(lambda: hub.of_type("error"))
        assert "must be finite" in hub.of_type("error")[0]["reason"]
        await hub.dispatch(99, "echo_job.py")
        assert (await hub.wait_finished(99))["outcome"] == "succeeded"
        assert len(hub.hellos) == 1
    assert 98 not in hub.runs


@pytest.mark.asyncio
async def test_a_cancel_reason_at_the_protocol_limit_still_ends_the_run_cancelled(hub, worker_dir):
    # The worker adds " (before it started)" to a reason for a held run: the hub's 4096
    # characters plus that used to make an invalid `finished`, recorded as a worker error.
    async with connected_worker(hub, write_config(worker_dir, hub.url)):
        await hub.dispatch(100, "echo_job.py", delay=30)
        await hub.wait_for(lambda: any(100 in h["running"] for h in hub.of_type("heartbeat")))
        await hub.send("cancel", run_id=100, reason="x" * 4096)
        result = await hub.wait_finished(100)
        assert result["outcome"] == "cancelled" and result["reason"].endswith("(before it started)")


@pytest.mark.asyncio
async def test_output_written_but_never_sent_survives_an_ack_for_it(tmp_path):
    # The window a process test cannot hit on purpose: output on disk, not yet synced or sent,
    # when a hub acks past it.  In-process, with the worker's own ack handling.
    from worker.client import Worker
    from worker.config import WorkerConfig
    from worker.protocol import PROTOCOL_VERSION, decode

    class Recorder:
        def __init__(self) -> None:
            self.frames: list[str] = []

        async def send(self, frame: str) -> None:
            self.frames.append(frame)

    worker = Worker(WorkerConfig(path=tmp_path / "worker.ini", spool_dir=tmp_path / "spool"))
    try:
        msg = {"v": PROTOCOL_VERSION, "run_id": 5}
        worker.spool.append(5, [{**msg, "type": "started", "at": 1.0}])
        worker.spool.append(5, [{**msg, "type": "output", "stream": "stdout", "text": "x\n"}])
        worker.spool.append(5, [{**msg, "type": "finished", "outcome": "succeeded", "at": 2.0}])
        ws = Recorder()
        await worker._handle(ws, decode(encode("ack", run_id=5, seq=3)))
        assert "sent up to 0" in ws.frames[0]
        assert (tmp_path / "spool" / "run-5").is_dir()
        worker.spool.sync_now()
        assert [m["seq"] for m in worker.spool.pending(5, 0)] == [1, 2, 3]
    finally:
        if worker.guardian is not None:  # the constructor started it: end it with the test
            worker.guardian.close()
