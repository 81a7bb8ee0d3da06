"""A dispatch's ``delay``: the runner holds the run until its start time, and a cancel during
the hold ends it without starting anything (real child processes)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from worker.runner import RunRequest, ScriptRun

pytestmark = pytest.mark.asyncio


def _run(tmp_path, delay: float, sent: list) -> ScriptRun:
    script = tmp_path / "hello.py"
    script.write_text("print('hello')\n")
    request = RunRequest(7, [sys.executable, "-u", str(script)], str(tmp_path), {}, 30, delay)
    return ScriptRun(request, sent.extend, kill_grace=2)


async def test_a_held_run_starts_at_its_time_not_before(tmp_path):
    sent: list[dict] = []
    run = _run(tmp_path, 0.3, sent)
    begun = time.time()
    result = await run.run()
    started = next(m for m in sent if m["type"] == "started")
    assert started["at"] - begun >= 0.3
    assert started["at"] - begun < 0.3 + 0.25  # the hold is not a sleep of arbitrary length
    assert result["outcome"] == "succeeded"
    assert "hello" in "".join(m.get("text", "") for m in sent if m["type"] == "output")


async def test_a_cancel_during_the_hold_starts_nothing(tmp_path):
    sent: list[dict] = []
    run = _run(tmp_path, 5.0, sent)
    task = asyncio.create_task(run.run())
    await asyncio.sleep(0.1)
    run.cancel("cancelled from the console")
    result = await asyncio.wait_for(task, 2)
    assert [m["type"] for m in sent] == ["finished"]
    assert result["outcome"] == "cancelled" and result["exit_code"] is None
    assert "before it started" in result["reason"]
    assert run.proc is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions and process groups")
@pytest.mark.parametrize("terminal", [False, True])
async def test_children_get_their_own_group_and_a_new_session_only_under_a_terminal(
    tmp_path, monkeypatch, terminal
):
    import os

    from worker import runner

    monkeypatch.setattr(runner, "has_controlling_terminal", lambda: terminal)
    script = tmp_path / "wait.py"
    script.write_text("import time\nprint('up', flush=True)\ntime.sleep(30)\n")
    sent: list[dict] = []
    request = RunRequest(8, [sys.executable, "-u", str(script)], str(tmp_path), {}, 30)
    run = ScriptRun(request, sent.extend, kill_grace=2)
    task = asyncio.create_task(run.run())
    while not any(m["type"] == "output" for m in sent):
        await asyncio.sleep(0.02)
    pid = run.proc.pid
    assert os.getpgid(pid) == pid  # its own group: the tree kill signals it
    # a session of its own only under a terminal (always before Python 3.11: no process_group)
    assert (os.getsid(pid) == pid) is (terminal or sys.version_info < (3, 11))
    run.cancel("done")
    assert (await asyncio.wait_for(task, 10))["outcome"] == "cancelled"
