"""The main window against the real store and event bus (tests/ui/storecore.py plays the
scheduler's and worker's part): create, edit, run, watch output, cancel, delete, workers."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest
from PySide6.QtWidgets import QDialog, QMainWindow, QMessageBox

from desktop.core.events import JobChanged
from desktop.store import queries
from desktop.ui import asyncqt
from desktop.ui import main_window as mw
from desktop.ui.log_pane import STDERR_COLOUR
from desktop.ui.main_window import MainWindow
from desktop.ui.models import JobsTableModel, RunsTableModel
from desktop.ui.window_actions import WindowActions
from desktop.ui.window_commands import WindowCommands
from tests.conftest import timeout
from tests.ui.storecore import StoreCore, seed_jobs

JOB = {
    "name": "nightly",
    "script": "test_job.py",
    "schedule": {"v": 1, "kind": "daily", "tz": "Asia/Hong_Kong", "times": ["02:00"]},
    "time_zone": "Asia/Hong_Kong",
}


async def settle(window: MainWindow, *, strict: bool = True) -> None:
    """Deliver buffered events now and wait until every task they started is done.  With a live
    core (strict=False) events may keep coming; then a bounded number of rounds is enough."""
    for _ in range(50 if strict else 3):
        window.bridge.flush()
        window.log_pane.drain_all()
        tasks = [t for t in asyncqt.pending_tasks() if not t.done()]
        if not tasks:
            return
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout(10))
    if strict:
        raise AssertionError("the window kept starting tasks")


class Dialogs:
    """Futures for the dialogs the window opens (through asyncqt.ask)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[QDialog] = asyncio.Queue()

    def __call__(self, dialog: QDialog) -> None:
        self.queue.put_nowait(dialog)

    async def next(self) -> QDialog:
        return await asyncio.wait_for(self.queue.get(), timeout(10))


@asynccontextmanager
async def console(tmp_path, qtbot, jobs=()):
    core = StoreCore(f"sqlite:///{tmp_path / 'jt.db'}")
    await core.start()
    for spec in jobs:
        await core.db.call(queries.create_job, spec)
    window = MainWindow(core, db_url="sqlite:///x.db", tray=False)
    qtbot.addWidget(window)
    dialogs = Dialogs()
    asyncqt.dialog_watchers.append(dialogs)
    errors: list[tuple[str, BaseException]] = []
    asyncqt.set_error_handler(lambda what, exc: errors.append((what, exc)))
    try:
        window.show()
        await window.load()
        yield core, window, dialogs, errors
        await settle(window)
    finally:
        asyncqt.dialog_watchers.remove(dialogs)
        window.shutdown()
        await asyncqt.cancel_pending()
        await core.stop()


@pytest.mark.asyncio
async def test_create_a_job_through_the_editor(tmp_path, qtbot):
    async with console(tmp_path, qtbot) as (core, window, dialogs, errors):
        assert "System Offline" in window.status_label.text()
        assert "no worker is registered" in window.status_label.text()
        task = asyncio.ensure_future(window.commands.new_job())
        editor = await dialogs.next()
        assert not editor.save_button.isEnabled()  # no name yet
        editor.name.setText("backup")
        editor.script.setCurrentText("backup.ps1")
        editor.forms["daily"].times.setText("03:15")
        assert editor.save_button.isEnabled(), editor.errors
        editor.save_button.click()
        record = await asyncio.wait_for(task, timeout(10))
        await settle(window)
        assert record.name == "backup" and errors == []
        row = window.jobs_model.row_for_key(record.id)
        assert window.jobs_model.data(
            window.jobs_model.index(row, JobsTableModel.SCHEDULE)
        ).startswith("Daily at 03:15")
        assert window.jobs_panel.selected_id() == record.id
        stored = await core.db.call(queries.get_job, record.id)
        assert stored.script == "backup.ps1" and stored.schedule["times"] == ["03:15"]


