"""The main window: jobs, the selected job's runs and chart, the live log pane, the workers panel
and the status bar, wired to the core facade (desktop.service.Core).

Everything that touches the core or the database is a coroutine started with asyncqt.spawn, so
the window never waits on I/O; dialogs are opened with open() and awaited (asyncqt.ask).
Events come from the EventBridge once per frame and update single rows.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core import runs as run_states
from desktop.core.timeutil import utcnow
from desktop.store import queries
from desktop.store.errors import ValidationError
from desktop.ui import data
from desktop.ui.about import about_box
from desktop.ui.asyncqt import ask, confirm, set_error_handler, show_message, spawn
from desktop.ui.bridge import EventBridge
from desktop.ui.chart import RunChart
from desktop.ui.editor import JobEditorDialog
from desktop.ui.formatting import DEFAULT_DISPLAY_TZ, system_status_text
from desktop.ui.icons import app_icon, std_icon
from desktop.ui.log_pane import LogPane
from desktop.ui.models import ROW_ROLE, JobsTableModel, RunsTableModel, WorkersTableModel
from desktop.ui.panels import JobsPanel, WorkersPanel, _table
from desktop.ui.rows import job_row, run_row, worker_row
from desktop.ui.settings_dialog import (
    NOTIFY_FAILURES,
    NOTIFY_OFFLINE,
    TRAY_EXPLAINED,
    SettingsDialog,
)
from desktop.ui.worker_dialogs import AddWorkerDialog, TokenDialog

log = logging.getLogger(__name__)

FAILED_STATES = frozenset({run_states.FAILED, run_states.TIMED_OUT, run_states.LOST})
STATUS_REFRESH_MS = 1000


class MainWindow(QMainWindow):
    quitRequested = Signal()
    loaded = Signal()

    def __init__(self, core: Any, *, db_url: str = "", tray: Any = True) -> None:
        """`tray`: True = a system tray icon when the desktop has a tray, False = none, or an
        object with QSystemTrayIcon's showMessage/setIcon/setToolTip/hide (tests)."""
        super().__init__()
        self.core = core
        self.db_url = db_url
        self.settings: dict[str, str] = {}
        self.display_tz = DEFAULT_DISPLAY_TZ
        self._quitting = False
        self._status_dirty = True
        self._known_online: dict[str, bool] = {}
        self.load_task: asyncio.Task | None = None
        self.setWindowTitle("Job Trigger")
        self.setWindowIcon(app_icon())
        self.resize(1280, 820)

        # models and views
        self.jobs_model = JobsTableModel(self)
        self.runs_model = RunsTableModel(self._load_runs_page, parent=self)
        self.workers_model = WorkersTableModel(self)
        self.jobs_panel = JobsPanel(self.jobs_model)
        self.runs_view = _table(self.runs_model, sortable=False)
        for col, width in enumerate((60, 100, 140, 80, 65, 110, 80)):
            self.runs_view.setColumnWidth(col, width)
        self.runs_view.horizontalHeader().setStretchLastSection(True)
        self.runs_title = QLabel("Runs")
        self.chart = RunChart()
        self.log_pane = LogPane()
        self.log_pane.set_reader(self._read_output)
        self.workers_panel = WorkersPanel(self.workers_model)

        runs_box = QWidget()
        rl = QVBoxLayout(runs_box)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.runs_title)
        rl.addWidget(self.chart)
        rl.addWidget(self.runs_view, 1)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(runs_box)
        bottom.addWidget(self.log_pane)
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 1)
        jobs_split = QSplitter(Qt.Orientation.Vertical)
        jobs_split.addWidget(self.jobs_panel)
        jobs_split.addWidget(bottom)
        jobs_split.setStretchFactor(0, 3)
        jobs_split.setStretchFactor(1, 2)
        self.tabs = QTabWidget()
        self.tabs.addTab(jobs_split, "Jobs")
        self.tabs.addTab(self.workers_panel, "Workers")
        self.setCentralWidget(self.tabs)
        # the jobs toolbar acts on the selected job: show it only with the jobs
        self.tabs.currentChanged.connect(lambda i: self.jobs_toolbar.setVisible(i == 0))

        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label, 1)

        self._make_actions()
        self._make_menus()
        self._update_actions()

        # events
        self.bridge = EventBridge(core.events, self)
        self.bridge.jobsChanged.connect(self._on_jobs_changed)
        self.bridge.runsChanged.connect(self._on_runs_changed)
        self.bridge.outputAppended.connect(self.log_pane.append)
        self.bridge.workersChanged.connect(self._on_workers_changed)
        self.jobs_panel.selectedJobChanged.connect(self._job_selected)
        self.runs_view.selectionModel().currentRowChanged.connect(self._run_selected)
        self.runs_model.rowsInserted.connect(self._refresh_chart)
        self.runs_model.dataChanged.connect(self._refresh_chart)
        self.runs_model.modelReset.connect(self._refresh_chart)
        self.jobs_panel.view.doubleClicked.connect(lambda _i: self.act_edit.trigger())
        enter = QShortcut(QKeySequence(Qt.Key.Key_Return), self.jobs_panel.view)
        enter.setContext(Qt.ShortcutContext.WidgetShortcut)
        enter.activated.connect(self.act_edit.trigger)
        self.jobs_panel.view.customContextMenuRequested.connect(self._jobs_menu)
        self.runs_view.customContextMenuRequested.connect(self._runs_menu)
        self.workers_panel.view.customContextMenuRequested.connect(self._workers_menu)
        self.workers_panel.view.selectionModel().currentRowChanged.connect(self._update_actions)

        self.status_timer = QTimer(self)
        self.status_timer.setInterval(STATUS_REFRESH_MS)
        self.status_timer.timeout.connect(self._tick)
        if tray is True:
            self.tray = self._make_tray()
        else:
            self.tray = tray or None
        set_error_handler(self._report_error)

    # ------------------------------------------------------------------ setup
    def _action(self, text, slot, shortcut=None, icon=None, tip="") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if icon:
            action.setIcon(std_icon(icon))
        action.setToolTip(
            f"{tip or text} ({QKeySequence(shortcut).toString()})" if shortcut else tip or text
        )
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        job = self.jobs_panel.selected_id
        self.act_new = self._action(
            "&New job…",
            lambda: spawn(self.new_job(), "new job"),
            QKeySequence.StandardKey.New,
            "SP_FileIcon",
        )
        self.act_edit = self._action(
            "&Edit…",
            lambda: job() and spawn(self.edit_job(job()), "edit job"),
            "Ctrl+E",
            "SP_FileDialogDetailedView",
        )
        self.act_duplicate = self._action(
            "D&uplicate…",
            lambda: job() and spawn(self.edit_job(job(), copy=True), "duplicate job"),
            "Ctrl+D",
            "SP_FileDialogNewFolder",
        )
        self.act_delete = self._action(
            "&Delete…",
            lambda: job() and spawn(self.delete_job(job()), "delete job"),
            QKeySequence.StandardKey.Delete,
            "SP_TrashIcon",
        )
        self.act_enable = self._action(
            "Ena&ble",
            lambda: job() and spawn(self.set_enabled(job(), True), "enable job"),
            "Ctrl+Shift+E",
            "SP_DialogYesButton",
        )
        self.act_disable = self._action(
            "Disa&ble",
            lambda: job() and spawn(self.set_enabled(job(), False), "disable job"),
            "Ctrl+Shift+D",
            "SP_DialogNoButton",
        )
        self.act_run = self._action(
            "&Run now",
            lambda: job() and spawn(self.run_now(job()), "run now"),
            "F5",
            "SP_MediaPlay",
            "Start the selected job now",
        )
        self.act_run_args = self._action(
            "Run &with arguments…",
            lambda: job() and spawn(self.run_with_args(job()), "run with arguments"),
            "Shift+F5",
            "SP_MediaSeekForward",
        )
        self.act_cancel = self._action(
            "&Cancel run",
            lambda: spawn(self.cancel_selected_run(), "cancel run"),
            "Ctrl+.",
            "SP_MediaStop",
            "Cancel the selected (or the job's newest active) run",
        )
        self.act_filter = self._action("Filter", self._focus_filter, "Ctrl+L")
        self.act_add_worker = self._action(
            "&Add worker…", lambda: spawn(self.add_worker(), "add worker"), None, "SP_ComputerIcon"
        )
        self.act_revoke = self._action(
            "&Revoke worker…",
            lambda: spawn(self.revoke_worker(), "revoke worker"),
            None,
            "SP_BrowserStop",
        )
        self.act_worker_enable = self._action(
            "Enable worker", lambda: spawn(self.set_worker_enabled(True), "enable worker")
        )
        self.act_worker_disable = self._action(
            "Disable worker", lambda: spawn(self.set_worker_enabled(False), "disable worker")
        )
        self.act_settings = self._action(
            "&Settings…",
            lambda: spawn(self.edit_settings(), "settings"),
            QKeySequence.StandardKey.Preferences,
        )
        self.act_about = self._action("&About Job Trigger", self.show_about)
        self.act_quit = self._action("&Quit", self.request_quit, QKeySequence.StandardKey.Quit)

    def _make_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addAction(self.act_settings)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = bar.addMenu("&Jobs")
        for a in (
            self.act_new,
            self.act_edit,
            self.act_duplicate,
            self.act_delete,
            None,
            self.act_enable,
            self.act_disable,
            None,
            self.act_run,
            self.act_run_args,
            self.act_cancel,
            None,
            self.act_filter,
        ):
            m.addSeparator() if a is None else m.addAction(a)
        m = bar.addMenu("&Workers")
        for a in (
            self.act_add_worker,
            self.act_revoke,
            self.act_worker_enable,
            self.act_worker_disable,
        ):
            m.addAction(a)
        bar.addMenu("&Help").addAction(self.act_about)

        tb = self.jobs_toolbar = self.addToolBar("Jobs")
        tb.setObjectName("jobs-toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (
            self.act_new,
            self.act_edit,
            self.act_duplicate,
            self.act_delete,
            None,
            self.act_run,
            self.act_run_args,
            self.act_cancel,
            None,
            self.act_enable,
            self.act_disable,
        ):
            tb.addSeparator() if a is None else tb.addAction(a)
        wt = self.workers_panel.toolbar
        wt.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (
            self.act_add_worker,
            self.act_revoke,
            self.act_worker_enable,
            self.act_worker_disable,
        ):
            wt.addAction(a)

    def _make_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None  # no tray (e.g. offscreen, some desktops): closing the window quits
        tray = QSystemTrayIcon(app_icon(), self)
        menu = QMenu(self)
        menu.addAction("Show Job Trigger", self.show_normal)
        menu.addSeparator()
        menu.addAction(self.act_quit)
        tray.setContextMenu(menu)
        tray.setToolTip("Job Trigger")
        tray.activated.connect(
            lambda reason: reason == QSystemTrayIcon.ActivationReason.Trigger and self.show_normal()
        )
        tray.show()
        return tray

    # ------------------------------------------------------------------ loading
    async def load(self) -> None:
        """Initial data: settings, all jobs, workers, counts.  Call once after core.start()."""
        self.settings = await self.core.db.call(data.display_settings)
        self.apply_display_tz(self.settings.get("display_tz", DEFAULT_DISPLAY_TZ))
        self.jobs_model.set_rows(
            await self.core.db.call(data.job_rows, *(self.jobs_model.sorting or (0, False)))
        )
        await self.refresh_workers()
        await self.refresh_status()
        self.status_timer.start()
        if self.jobs_model.rowCount() and self.jobs_panel.selected_id() is None:
            self.jobs_panel.select(self.jobs_model.row_at(0).id)
        self.loaded.emit()

    def apply_display_tz(self, name: str) -> None:
        self.display_tz = name
        for model in (self.jobs_model, self.runs_model, self.workers_model):
            model.set_display_tz(name)
        self.jobs_panel.view.model().headerDataChanged.emit(Qt.Orientation.Horizontal, 0, 6)
        self.setWindowTitle(f"Job Trigger — times in {name}")

    async def _load_runs_page(self, job_id, before_id, limit):
        return await self.core.db.call(data.run_rows, job_id, limit, before_id)

    async def _read_output(self, run_id, after_seq, limit):
        return await self.core.db.call(queries.read_output, run_id, after_seq, limit)

    async def refresh_workers(self) -> None:
        records = await self.core.db.call(queries.list_workers)
        live = {s.name: s for s in self.core.worker_status()}
        rows = []
        for rec in records:
            if rec.revoked:
                continue
            status = live.get(rec.name)
            row = worker_row(status if status is not None else rec, enabled=rec.enabled)
            if status is None:
                row = worker_row(rec, enabled=rec.enabled)
            rows.append(row)
        existing = {r.name for r in self.workers_model.rows()}
        keep = {r.name for r in rows}
        for name in existing - keep:
            self.workers_model.remove(name)
        for row in rows:
            self.workers_model.upsert(row)
        self._status_dirty = True

    async def refresh_status(self) -> None:
        running, queued = await self.core.db.call(data.run_counts)
        workers = self.workers_model.rows()
        online = sum(1 for w in workers if w.online)
        text, alarm = system_status_text(online, len(workers), running, queued)
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d64541; font-weight: bold;" if alarm else "")
        if self.tray is not None:
            self.tray.setIcon(app_icon(alarm))
            self.tray.setToolTip(f"Job Trigger — {text}")
        self._status_dirty = False

    def _tick(self) -> None:
        self.workers_model.tick(utcnow())
        if self._status_dirty:
            self._status_dirty = False
            spawn(self._refresh_all_status(), "refreshing the status")

    async def _refresh_all_status(self) -> None:
        await self.refresh_workers()
        await self.refresh_status()

    # ------------------------------------------------------------------ events
    def _on_jobs_changed(self, changes: dict[int, bool]) -> None:
        if any(job_id <= 0 for job_id in changes):
            # "something changed" without an id (e.g. a CLI import seen via the change marker)
            spawn(self.reload_all_jobs(), "refreshing jobs")
            return
        for job_id, deleted in changes.items():
            if deleted:
                self.jobs_model.remove(job_id)
        live = [j for j, deleted in changes.items() if not deleted]
        if live:
            spawn(self._reload_jobs(live), "refreshing jobs")

    async def reload_all_jobs(self) -> None:
        """Bring the table in line with the database row by row (no reset: selection, scroll
        position and sort stay)."""
        shown = {r.id: r for r in self.jobs_model.rows()}
        changed, removed = await self.core.db.call(
            data.job_changes, shown, *(self.jobs_model.sorting or (0, False))
        )
        for job_id in removed:
            self.jobs_model.remove(job_id)
        for row in changed:
            self.jobs_model.upsert(row)
        self._update_actions()

    async def _reload_jobs(self, ids: list[int]) -> None:
        records = await self.core.db.call(data.jobs_by_id, ids)
        for job_id, rec in records.items():
            if rec is None:
                self.jobs_model.remove(job_id)
            else:
                self.jobs_model.upsert(job_row(rec))
        self._update_actions()

    def _on_runs_changed(self, changes: dict[int, Any]) -> None:
        self._status_dirty = True
        # the job rows show the last outcome; the runs table shows the selected job's runs
        job_ids = {e.job_id for e in changes.values()}
        spawn(self._reload_jobs(sorted(job_ids)), "refreshing jobs")
        current = self.runs_model.job_id
        mine = [run_id for run_id, e in changes.items() if e.job_id == current]
        if mine:
            spawn(self._reload_runs(mine), "refreshing runs")
        self._notify_runs(changes)

    async def _reload_runs(self, ids: list[int]) -> None:
        records = await self.core.db.call(data.runs_by_id, ids)
        for rec in records.values():
            if rec is not None:
                self.runs_model.apply(run_row(rec))
        self._update_actions()

    def _on_workers_changed(self, changes: dict[str, bool]) -> None:
        if self.tray is not None and self.settings.get(NOTIFY_OFFLINE, "1") == "1":
            for name, online in changes.items():
                if not online and self._known_online.get(name):
                    self.tray.showMessage(
                        "Worker offline",
                        f"{name} stopped sending heartbeats; its runs may be marked lost.",
                        QSystemTrayIcon.MessageIcon.Warning,
                    )
        self._known_online.update(changes)
        spawn(self._refresh_all_status(), "refreshing workers")

    def _notify_runs(self, changes: dict[int, Any]) -> None:
        if self.tray is None or self.settings.get(NOTIFY_FAILURES, "1") != "1":
            return
        failed = [e for e in changes.values() if e.state in FAILED_STATES]
        if not failed:
            return
        names = {r.id: r.name for r in self.jobs_model.rows()} if len(failed) > 0 else {}
        e = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        self.tray.showMessage(
            "Run failed",
            f"{names.get(e.job_id, f'job {e.job_id}')}: run {e.run_id} {e.state}{more}",
            QSystemTrayIcon.MessageIcon.Critical,
        )

    # ------------------------------------------------------------------ selection
    def _job_selected(self, job_id: int | None) -> None:
        row = self.jobs_model.get(job_id) if job_id is not None else None
        self.runs_title.setText(f"Runs of {row.name}" if row else "Runs")
        self.runs_model.set_job(job_id)
        self.log_pane.show_run(None)
        self._update_actions()

    def _run_selected(self, current: QModelIndex, _previous=None) -> None:
        run = current.data(ROW_ROLE) if current.isValid() else None
        if run is None:
            self.log_pane.show_run(None)
        elif run.id != self.log_pane.run_id:
            self.log_pane.show_run(run.id, f"Output of run {run.id} ({run.state})")
        self._update_actions()

    def _refresh_chart(self, *_args) -> None:
        rows = [self.runs_model.row_at(i) for i in range(min(50, self.runs_model.rowCount()))]
        self.chart.set_runs(rows)
        # keep the log title's state current while the selected run moves on
        index = self.runs_view.selectionModel().currentIndex()
        if index.isValid():
            run = index.data(ROW_ROLE)
            if run is not None and run.id == self.log_pane.run_id:
                self.log_pane.title.setText(f"Output of run {run.id} ({run.state})")

    def select_run(self, run_id: int) -> bool:
        row = self.runs_model.row_for_key(run_id)
        if row is None:
            return False
        self.runs_view.selectionModel().setCurrentIndex(
            self.runs_model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def selected_run(self):
        index = self.runs_view.selectionModel().currentIndex()
        return index.data(ROW_ROLE) if index.isValid() else None

    def _update_actions(self, *_args) -> None:
        row = self.jobs_panel.selected_row() if self.jobs_panel.selected_id() else None
        has = row is not None
        for a in (
            self.act_edit,
            self.act_duplicate,
            self.act_delete,
            self.act_run,
            self.act_run_args,
        ):
            a.setEnabled(has)
        self.act_enable.setEnabled(has and not row.enabled)
        self.act_disable.setEnabled(has and row.enabled)
        run = self.selected_run()
        active = any(
            self.runs_model.row_at(i).state in run_states.ACTIVE
            for i in range(min(20, self.runs_model.rowCount()))
        )
        self.act_cancel.setEnabled(
            (run is not None and run.state in run_states.ACTIVE) or (has and active)
        )
        worker = self.workers_panel.selected_name()
        w = self.workers_model.get(worker) if worker else None
        self.act_revoke.setEnabled(w is not None)
        self.act_worker_enable.setEnabled(w is not None and not w.enabled)
        self.act_worker_disable.setEnabled(w is not None and w.enabled)

    def _focus_filter(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.jobs_panel.filter.setFocus()
        self.jobs_panel.filter.selectAll()

    # ------------------------------------------------------------------ menus
    def _jobs_menu(self, pos) -> None:
        menu = QMenu(self)
        for a in (
            self.act_run,
            self.act_run_args,
            self.act_cancel,
            None,
            self.act_edit,
            self.act_duplicate,
            self.act_enable,
            self.act_disable,
            None,
            self.act_delete,
            None,
            self.act_new,
        ):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(self.jobs_panel.view.viewport().mapToGlobal(pos))

    def _runs_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction(self.act_cancel)
        menu.addAction("Save output…", self.log_pane._ask_save)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(self.runs_view.viewport().mapToGlobal(pos))

    def _workers_menu(self, pos) -> None:
        menu = QMenu(self)
        for a in (
            self.act_worker_enable,
            self.act_worker_disable,
            self.act_revoke,
            None,
            self.act_add_worker,
        ):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(self.workers_panel.view.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ job actions
    def make_editor(self) -> JobEditorDialog:
        workers = [w.name for w in self.workers_model.rows()]
        tags = sorted({t for w in self.workers_model.rows() for t in w.tags})
        try:
            scripts = self.core.script_catalogue()
        except Exception:  # the catalogue is a nicety; the field stays editable
            log.exception("script catalogue unavailable")
            scripts = []
        return JobEditorDialog(
            self,
            display_tz=self.display_tz,
            scripts=scripts,
            workers=workers,
            tags=tags,
            taken_names=[r.name for r in self.jobs_model.rows()],
        )

    async def new_job(self) -> Any:
        dlg = self.make_editor()
        dlg.saver = self.core.save_job
        return await self._run_editor(dlg)

    async def edit_job(self, job_id: int, *, copy: bool = False) -> Any:
        record = await self.core.db.call(queries.get_job, job_id)
        if record is None:
            show_message(self, "Job gone", "This job was deleted meanwhile.")
            self.jobs_model.remove(job_id)
            return None
        dlg = self.make_editor()
        dlg.load(record.to_spec(), job_id, copy=copy)
        if copy:
            dlg.saver = self.core.save_job
        else:
            dlg.saver = lambda spec: self.core.save_job(spec, job_id)
        return await self._run_editor(dlg)

    async def _run_editor(self, dlg: JobEditorDialog) -> Any:
        self.editor = dlg  # tests and screenshots reach the open dialog here
        code = await ask(dlg)
        self.editor = None
        dlg.deleteLater()
        record = dlg.result_record
        if code and record is not None:
            self.jobs_model.upsert(job_row(record))
            self.jobs_panel.select(record.id)
        return record if code else None

    editor: JobEditorDialog | None = None

    async def delete_job(self, job_id: int) -> bool:
        row = self.jobs_model.get(job_id)
        name = row.name if row else f"job {job_id}"
        if not await confirm(
            self,
            "Delete job",
            f"Delete “{name}” and all its runs and output? This cannot be undone.",
            destructive=True,
        ):
            return False
        await self.core.delete_job(job_id)
        self.jobs_model.remove(job_id)
        return True

    async def set_enabled(self, job_id: int, enabled: bool) -> None:
        await self.core.set_job_enabled(job_id, enabled)
        await self._reload_jobs([job_id])

    async def run_now(self, job_id: int, args: list[str] | None = None) -> int:
        run_id = await self.core.run_now(job_id, args)
        self.statusBar().showMessage(f"Run {run_id} queued", 5000)
        if self.runs_model.job_id == job_id:
            await self._reload_runs([run_id])
            self.select_run(run_id)
        return run_id

    async def run_with_args(self, job_id: int) -> int | None:
        record = await self.core.db.call(queries.get_job, job_id)
        if record is None:
            return None
        dlg = QInputDialog(self)
        dlg.setWindowTitle(f"Run {record.name} with arguments")
        dlg.setLabelText("Arguments for this run only (quote words with spaces):")
        dlg.setTextValue(shlex.join(record.args))
        try:
            if not await ask(dlg):
                return None
            text = dlg.textValue()
        finally:
            dlg.deleteLater()
        try:
            args = shlex.split(text)
        except ValueError as exc:
            show_message(self, "Arguments not understood", f"{exc}. Close the quote and try again.")
            return None
        return await self.run_now(job_id, args)

    async def cancel_selected_run(self) -> int | None:
        run = self.selected_run()
        if run is None or run.state not in run_states.ACTIVE:
            run = next(
                (
                    self.runs_model.row_at(i)
                    for i in range(self.runs_model.rowCount())
                    if self.runs_model.row_at(i).state in run_states.ACTIVE
                ),
                None,
            )
        if run is None:
            self.statusBar().showMessage("No active run to cancel", 5000)
            return None
        await self.core.cancel_run(run.id)
        self.statusBar().showMessage(f"Cancelling run {run.id}…", 5000)
        return run.id

    # ------------------------------------------------------------------ workers
    async def add_worker(self) -> str | None:
        dlg = AddWorkerDialog(self, taken={w.name for w in self.workers_model.rows()})
        try:
            if not await ask(dlg):
                return None
            name, tags, slots = dlg.values()
        finally:
            dlg.deleteLater()
        token = await self.core.add_worker(name, tags, slots)
        await self._refresh_all_status()
        token_dlg = TokenDialog(self, self.core.hub_url, name, token, tags, slots)
        try:
            await ask(token_dlg)
        finally:
            token_dlg.deleteLater()
        return token

    async def revoke_worker(self) -> bool:
        name = self.workers_panel.selected_name()
        if not name:
            return False
        if not await confirm(
            self,
            "Revoke worker",
            f"Revoke {name}? It is disconnected now and its token stops working; its running "
            "runs are marked lost. To bring the host back, add it again for a new token.",
            destructive=True,
        ):
            return False
        await self.core.revoke_worker(name)
        self.workers_model.remove(name)
        self._status_dirty = True
        return True

    async def set_worker_enabled(self, enabled: bool) -> None:
        name = self.workers_panel.selected_name()
        if name:
            await self.core.set_worker_enabled(name, enabled)
            await self.refresh_workers()
            self._update_actions()

    # ------------------------------------------------------------------ settings etc.
    async def edit_settings(self) -> dict[str, str]:
        dlg = SettingsDialog(self, self.settings)
        try:
            if not await ask(dlg):
                return {}
            changes = dlg.changes()
        finally:
            dlg.deleteLater()
        for key, value in changes.items():
            try:
                await self.core.db.call(queries.set_setting, key, value)
            except ValidationError as exc:
                show_message(self, "Setting refused", str(exc))
                return {}
        self.settings.update(changes)
        if "display_tz" in changes:
            self.apply_display_tz(changes["display_tz"])
        return changes

    def show_about(self) -> None:
        box = about_box(self, self.db_url, getattr(self.core, "hub_url", ""))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()

    def _report_error(self, what: str, exc: BaseException) -> None:
        """A failed action: environment problems and refusals are said plainly; our own bugs
        are logged with the trace and said as such."""
        from desktop.store.errors import StoreError

        if isinstance(
            exc,
            (
                ValidationError,
                StoreError,
                ValueError,
                PermissionError,
                ConnectionError,
                LookupError,
            ),
        ):
            show_message(self, "Could not finish", f"{what.capitalize()} failed: {exc}")
        else:
            log.error("%s failed", what, exc_info=exc)
            show_message(
                self,
                "Something went wrong",
                f"{what.capitalize()} failed because of a bug in Job Trigger: {exc!r}. "
                "The details are in the log file; please report them.",
            )

    # ------------------------------------------------------------------ tray / quit
    def show_normal(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def request_quit(self) -> None:
        self._quitting = True
        self.quitRequested.emit()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._quitting or self.tray is None:
            event.accept()
            self.request_quit()
            return
        # close to tray: the scheduler keeps running; say so the first time
        event.ignore()
        self.hide()
        if self.settings.get(TRAY_EXPLAINED) != "1":
            self.tray.showMessage(
                "Job Trigger is still running",
                "Jobs keep running on schedule. Use Quit in this icon's menu to stop them.",
                QSystemTrayIcon.MessageIcon.Information,
            )
            self.settings[TRAY_EXPLAINED] = "1"
            spawn(self.core.db.call(queries.set_setting, TRAY_EXPLAINED, "1"), "saving")

    def shutdown(self) -> None:
        self.status_timer.stop()
        self.bridge.close()
        if self.tray is not None:
            self.tray.hide()


def connect_quit(window: MainWindow, callback: Callable[[], None]) -> None:
    window.quitRequested.connect(callback)
