"""End to end through the window: the real core (store, scheduler, hub on 127.0.0.1 port 0) and
a real worker process.  Create a job in the editor, run it, watch its output arrive in the log
pane and its outcome in both tables."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.service import Core
from desktop.ui import asyncqt
from desktop.ui.main_window import MainWindow
from desktop.ui.models import JobsTableModel, RunsTableModel
from tests.conftest import timeout
from tests.ui.test_main_window import Dialogs, settle

ROOT = Path(__file__).resolve().parents[2]


async def wait_until(window: MainWindow, predicate, seconds: float, what: str) -> None:
    """Wait for the core's events until `predicate()` holds (checked after each frame)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    signals = (
        window.bridge.jobsChanged,
        window.bridge.runsChanged,
        window.bridge.outputAppended,
        window.bridge.workersChanged,
    )
    while True:
        await settle(window, strict=False)
        if predicate():
            return
        event = asyncio.Event()

        def wake(*_args, event=event):
            event.set()

        for s in signals:
            s.connect(wake)
        try:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:
                raise AssertionError(f"timed out waiting for {what}") from None
        finally:
            for s in signals:
                s.disconnect(wake)


@pytest.mark.asyncio
async def test_create_run_and_watch_a_job_with_a_real_worker(tmp_path, qtbot):
    core = Core(f"sqlite:///{tmp_path / 'e2e.db'}", "127.0.0.1", 0, local_worker=False)
    await core.start()
    window = MainWindow(core, tray=False)
    qtbot.addWidget(window)
    dialogs = Dialogs()
    asyncqt.dialog_watchers.append(dialogs)
    worker = None
    log = None
    try:
        window.show()
        await window.load()

        # a worker, added through the window, started from the worker.ini the window wrote
        task = asyncio.ensure_future(window.commands.add_worker())
        add = await dialogs.next()
        add.name.setText("e2e-worker")
        add.accept()
        token_dialog = await dialogs.next()
        home = tmp_path / "worker"
        (home / "scripts").mkdir(parents=True)
        shutil.copy(ROOT / "resources" / "scripts" / "test_job.py", home / "scripts")
        token_dialog.save(home / "worker.ini")
        token_dialog.accept()
        await task
        assert "e2e-worker" in (home / "worker.ini").read_text()
        log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed in finally
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(home / "worker.ini")],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        await wait_until(
            window,
            lambda: (w := window.workers_model.get("e2e-worker")) is not None and w.online,
            30,
            "the worker to come online",
        )
        await window.refresh_status()
        assert window.status_label.text().startswith("1 of 1 worker online")

        # a job, created in the editor
        task = asyncio.ensure_future(window.commands.new_job())
        editor = await dialogs.next()
        editor.name.setText("e2e-job")
        editor.script.setCurrentText("test_job.py")
        editor.kind.setCurrentIndex(editor.kind.findData("manual"))
        editor.args.setText("0 4 0")
        assert editor.save_button.isEnabled(), editor.errors
        editor.save_button.click()
        record = await asyncio.wait_for(task, timeout(10))
        assert window.jobs_panel.selected_id() == record.id

        # run it and watch
        run_id = await window.commands.run_now(record.id)
        assert window.log_pane.run_id == run_id
        await wait_until(
            window,
            lambda: (
                window.runs_model.get(run_id) is not None
                and window.runs_model.get(run_id).state == "succeeded"
            ),
            60,
            "the run to succeed",
        )
        await wait_until(
            window, lambda: "test_job done" in window.log_pane.text(), 30, "the last output line"
        )
        text = window.log_pane.text()
        assert "line 4 of 4" in text and "this line goes to stderr" in text
        runs = window.runs_model
        row = runs.row_for_key(run_id)
        assert runs.data(runs.index(row, RunsTableModel.OUTCOME)) == "Succeeded"
        assert runs.data(runs.index(row, RunsTableModel.EXIT)) == "0"
        assert runs.data(runs.index(row, RunsTableModel.WORKER)) == "e2e-worker"
        await wait_until(
            window,
            lambda: window.jobs_model.get(record.id).last_run_state == "succeeded",
            10,
            "the job row's outcome",
        )
        jobs = window.jobs_model
        jrow = jobs.row_for_key(record.id)
        assert jobs.data(jobs.index(jrow, JobsTableModel.OUTCOME)) == "Succeeded"
    finally:
        asyncqt.dialog_watchers.remove(dialogs)
        window.shutdown()
        await asyncqt.cancel_pending()
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout(10))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if log is not None:
            log.close()
            print((tmp_path / "worker.log").read_text(errors="replace")[-3000:])
        await core.stop()


@pytest.mark.asyncio
async def test_first_start_has_a_sample_job_and_a_local_worker_that_runs_it(tmp_path, monkeypatch):
    """`python -m desktop` on a fresh machine: the database, the sample job and a local worker
    appear by themselves, and Run now streams output within seconds."""
    import argparse

    from desktop import app

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the local worker's folder
    seen: dict = {}

    async def use_it(window: MainWindow) -> None:
        await wait_until(window, lambda: window.jobs_model.rowCount() > 0, 10, "the sample job")
        job = next(r for r in window.jobs_model.rows() if r.name == "test_job")
        window.jobs_panel.select(job.id)
        await wait_until(
            window,
            lambda: any(w.online for w in window.workers_model.rows()),
            60,
            "the local worker to connect",
        )
        run_id = await window.commands.run_now(job.id)
        await wait_until(
            window, lambda: "test_job done" in window.log_pane.text(), 60, "the sample's output"
        )
        seen["text"] = window.log_pane.text()
        seen["worker"] = window.runs_model.get(run_id).worker
        window.acts.act_quit.trigger()

    args = argparse.Namespace(
        db=f"sqlite:///{tmp_path / 'fresh.db'}",
        host=None,
        port=0,
        no_local_worker=False,
        smoke_test=False,
    )
    code = await asyncio.wait_for(app.main(args, on_window=use_it), timeout(120))
    assert code == 0
    assert "test_job starting" in seen["text"] and "line 3 of 3" in seen["text"]
    assert seen["worker"].startswith("local-")
