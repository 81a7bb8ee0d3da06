"""The main window: jobs, the selected job's runs and chart, the live log pane, the workers panel
and the status bar, wired to the core facade (desktop.service.Core).

The window is composed of parts with explicit inputs: the views and models (`Panels`), the
commands (window_commands.WindowCommands: what the actions do) and the actions
(window_actions.WindowActions: menus, toolbars, shortcuts, enabled state).  This module lays the
views out, loads them and keeps them current from the core's events.

Everything that touches the core or the database is a coroutine started with asyncqt.spawn, so
the window never waits on I/O; dialogs are opened with open() and awaited (asyncqt.ask).
Events come from the EventBridge once per frame and update single rows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QSystemTrayIcon,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop.core import runs as run_states
from desktop.core.coalesce import Coalescer
from desktop.core.timeutil import utcnow
from desktop.service.rules import StoreError
from desktop.ui import data
from desktop.ui.asyncqt import set_background_error_handler, set_error_handler, spawn
from desktop.ui.audit_panel import AuditPanel
from desktop.ui.bridge import EventBridge
from desktop.ui.chart import RunChart
from desktop.ui.formatting import DEFAULT_DISPLAY_TZ, OUTCOME_STYLE, system_status_text
from desktop.ui.icons import app_icon
from desktop.ui.log_pane import LogPane
from desktop.ui.models import ROW_ROLE, JobsTableModel, RunsTableModel, WorkersTableModel
from desktop.ui.panels import JobsPanel, Panels, WorkersPanel, fit_columns, make_table, widest
from desktop.ui.rows import job_row, offline_row, run_row, worker_row
from desktop.ui.settings_dialog import (
    NOTIFY_FAILURES,
    NOTIFY_OFFLINE,
    TRAY_EXPLAINED,
)
from desktop.ui.window_actions import WindowActions
from desktop.ui.window_commands import WindowCommands

log = logging.getLogger(__name__)

# Jobs read for the first screen; a larger table is read whole in the background after it.
FIRST_JOBS = 300
JOBS_PAGE = 5000  # about 0.1 s of the database thread per page

FAILED_STATES = frozenset({run_states.FAILED, run_states.TIMED_OUT, run_states.LOST})
STATUS_REFRESH_MS = 1000
# At most one worker-table refresh per this while events keep coming (a reconnect storm is
# thousands of "online" events a second; each refresh reads every worker): desktop/core/coalesce.py
WORKERS_REFRESH_S = 1.0
WORKER_ROWS_PER_TURN = 1000  # rows of the workers table refreshed per turn of the event loop


class MainWindow(QMainWindow):
    quitRequested = Signal()
    loaded = Signal()

    def _fit_to_screen(self, width: int, height: int) -> None:
        """The preferred size, made smaller on a small screen (1280x800 at 100 %) with room for
        the window manager's title bar and a panel, and centred."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(width, height)
            return
        avail = screen.availableGeometry()
        w = min(width, avail.width() - 40)
        h = min(height, avail.height() - 70)
        self.resize(w, h)
        self.move(avail.left() + (avail.width() - w) // 2, avail.top() + (avail.height() - h) // 2)

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
        self._status_refresh = Coalescer(WORKERS_REFRESH_S)
        self._known_online: dict[str, bool] = {}
        # while a large job table loads in the background: ids changed meanwhile (else None)
        self._jobs_touched: set[int] | None = None
        self._reload_all_after_load = False
        self.all_jobs_loaded = asyncio.Event()  # the whole job table is in (tests, benchmarks)
        self.setWindowTitle("Job Trigger")
        self.setWindowIcon(app_icon())
        self._fit_to_screen(1280, 820)

        # models and views
        self.jobs_model = JobsTableModel(self)
        self.runs_model = RunsTableModel(self._load_runs_page, parent=self)
        self.workers_model = WorkersTableModel(self)
        self.jobs_panel = JobsPanel(self.jobs_model)
        self.runs_view = make_table(self.runs_model, sortable=False)
        # Run, Outcome, Started, Duration, Exit code, Worker, Trigger, Scheduled
        self._runs_width = fit_columns(
            self.runs_view,
            (
                "99999",
                widest(self.runs_view, (label for label, _ in OUTCOME_STYLE.values())),
                "2026-12-31 23:59:59",
                "59 min 59 s",
                "-1",
                "fileserver-01",
                "schedule",
                "2026-12-31 23:59:59",
            ),
            icon_columns=(RunsTableModel.OUTCOME,),
        )
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
        self.bottom_split = bottom
        # the runs table gets the room its columns need (up to 62 %), the log pane the rest
        frame = self.runs_view.verticalScrollBar().sizeHint().width() + 8
        runs_width = min(self._runs_width + frame, int(self.width() * 0.62))
        bottom.setSizes([runs_width, max(200, self.width() - runs_width)])
        jobs_split = QSplitter(Qt.Orientation.Vertical)
        jobs_split.addWidget(self.jobs_panel)
        jobs_split.addWidget(bottom)
        jobs_split.setStretchFactor(0, 3)
        jobs_split.setStretchFactor(1, 2)
        self.tabs = QTabWidget()
        self.tabs.addTab(jobs_split, "Jobs")
        self.tabs.addTab(self.workers_panel, "Workers")
        self.audit_panel = AuditPanel(core.audit_events, self.display_tz)
        self.tabs.addTab(self.audit_panel, "Audit")
        self.setCentralWidget(self.tabs)
        # the jobs toolbar acts on the selected job: greyed out on the Workers tab, not hidden,
        # or the tab bar would jump up under the mouse
        self.tabs.currentChanged.connect(lambda i: self.jobs_toolbar.setEnabled(i == 0))
        # the audit trail is read when its tab is shown (and on Refresh), not on every change
        self.tabs.currentChanged.connect(self._tab_changed)

        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label, 1)
        # who leads when consoles share a PostgreSQL database (empty on SQLite: no cluster)
        self.cluster_label = QLabel()
        self.statusBar().addPermanentWidget(self.cluster_label)

        self.panels = Panels(
            self.jobs_model,
            self.runs_model,
            self.workers_model,
            self.jobs_panel,
            self.runs_view,
            self.workers_panel,
            self.log_pane,
            self.tabs,
        )
        self.commands = WindowCommands(self, core, self.panels, host=self)
        self.acts = WindowActions(self, self.commands, self.panels, host=self)
        self.jobs_toolbar: QToolBar = self.acts.jobs_toolbar

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
        self.jobs_panel.view.doubleClicked.connect(lambda _i: self.acts.act_edit.trigger())
        enter = QShortcut(QKeySequence(Qt.Key.Key_Return), self.jobs_panel.view)
        enter.setContext(Qt.ShortcutContext.WidgetShortcut)
        enter.activated.connect(self.acts.act_edit.trigger)
        self.workers_panel.view.selectionModel().currentRowChanged.connect(self.update_actions)

        self.status_timer = QTimer(self)
        self.status_timer.setInterval(STATUS_REFRESH_MS)
        self.status_timer.timeout.connect(self._tick)
        if tray is True:
            self.tray = self._make_tray()
        else:
            self.tray = tray or None
        set_error_handler(self.commands.report_error)
        set_background_error_handler(self._report_background_error)

    def _make_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None  # no tray (e.g. offscreen, some desktops): closing the window quits
        tray = QSystemTrayIcon(app_icon(), self)
        menu = QMenu(self)
        menu.addAction("Show Job Trigger", self.show_normal)
        menu.addSeparator()
        menu.addAction(self.acts.act_quit)
        tray.setContextMenu(menu)
        tray.setToolTip("Job Trigger")
        tray.activated.connect(self._tray_activated)
        tray.show()
        return tray

    # ------------------------------------------------------------------ loading
    async def load(self) -> None:
        """Initial data: settings, all jobs, workers, counts.  Call once after core.start()."""
        self.settings = await self.core.read(data.display_settings)
        self.apply_display_tz(self.settings.get("display_tz", DEFAULT_DISPLAY_TZ))
        sorting = self.jobs_model.sorting or (0, False)
        rows, total = await self.core.read(data.first_job_rows, *sorting, FIRST_JOBS)
        self.jobs_model.set_rows(rows)
        self.jobs_panel.set_loading(total)
        await self.refresh_workers()
        await self.refresh_status()
        self.status_timer.start()
        if self.jobs_model.rowCount() and self.jobs_panel.selected_id() is None:
            self.jobs_panel.select(self.jobs_model.row_at(0).id)
        if total is not None:  # last: the one database thread would make the reads above wait
            self._jobs_touched = set()
            spawn(self._load_all_jobs(sorting), "loading jobs", background=True)
        else:
            self.all_jobs_loaded.set()
        self.loaded.emit()

    async def _load_all_jobs(self, sorting: tuple[int, bool]) -> None:
        """The rest of a large job table, after the first screen is up.  Jobs that changed
        while it was read are read again afterwards, so the snapshot cannot undo them."""
        try:
            rows: list = []
            while True:  # in pages, so a click meanwhile waits for one page, not all of them
                after = rows[-1].id if rows else 0
                page = await self.core.read(data.job_rows_page, after, JOBS_PAGE)
                rows += page
                if len(page) < JOBS_PAGE:
                    break
            rows = await self.core.read(data.sort_job_rows, rows, *sorting)
            selected = self.jobs_panel.selected_id()
            self.jobs_model.set_rows(rows)
            if selected is not None:
                self.jobs_panel.select(selected)
        finally:
            self.jobs_panel.set_loading(None)
            touched, self._jobs_touched = self._jobs_touched, None
        if self._reload_all_after_load:
            self._reload_all_after_load = False
            await self.reload_all_jobs()
        elif touched:
            await self.reload_jobs(sorted(touched))
        self.all_jobs_loaded.set()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.audit_panel:
            self.audit_panel.refresh()

    def apply_display_tz(self, name: str) -> None:
        self.display_tz = name
        self.audit_panel.display_tz = name
        for model in (self.jobs_model, self.runs_model, self.workers_model):
            model.set_display_tz(name)
        self.jobs_panel.view.model().headerDataChanged.emit(Qt.Orientation.Horizontal, 0, 6)
        self.setWindowTitle(f"Job Trigger — times in {name}")

    async def _load_runs_page(self, job_id, before_id, limit):
        return await self.core.read(data.run_rows, job_id, limit, before_id)

    async def _read_output(self, run_id, after_seq, limit):
        return await self.core.read_output(run_id, after_seq, limit)

    async def refresh_workers(self) -> None:
        records = await self.core.known_workers()  # no database read: see its docstring
        live = {s.name: s for s in await self.core.live_workers()}
        model = self.workers_model
        # connected but not in the Core's records yet (registered by another process since
        # its last read): shown from the live status, as the database would have had it
        named = {rec.name for rec in records}
        records = records + [s for name, s in live.items() if name not in named]
        keep = {rec.name for rec in records if not getattr(rec, "revoked", False)}
        for name in [r.name for r in model.rows() if r.name not in keep]:
            model.remove(name)
        records = [rec for rec in records if not getattr(rec, "revoked", False)]
        changed = []
        for start in range(0, len(records), WORKER_ROWS_PER_TURN):
            # 10,000 workers: a turn of the loop between slices (and after reading the live
            # status), not one 100 ms stall.  A change meanwhile is not lost: its event asks
            # for another refresh after this one
            await asyncio.sleep(0)
            for rec in records[start : start + WORKER_ROWS_PER_TURN]:
                status = live.get(rec.name)
                enabled = getattr(rec, "enabled", True)  # a live status: connected, so enabled
                row = worker_row(status if status is not None else rec, enabled=enabled)
                shown = model.get(row.name)
                if status is None:
                    row = offline_row(row, shown)
                # only rows that changed: re-setting every row (a dataChanged and a sort check
                # each) was most of a refresh's time on the Qt thread
                if shown != row:
                    changed.append(row)
        # all at once, one dataChanged for the rows changed in place (a storm changes every
        # row: their heartbeats): a dataChanged per row was 70 ms of the Qt thread per refresh
        # at 5,000 workers, one per slice repainted the table after every slice (measured)
        model.update_rows(changed)
        self._status_dirty = True

    async def refresh_status(self) -> None:
        running, queued = await self.core.read(data.run_counts)
        workers = self.workers_model.rows()
        online = sum(1 for w in workers if w.online)
        text, alarm = system_status_text(online, len(workers), running, queued)
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d64541; font-weight: bold;" if alarm else "")
        if self.tray is not None:
            self.tray.setIcon(app_icon(alarm))
            self.tray.setToolTip(f"Job Trigger — {text}")
        self._status_dirty = False

    def _report_background_error(self, what: str, exc: BaseException) -> None:
        """A refresh failed (database away?): say so in the status bar, log it, try again on
        the next tick instead of opening a dialog every second."""
        if isinstance(exc, StoreError):
            log.warning("%s failed: %s", what, exc)
            text = f"Database problem while {what}: {exc}"
        else:
            log.error("%s failed", what, exc_info=exc)
            text = f"{what.capitalize()} failed ({exc!r}); details are in the log file"
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d64541; font-weight: bold;")
        self._status_dirty = True

    def _tick(self) -> None:
        self.workers_model.tick(utcnow())
        summary = getattr(self.core, "cluster_summary", None)
        self.cluster_label.setText(summary() if summary is not None else "")
        if self._status_dirty:
            self._status_dirty = False
            self.request_status_refresh()

    def request_status_refresh(self) -> None:
        """Refresh the workers table and the status bar soon: at once when nothing ran lately,
        else once the last refresh is WORKERS_REFRESH_S old (many requests, one refresh)."""
        delay = self._status_refresh.request(asyncio.get_running_loop().time())
        if delay is not None:
            spawn(self._refresh_status_later(delay), "refreshing the status", background=True)

    async def _refresh_status_later(self, delay: float) -> None:
        """The planned refreshes (a task, not a timer: waiting for tasks waits for it too)."""
        loop = asyncio.get_running_loop()
        while True:
            if delay:
                await asyncio.sleep(delay)
            if not self.status_timer.isActive():
                # not loaded yet (load() reads everything) or shut down: nothing to refresh
                self._status_refresh.cancel()
                return
            self._status_refresh.start(loop.time())
            try:
                await self.refresh_all_status()
            except Exception as exc:  # the next request must still get its refresh
                self._report_background_error("refreshing the status", exc)
            finally:
                next_delay = self._status_refresh.finish(loop.time())
            if next_delay is None:
                return
            delay = next_delay

    async def refresh_all_status(self) -> None:
        await self.refresh_workers()
        await self.refresh_status()

    # ------------------------------------------------------------------ events
    def _on_jobs_changed(self, changes: dict[int, bool]) -> None:
        if any(job_id <= 0 for job_id in changes):
            # "something changed" without an id (e.g. a CLI import seen via the change marker)
            if self._jobs_touched is not None:
                self._reload_all_after_load = True  # compared once the whole table is in
                return
            spawn(self.reload_all_jobs(), "refreshing jobs", background=True)
            return
        for job_id, deleted in changes.items():
            if deleted:
                self.jobs_model.remove(job_id)
                if self._jobs_touched is not None:
                    self._jobs_touched.add(job_id)
        live = [j for j, deleted in changes.items() if not deleted]
        if live:
            spawn(self.reload_jobs(live), "refreshing jobs", background=True)

    async def reload_all_jobs(self) -> None:
        """Bring the table in line with the database row by row (no reset: selection, scroll
        position and sort stay)."""
        shown = {r.id: r for r in self.jobs_model.rows()}
        changed, removed = await self.core.read(
            data.job_changes, shown, *(self.jobs_model.sorting or (0, False))
        )
        for job_id in removed:
            self.jobs_model.remove(job_id)
        for row in changed:
            self.jobs_model.upsert(row)
        self.update_actions()

    async def reload_jobs(self, ids: list[int]) -> None:
        if self._jobs_touched is not None:
            self._jobs_touched.update(ids)
        records = await self.core.read(data.jobs_by_id, ids)
        for job_id, rec in records.items():
            if rec is None:
                self.jobs_model.remove(job_id)
            else:
                self.jobs_model.upsert(job_row(rec))
        self.update_actions()

    def _on_runs_changed(self, changes: dict[int, Any]) -> None:
        self._status_dirty = True
        # the job rows show the last outcome; the runs table shows the selected job's runs
        job_ids = {e.job_id for e in changes.values()}
        spawn(self.reload_jobs(sorted(job_ids)), "refreshing jobs", background=True)
        current = self.runs_model.job_id
        mine = [run_id for run_id, e in changes.items() if e.job_id == current]
        if mine:
            spawn(self.reload_runs(mine), "refreshing runs", background=True)
        self._notify_runs(changes)

    async def reload_runs(self, ids: list[int]) -> None:
        records = await self.core.read(data.runs_by_id, ids)
        for rec in records.values():
            if rec is not None:
                self.runs_model.apply(run_row(rec))
        self.update_actions()

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
        self.request_status_refresh()

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
        self.update_actions()

    def _run_selected(self, current: QModelIndex, _previous=None) -> None:
        run = current.data(ROW_ROLE) if current.isValid() else None
        if run is None:
            self.log_pane.show_run(None)
        elif run.id != self.log_pane.run_id:
            self.log_pane.show_run(run.id, f"Output of run {run.id} ({run.state})")
        self.update_actions()

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

    def update_actions(self, *_args: Any) -> None:
        self.acts.update()

    def mark_status_dirty(self) -> None:
        """The status line and workers are read again on the next tick."""
        self._status_dirty = True

    # ------------------------------------------------------------------ tray / quit
    def show_normal(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def _tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_normal()

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
            spawn(
                self.core.set_setting(TRAY_EXPLAINED, "1"),
                "saving",
                background=True,
            )

    def shutdown(self) -> None:
        """Stop listening and ticking; failures of tasks still in flight are only logged."""
        self.status_timer.stop()
        self.bridge.close()
        set_error_handler(None)
        set_background_error_handler(None)
        if self.tray is not None:
            self.tray.hide()
