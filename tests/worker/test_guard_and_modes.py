"""The worker stays small (no Qt, peewee, desktop) and its script-runner mode works."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from tests.conftest import ROOT, timeout
from worker.backoff import Backoff
from worker.ratelimit import RateLimit

FORBIDDEN = ("PySide6", "shiboken6", "peewee", "qasync", "desktop")


def test_importing_the_worker_loads_no_gui_orm_or_console_code():
    code = (
        "import sys, worker, worker.client, worker.runner, worker.spool, worker.config, "
        "worker.scripts, worker.backoff, worker.console, worker.stopsignals, worker.ratelimit, "
        "worker.__main__\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout(30), check=True,
    )  # fmt: skip
    assert result.stdout.strip() == ""


def test_guard_would_notice_a_forbidden_import():
    # the same probe does report a module when one is loaded, so the test above can fail
    code = "import sys, peewee\nprint('peewee' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout(30), check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "True"


def test_run_script_mode_runs_a_python_file_with_args_and_exit_code(tmp_path):
    script = tmp_path / "job.py"
    (tmp_path / "helper.py").write_text("VALUE = 'from helper'\n")
    script.write_text(
        "import sys, helper\n"
        "print(__name__, sys.argv[1:], helper.VALUE)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "worker", "--run-script", str(script), "7", "--config"],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout(30),
    )  # fmt: skip
    assert result.returncode == 7
    assert result.stdout == "__main__ ['7', '--config'] from helper\n"


def test_backoff_grows_with_jitter_caps_and_resets():
    backoff = Backoff(first=0.5, cap=30, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    steps = [min(30, 0.5 * 2**i) for i in range(12)]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps))
    assert max(delays) <= 30 and delays[-1] >= 15
    assert len(set(delays)) == len(delays)  # jittered, not lockstep
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_rate_limit_allows_a_burst_up_to_the_rate_then_paces():
    limit = RateLimit(rate=3)
    for t in (0.0, 0.1, 0.2):
        assert limit.delay(t) == 0.0
        limit.sent(t)
    assert limit.delay(0.3) == pytest.approx(0.7)  # the oldest leaves the window at 1.0
    assert limit.delay(1.0) == 0.0
    limit.sent(1.0)
    assert limit.delay(1.05) == pytest.approx(0.05)  # 0.1 leaves at 1.1


def test_a_frozen_windows_worker_restores_the_dll_search_path_first(monkeypatch, tmp_path):
    # Windows-only code cannot run here; this checks the wiring: a frozen worker on Windows
    # undoes the bootloader's DLL directory before it does anything else (even --run-script).
    import multiprocessing
    import types

    from worker import __main__ as entry

    calls = []
    fake = types.ModuleType("worker.winproc")
    fake.restore_dll_search_path = lambda: calls.append("restored") or True
    monkeypatch.setitem(sys.modules, "worker.winproc", fake)
    monkeypatch.setattr("worker.winproc", fake, raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(multiprocessing, "freeze_support", lambda: calls.append("freeze"))
    monkeypatch.setattr(entry, "run_script", lambda argv: calls.append(("run", argv)) or 0)
    assert entry.main(["--run-script", str(tmp_path / "x.py")]) == 0
    # no freeze_support with a job's (hub-chosen) arguments: see test_frozen_run_script_*
    assert calls == ["restored", ("run", [str(tmp_path / "x.py")])]
    calls.clear()
    monkeypatch.setattr(entry, "parse_args", lambda argv: calls.append("args") or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        entry.main(["--once"])
    assert calls == ["freeze", "restored", "args"]


def test_frozen_run_script_never_lets_freeze_support_execute_a_jobs_arguments(
    monkeypatch, tmp_path
):
    # PyInstaller's freeze_support execs argv[-1] when argv[-2] is '-c' and argv[-1] looks like
    # multiprocessing's resource tracker.  A hub chooses a .py job's arguments, so neither the
    # worker (before --run-script) nor the script's own freeze_support() call may run it.
    import multiprocessing
    import multiprocessing.spawn

    from worker import __main__ as entry

    marker = tmp_path / "pwned"
    payload = (
        f"from multiprocessing.resource_tracker import main; open({str(marker)!r}, 'w').close()"
    )

    def pyinstaller_like_freeze_support():
        if len(sys.argv) >= 2 and sys.argv[-2] == "-c" and sys.argv[-1].startswith("from mul"):
            exec(sys.argv[-1])

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(multiprocessing, "freeze_support", pyinstaller_like_freeze_support)
    monkeypatch.setattr(multiprocessing.spawn, "freeze_support", pyinstaller_like_freeze_support)
    script = tmp_path / "uses_mp.py"
    script.write_text(
        "import multiprocessing, sys\n"
        "if __name__ == '__main__':\n"
        "    multiprocessing.freeze_support()\n"
        "    print('args', sys.argv[1:])\n"
    )
    assert entry.main(["--run-script", str(script), "-c", payload]) == 0
    assert not marker.exists()
    # the check above can fail: the same arguments given to that freeze_support run the payload
    sys.argv = ["worker", "-c", payload]
    pyinstaller_like_freeze_support()
    assert marker.exists()