@pytest.mark.asyncio
async def test_run_now_streams_output_and_shows_the_outcome_in_both_tables(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, _dialogs, errors):
        job_id = window.jobs_panel.selected_id()
        assert job_id is not None
        run_id = await window.commands.run_now(job_id)
        await settle(window)
        assert window.selected_run().id == run_id
        assert window.log_pane.run_id == run_id
        await core.start_run(run_id)
        await core.output(run_id, ("stdout", "hello\n"), ("stderr", "oops\n"))
        await core.output(run_id, ("stdout", "bye\n"))
        await settle(window)
        assert window.log_pane.text() == "hello\noops\nbye"
        # stderr is drawn in its own colour
        block = window.log_pane.view.document().findBlockByNumber(1)
        assert block.begin().fragment().charFormat().foreground().color().name() == STDERR_COLOUR
        await core.finish_run(run_id, "failed", 3)
        await settle(window)
        runs = window.runs_model
        assert runs.data(runs.index(0, RunsTableModel.OUTCOME)) == "Failed"
        assert runs.data(runs.index(0, RunsTableModel.EXIT)) == "3"
        jobs = window.jobs_model
        row = jobs.row_for_key(job_id)
        assert jobs.data(jobs.index(row, JobsTableModel.OUTCOME)) == "Failed"
        assert window.chart.bars()[-1][1] == "failed"
        assert errors == []


@pytest.mark.asyncio
async def test_reopening_a_run_loads_its_stored_output_then_follows(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, _dialogs, _errors):
        job_id = window.jobs_panel.selected_id()
        first = await window.commands.run_now(job_id)
        await core.start_run(first)
        await core.output(first, *[("stdout", f"line {i}\n") for i in range(5000)])
        second = await window.commands.run_now(job_id)
        await settle(window)
        assert window.log_pane.run_id == second and window.log_pane.text() == ""
        window.select_run(first)
        await settle(window)
        lines = window.log_pane.text().split("\n")
        assert lines[0] == "line 0" and lines[-1] == "line 4999" and len(lines) == 5000
        await core.output(first, ("stdout", "late line\n"))
        await settle(window)
        assert window.log_pane.text().endswith("line 4999\nlate line")
        saved = tmp_path / "out.log"
        count = await window.log_pane.save(first, saved)
        assert count == 5001
        assert saved.read_text().splitlines()[-1] == "late line"


@pytest.mark.asyncio
async def test_cancel_and_delete_ask_and_act(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, dialogs, _errors):
        job_id = window.jobs_panel.selected_id()
        run_id = await window.commands.run_now(job_id)
        await settle(window)
        assert window.acts.act_cancel.isEnabled()
        assert await window.commands.cancel_selected_run() == run_id
        await settle(window)
        assert core.cancelled == [run_id]
        assert window.runs_model.row_at(0).state == "cancelled"

        task = asyncio.ensure_future(window.commands.delete_job(job_id))
        box = await dialogs.next()
        assert isinstance(box, QMessageBox) and "nightly" in box.text()
        box.button(QMessageBox.StandardButton.Cancel).click()
        assert await task is False
        assert window.jobs_model.row_for_key(job_id) is not None

        task = asyncio.ensure_future(window.commands.delete_job(job_id))
        box = await dialogs.next()
        box.button(QMessageBox.StandardButton.Yes).click()
        assert await task is True
        await settle(window)
        assert window.jobs_model.row_for_key(job_id) is None
        assert await core.db.call(queries.get_job, job_id) is None


@pytest.mark.asyncio
async def test_disable_and_duplicate(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, dialogs, _errors):
        job_id = window.jobs_panel.selected_id()
        window.acts.act_disable.trigger()
        await settle(window)
        row = window.jobs_model.row_for_key(job_id)
        assert (
            window.jobs_model.data(window.jobs_model.index(row, JobsTableModel.NEXT)) == "disabled"
        )
        assert window.acts.act_enable.isEnabled() and not window.acts.act_disable.isEnabled()
        task = asyncio.ensure_future(window.commands.edit_job(job_id, copy=True))
        editor = await dialogs.next()
        assert editor.name.text() == "nightly (copy)"
        editor.save_button.click()
        copy = await asyncio.wait_for(task, timeout(10))
        assert (
            copy.id != job_id
            and copy.schedule == (await core.db.call(queries.get_job, job_id)).schedule
        )


