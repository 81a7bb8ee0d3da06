"""The composition root: startup problems become a clear dialog (not a traceback) and exit 1;
--smoke-test opens the window, renders it and exits 0; Quit ends main() cleanly."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sqlite3

import pytest
from PySide6.QtWidgets import QMessageBox

from desktop import app
from desktop.store.errors import DatabaseLocked
from desktop.ui import asyncqt
from tests.conftest import timeout
from tests.ui.storecore import StoreCore


def args(db: str, **kw) -> argparse.Namespace:
    base = dict(db=db, host=None, port=0, no_local_worker=True, smoke_test=False, headless=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_startup_problems_are_said_plainly():
    title, text = app.startup_problem(OSError(errno.EADDRINUSE, "in use"), "127.0.0.1", 8000)
    assert title == "Port in use" and "127.0.0.1:8000" in text and "--port" in text
    title, text = app.startup_problem(DatabaseLocked("the database is locked by pid 7"), "h", 1)
    assert title == "Database problem" and "locked by pid 7" in text
    assert app.startup_problem(ZeroDivisionError(), "h", 1) is None
    import ssl

    title, text = app.startup_problem(ssl.SSLError(9, "PEM lib"), "h", 1)
    assert title == "TLS certificate problem" and "Settings" in text


@pytest.mark.asyncio
async def test_a_newer_database_shows_a_dialog_and_exits_1(tmp_path):
    path = tmp_path / "new.db"
    store = StoreCore(f"sqlite:///{path}")
    await store.start()
    await store.stop()
    with sqlite3.connect(path) as conn:  # as if a newer Job Trigger had upgraded it
        table = conn.execute(
            "select name from sqlite_master where name like '%schema%version%'"
        ).fetchone()[0]
        conn.execute(f"insert into {table} (version, applied_at) values (999, '2030-01-01')")
    shown: list[QMessageBox] = []

    def answer(dialog):
        shown.append(dialog)
        dialog.done(0)

    asyncqt.dialog_watchers.append(answer)
    try:
        code = await asyncio.wait_for(app.main(args(f"sqlite:///{path}")), timeout(20))
    finally:
        asyncqt.dialog_watchers.remove(answer)
    assert code == 1
    assert len(shown) == 1 and shown[0].text() == "Database problem"
    assert "newer" in shown[0].informativeText()


@pytest.mark.asyncio
async def test_main_shows_the_window_and_quit_ends_it(tmp_path, monkeypatch):
    made = []

    def fake_core(url, host, port, local_worker):
        core = StoreCore(url)
        made.append((core, host, port, local_worker))
        return core

    monkeypatch.setattr(app, "make_core", fake_core)
    seen = []

    def on_window(window):
        seen.append(window.jobs_model.columnCount())
        window.acts.act_quit.trigger()

    code = await asyncio.wait_for(
        app.main(args(f"sqlite:///{tmp_path / 'a.db'}", port=None), on_window=on_window),
        timeout(20),
    )
    assert code == 0 and seen == [7]
    core, host, port, local = made[0]
    # hub address and local worker come from the stored settings unless given on the line
    assert (host, port, local) == ("127.0.0.1", 8000, False)
    assert core.db._closed  # the core was stopped


@pytest.mark.asyncio
async def test_smoke_test_renders_and_exits_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(app, "make_core", lambda url, host, port, local: StoreCore(url))
    code = await asyncio.wait_for(
        app.main(args(f"sqlite:///{tmp_path / 's.db'}", smoke_test=True)), timeout(20)
    )
    assert code == 0
    assert "smoke test: window" in capsys.readouterr().out


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to self is a POSIX test")
@pytest.mark.asyncio
async def test_sigint_stops_the_console_cleanly(tmp_path, monkeypatch):
    cores = []

    def fake_core(url, host, port, local):
        cores.append(StoreCore(url))
        return cores[-1]

    monkeypatch.setattr(app, "make_core", fake_core)
    code = await asyncio.wait_for(
        app.main(
            args(f"sqlite:///{tmp_path / 'i.db'}"),
            on_window=lambda window: os.kill(os.getpid(), signal.SIGINT),
        ),
        timeout(20),
    )
    assert code == 0 and cores[0].db._closed


def test_importing_the_composition_root_loads_no_qt():
    """Qt stays under desktop/ui: desktop.app loads it only when run_gui/main runs."""
    import subprocess
    import sys

    code = "import sys, desktop.app; print(sorted(m for m in sys.modules if 'PySide6' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.asyncio
async def test_port_in_use_shows_a_dialog_and_exits_1(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        shown: list[QMessageBox] = []

        def answer(dialog):
            shown.append(dialog)
            dialog.done(0)

        asyncqt.dialog_watchers.append(answer)
        try:
            code = await asyncio.wait_for(
                app.main(args(f"sqlite:///{tmp_path / 'p.db'}", port=port)), timeout(20)
            )
        finally:
            asyncqt.dialog_watchers.remove(answer)
    assert code == 1
    assert shown[0].text() == "Port in use"
    assert f"127.0.0.1:{port}" in shown[0].informativeText()
    assert not (tmp_path / "p.db").exists()  # checked before the database is created


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery is POSIX")
def test_python_m_desktop_runs_the_window_and_stops_on_ctrl_c(tmp_path):
    """The real entry point in its own process: run_gui, the qasync loop, the core; Ctrl+C
    (SIGINT while Qt is idle) ends it cleanly with exit code 0 and a log file."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_STATE_HOME=str(tmp_path / "state"),  # the log folder
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "desktop",
            "--db",
            f"sqlite:///{tmp_path / 'gui.db'}",
            "--port",
            "0",
            "--no-local-worker",
        ],
        cwd=root,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout(60)
        for line in proc.stderr:  # blocking reads in a plain (not async) test
            if "hub listening" in line:
                break
            assert time.monotonic() < deadline, "the console did not start"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=timeout(30))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "shutting down" in err
    logs = list((tmp_path / "state").rglob("console.log"))
    assert logs and "hub listening" in logs[0].read_text()


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM delivery is POSIX")
def test_sigterm_ends_the_console_while_the_port_in_use_box_is_open(tmp_path):
    """A real process whose start-up problem box nobody answers (a service manager stopping
    it): SIGTERM closes the box and the process ends with exit code 1, creating no database."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "desktop",
                "--db",
                f"sqlite:///{tmp_path / 'gui.db'}",
                "--port",
                str(port),
                "--no-local-worker",
            ],
            cwd=root,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + timeout(60)
            for line in proc.stderr:
                if "Port in use" in line:
                    break
                assert time.monotonic() < deadline, "no start-up problem was reported"
            # the box opens in the same loop turn as this log line; SIGTERM arriving a moment
            # before it would end the process the same way (closing already set)
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=timeout(20))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1, err[-2000:]
    assert not (tmp_path / "gui.db").exists()


@pytest.mark.asyncio
async def test_a_second_console_shows_who_holds_the_store_and_exits_1(tmp_path):
    """The window path of one-scheduler-per-store: the real Core meets a held lock."""
    import socket

    from desktop.store.leader import FileLock

    path = tmp_path / "held.db"
    holder = FileLock(f"{path}.lock")  # the first console (its lock, as Core.start takes it)
    holder.acquire()
    shown: list[QMessageBox] = []

    def answer(dialog):
        shown.append(dialog)
        dialog.done(0)

    asyncqt.dialog_watchers.append(answer)
    try:
        code = await asyncio.wait_for(app.main(args(f"sqlite:///{path}")), timeout(20))
    finally:
        asyncqt.dialog_watchers.remove(answer)
        holder.release()
    assert code == 1
    assert len(shown) == 1 and shown[0].text() == "Job Trigger is already running"
    text = shown[0].informativeText()
    assert f"pid {os.getpid()} on {socket.gethostname()}" in text and str(path) in text