@pytest.mark.asyncio
async def test_add_worker_shows_the_token_once_and_writes_worker_ini(tmp_path, qtbot):
    async with console(tmp_path, qtbot) as (core, window, dialogs, _errors):
        task = asyncio.ensure_future(window.commands.add_worker())
        add = await dialogs.next()
        add.name.setText("fileserver-01")
        add.tags.setText("windows, backup")
        add.accept()
        token_dialog = await dialogs.next()
        token = token_dialog.token.text()
        assert len(token) >= 32
        ini = tmp_path / "worker.ini"
        token_dialog.save(ini)
        # the worker's own loader reads what the console wrote
        from worker.config import load

        cfg = load(ini, environ={})
        assert (cfg.name, cfg.token, cfg.tags) == ("fileserver-01", token, ["windows", "backup"])
        assert cfg.server_url == core.hub_url
        token_dialog.accept()
        assert await task == token
        assert (await core.db.call(queries.get_worker, "fileserver-01")) is not None
        assert window.workers_model.get("fileserver-01") is not None
        assert "the only worker is not connected" in window.status_label.text()
        core.connect_worker("fileserver-01", host="fs01", os="Windows 11", slots=2)
        await settle(window)
        await window.refresh_status()
        assert window.status_label.text().startswith("1 of 1 worker online")
        assert window.workers_model.get("fileserver-01").host == "fs01"


@pytest.mark.asyncio
async def test_ten_thousand_jobs_and_one_change_updates_one_row(tmp_path, qtbot):
    core_url = f"sqlite:///{tmp_path / 'big.db'}"
    seed = StoreCore(core_url)
    await seed.start()
    await seed.db.call(seed_jobs, 10_000, {**JOB, "name": "job"})
    await seed.stop()
    core = StoreCore(core_url)
    await core.start()
    window = MainWindow(core, tray=False)
    qtbot.addWidget(window)
    try:
        await window.load()
        assert window.jobs_model.rowCount() == mw.FIRST_JOBS  # the first screen, at once
        await asyncio.wait_for(window.all_jobs_loaded.wait(), timeout(30))
        assert window.jobs_model.rowCount() == 10_000
        assert window.jobs_panel.count.text() == "10000 jobs"
        resets, changes = [], []
        window.jobs_model.modelReset.connect(lambda: resets.append(1))
        window.jobs_model.dataChanged.connect(lambda a, b: changes.append((a.row(), b.row())))
        target = window.jobs_model.row_at(4321).id
        await core.db.call(queries.set_job_enabled, target, False)
        core.events.publish(JobChanged(target))
        await settle(window)
        assert resets == [] and changes == [(4321, 4321)]
        window.jobs_panel.filter.setText("job-0999")
        assert window.jobs_panel.proxy.rowCount() == 10
    finally:
        window.shutdown()
        await asyncqt.cancel_pending()
        await core.stop()


@pytest.mark.asyncio
async def test_settings_change_the_display_zone_everywhere(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, dialogs, errors):
        task = asyncio.ensure_future(window.commands.edit_settings())
        dlg = await dialogs.next()
        dlg.display_tz.setText("Europe/London")
        dlg.retention_days.setValue(30)
        dlg.accept()
        assert await task == {"display_tz": "Europe/London", "retention_days": "30"}
        assert window.jobs_model.display_tz == "Europe/London"
        assert window.runs_model.display_tz == "Europe/London"
        assert await core.db.call(queries.get_setting, "display_tz") == "Europe/London"
        assert "Europe/London" in window.windowTitle()
        assert errors == []


@pytest.mark.asyncio
async def test_run_with_arguments_passes_words_not_a_command_line(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [{**JOB, "args": ["--default"]}]) as (
        core,
        window,
        dialogs,
        errors,
    ):
        job_id = window.jobs_panel.selected_id()
        task = asyncio.ensure_future(window.commands.run_with_args(job_id))
        dlg = await dialogs.next()
        assert dlg.textValue() == "--default"
        dlg.setTextValue('--target "C:\\My Files" ; rm -rf /')
        dlg.accept()
        run_id = await asyncio.wait_for(task, timeout(10))
        run = await core.db.call(queries.get_run, run_id)
        assert run.args == ("--target", "C:\\My Files", ";", "rm", "-rf", "/")
        assert run.trigger == "manual"
        assert errors == []


@pytest.mark.asyncio
async def test_a_change_without_a_job_id_reloads_row_by_row(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB, {**JOB, "name": "other"}]) as (
        core,
        window,
        _dialogs,
        errors,
    ):
        keep = window.jobs_panel.selected_id()
        other = next(r.id for r in window.jobs_model.rows() if r.id != keep)
        # another process (the CLI) changes the database behind the window's back
        await core.db.call(queries.delete_job, other)
        await core.db.call(queries.create_job, {**JOB, "name": "imported", "script": "import.py"})
        resets = []
        window.jobs_model.modelReset.connect(lambda: resets.append(1))
        core.events.publish(JobChanged(0))
        await settle(window)
        assert sorted(r.name for r in window.jobs_model.rows()) == ["imported", "nightly"]
        assert resets == [] and window.jobs_panel.selected_id() == keep
        assert errors == []


class RecordingTray:
    """Stands in for QSystemTrayIcon (the offscreen platform has no tray)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.tooltip = ""
        self.icon = None

    def showMessage(self, title, text, *_icon):
        self.messages.append((title, text))

    def setIcon(self, icon):
        self.icon = icon

    def setToolTip(self, text):
        self.tooltip = text

    def hide(self):
        pass


@pytest.mark.asyncio
async def test_tray_notifies_failures_and_offline_workers_and_close_keeps_running(tmp_path, qtbot):
    core = StoreCore(f"sqlite:///{tmp_path / 'tray.db'}")
    await core.start()
    await core.db.call(queries.create_job, JOB)
    await core.db.call(queries.add_worker, "w1", [], 1)
    tray = RecordingTray()
    window = MainWindow(core, tray=tray)
    qtbot.addWidget(window)
    quits = []
    window.quitRequested.connect(lambda: quits.append(1))
    try:
        window.show()
        await window.load()
        assert "System Offline" in tray.tooltip
        core.connect_worker("w1")
        await settle(window)
        job_id = window.jobs_panel.selected_id()
        run_id = await window.commands.run_now(job_id)
        await core.start_run(run_id, "w1")
        await core.finish_run(run_id, "failed", 2)
        await settle(window)
        assert ("Run failed", f"nightly: run {run_id} failed") in tray.messages
        core.online.pop("w1")
        from desktop.core.events import WorkerChanged

        core.events.publish(WorkerChanged("w1", False))
        await settle(window)
        assert any(title == "Worker offline" and "w1" in text for title, text in tray.messages)

        # closing the window hides it; the first time it says why; Quit really quits
        window.close()
        assert not window.isVisible() and quits == []
        assert tray.messages[-1][0] == "Job Trigger is still running"
        await settle(window)
        assert await core.db.call(queries.get_setting, "ui.tray_explained") == "1"
        window.show()
        window.close()
        assert not window.isVisible()
        assert [m[0] for m in tray.messages].count("Job Trigger is still running") == 1
        window.acts.act_quit.trigger()
        assert quits == [1]
    finally:
        window.shutdown()
        await asyncqt.cancel_pending()
        await core.stop()


@pytest.mark.asyncio
async def test_a_database_outage_is_shown_in_the_status_bar_not_in_a_dialog_per_refresh(
    tmp_path, qtbot
):
    from desktop.store.errors import DatabaseUnreachable

    async with console(tmp_path, qtbot, [JOB]) as (core, window, dialogs, errors):
        real_call = core.db.call

        async def unreachable(*_args, **_kw):
            raise DatabaseUnreachable("the server at 127.0.0.1:5432 did not answer")

        core.db.call = unreachable
        try:
            for _ in range(3):  # three status ticks, three job events
                window._status_dirty = True
                window._tick()
                core.events.publish(JobChanged(window.jobs_panel.selected_id()))
                await settle(window)
            assert "Database problem" in window.status_label.text()
            assert "did not answer" in window.status_label.text()
            assert errors == [] and dialogs.queue.empty()
            assert not [b for b in window.findChildren(QMessageBox) if b.isVisible()]
        finally:
            core.db.call = real_call
        await window.refresh_status()  # back: the normal status line returns
        assert window.status_label.text().startswith("System Offline")


@pytest.mark.asyncio
async def test_failed_actions_say_who_is_to_blame(tmp_path, qtbot):
    from desktop.store.errors import NotFound

    async with console(tmp_path, qtbot) as (_core, window, _dialogs, _errors):
        window.commands.report_error("enable job", NotFound("job 7 does not exist (deleted?)"))
        window.commands.report_error("run now", KeyError("slots"))
        boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
        texts = [b.text() for b in boxes]
        assert "Enable job failed: job 7 does not exist (deleted?)" in texts
        assert any("bug in Job Trigger" in t for t in texts)
        for b in boxes:
            b.close()


@pytest.mark.asyncio
async def test_a_large_job_table_shows_its_first_screen_then_the_rest(tmp_path, qtbot, monkeypatch):
    monkeypatch.setattr(mw, "FIRST_JOBS", 5)
    monkeypatch.setattr(mw, "JOBS_PAGE", 4)
    names = [f"Job {n:02d}" if n % 2 else f"job {n:02d}" for n in range(20)]
    specs = [{**JOB, "name": name} for name in reversed(names)]  # ids not in name order
    reached = asyncio.Event()
    loop = asyncio.get_running_loop()
    real_page = mw.data.job_rows_page

    def page_and_signal(reads, after_id, limit):  # runs on the database thread
        loop.call_soon_threadsafe(reached.set)
        return real_page(reads, after_id, limit)

    monkeypatch.setattr(mw.data, "job_rows_page", page_and_signal)
    async with console(tmp_path, qtbot, specs) as (core, window, _dialogs, errors):
        first = [window.jobs_model.row_at(i).name for i in range(window.jobs_model.rowCount())]
        expected = sorted(names, key=str.casefold)
        # the first screen is exactly the first rows of the name order (case-insensitive)
        assert first == expected[:5]
        assert window.jobs_panel.count.text() == "5 of 20 jobs, loading the rest…"
        await asyncio.wait_for(reached.wait(), timeout(10))
        # a job deleted while the rest is read (it is in the first page read: the oldest id)
        # does not come back with that snapshot
        victim = await core.db.call(queries.get_job_by_name, expected[-1])
        assert victim.id == min(r.id for r in await core.db.call(queries.list_jobs))
        await core.db.call(queries.delete_job, victim.id)
        core.events.publish(JobChanged(victim.id, deleted=True))
        # and a change seen only as "something changed" (the CLI) during the load
        other = await core.db.call(queries.get_job_by_name, expected[-2])
        await core.db.call(queries.set_job_enabled, other.id, False)
        core.events.publish(JobChanged(0))
        await settle(window)
        await asyncio.wait_for(window.all_jobs_loaded.wait(), timeout(10))
        await settle(window)
        shown = [window.jobs_model.row_at(i).name for i in range(window.jobs_model.rowCount())]
        assert shown == expected[:-1]
        assert window.jobs_panel.count.text() == "19 jobs"
        row = window.jobs_model.row_at(window.jobs_model.row_for_key(other.id))
        assert row.enabled is False
        assert window.jobs_panel.selected_id() is not None
        assert errors == []


@pytest.mark.asyncio
async def test_each_job_action_runs_its_command_on_the_selected_job(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (_core, window, _dialogs, errors):
        job_id = window.jobs_panel.selected_id()
        calls = []

        def record(name):
            async def command(*args, **kwargs):
                calls.append((name, args, kwargs))

            return command

        names = ("edit_job", "delete_job", "set_enabled", "run_now", "run_with_args")
        commands = SimpleNamespace(show_about=lambda: None, **{n: record(n) for n in names})
        # the actions part alone: its own host window, fake commands, the window's views
        host = QMainWindow()
        qtbot.addWidget(host)
        acts = WindowActions(host, commands, window.panels, host=window)
        for action in (
            acts.act_edit,
            acts.act_duplicate,
            acts.act_delete,
            acts.act_enable,
            acts.act_disable,
            acts.act_run,
            acts.act_run_args,
        ):
            action.setEnabled(True)  # which are enabled is another test's business
            action.trigger()
        await settle(window)
        assert calls == [
            ("edit_job", (job_id,), {}),
            ("edit_job", (job_id,), {"copy": True}),
            ("delete_job", (job_id,), {}),
            ("set_enabled", (job_id, True), {}),
            ("set_enabled", (job_id, False), {}),
            ("run_now", (job_id,), {}),
            ("run_with_args", (job_id,), {}),
        ]
        window.jobs_panel.view.clearSelection()
        window.jobs_panel.view.setCurrentIndex(window.jobs_panel.proxy.index(-1, -1))
        calls.clear()
        acts.act_run.trigger()
        await settle(window)
        assert calls == [] and errors == []


@pytest.mark.asyncio
async def test_edit_worker_changes_its_tags_and_slots_with_clicks_and_keys(tmp_path, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialogButtonBox

    async with console(tmp_path, qtbot) as (core, window, dialogs, errors):
        await core.db.call(queries.add_worker, "fs01", ["win"], 1)
        await window.refresh_workers()
        window.tabs.setCurrentWidget(window.workers_panel)
        view = window.workers_panel.view
        row = next(
            r
            for r in range(window.workers_model.rowCount())
            if window.workers_model.row_at(r).name == "fs01"
        )
        assert not window.acts.act_edit_worker.isEnabled()  # nothing selected yet
        rect = view.visualRect(window.workers_model.index(row, 0))
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert window.acts.act_edit_worker.isEnabled()
        button = window.workers_panel.toolbar.widgetForAction(window.acts.act_edit_worker)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        dlg = await dialogs.next()
        assert dlg.tags.text() == "win" and dlg.slots.value() == 1
        save = dlg.buttons.button(QDialogButtonBox.StandardButton.Save)

        # a tag over 100 characters: Save is refused until it is fixed
        dlg.tags.selectAll()
        qtbot.keyClicks(dlg.tags, "x" * 101)
        assert not save.isEnabled() and "at most 100" in dlg.tags_error.text()
        dlg.tags.selectAll()
        qtbot.keyClicks(dlg.tags, "prod, sql")
        dlg.slots.selectAll()
        qtbot.keyClicks(dlg.slots, "3")
        assert save.isEnabled()
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
        await settle(window)

        record = await core.db.call(queries.get_worker, "fs01")
        assert (record.tags, record.slots) == (("prod", "sql"), 3)
        assert window.workers_model.get("fs01").tags == ("prod", "sql")
        entry = (await core.db.call(queries.list_audit, 1))[0]
        assert (entry.action, entry.entity_name) == ("updated", "fs01")

        # Cancel (Escape) changes nothing
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        dlg = await dialogs.next()
        dlg.tags.selectAll()
        qtbot.keyClicks(dlg.tags, "other")
        qtbot.keyClick(dlg, Qt.Key.Key_Escape)
        await settle(window)
        assert (await core.db.call(queries.get_worker, "fs01")).tags == ("prod", "sql")
        assert errors == []


class FakeStatusBar:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def showMessage(self, text: str, _ms: int = 0) -> None:
        self.messages.append(text)


@pytest.mark.asyncio
async def test_the_commands_part_runs_alone_on_a_fake_core_and_host(qtbot):
    """WindowCommands needs only what it is given: no window, no store, no event loop of Qt's."""
    asked = []

    class FakeCore:
        async def run_now(self, job_id, args=None):
            asked.append((job_id, args))
            return 41

    bar = FakeStatusBar()
    reloaded = []

    async def reload_runs(ids):
        reloaded.append(ids)

    host = SimpleNamespace(
        statusBar=lambda: bar,
        reload_runs=reload_runs,
        select_run=lambda run_id: reloaded.append(("selected", run_id)),
    )
    # the runs table shows job 3: its new run is read and selected; for job 4 it is not
    panels = SimpleNamespace(runs_model=SimpleNamespace(job_id=3))
    commands = WindowCommands(None, FakeCore(), panels, host)
    assert await commands.run_now(3, ["--fast"]) == 41
    assert await commands.run_now(4) == 41
    assert asked == [(3, ["--fast"]), (4, None)]
    assert bar.messages == ["Run 41 queued", "Run 41 queued"]
    assert reloaded == [[41], ("selected", 41)]
