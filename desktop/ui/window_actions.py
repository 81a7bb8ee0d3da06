"""The main window's actions: menu bar, toolbars, shortcuts, context menus, and which actions
are enabled for the current selection.  What the actions do is in window_commands.py.

`WindowActions` is given the window it puts its menus and toolbar on, the commands its actions
call, the views (`Panels`) and the two window calls of `ActionHost`."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from desktop.core import runs as run_states
from desktop.ui.asyncqt import spawn
from desktop.ui.icons import std_icon
from desktop.ui.panels import Panels

log = logging.getLogger(__name__)


class ActionHost(Protocol):
    def selected_run(self) -> Any: ...

    def request_quit(self) -> None: ...


class WindowActions:
    def __init__(
        self, window: QMainWindow, commands: Any, panels: Panels, host: ActionHost
    ) -> None:
        """`commands`: a window_commands.WindowCommands, or anything with its coroutines."""
        self.window = window
        self.commands = commands
        self.panels = panels
        self.host = host
        self._make_actions()
        self._make_menus()
        self.update()
        panels.jobs_panel.view.customContextMenuRequested.connect(self._jobs_menu)
        panels.runs_view.customContextMenuRequested.connect(self._runs_menu)
        panels.workers_panel.view.customContextMenuRequested.connect(self._workers_menu)

    # ------------------------------------------------------------------ setup
    def _action(self, text, slot, shortcut=None, icon=None, tip="") -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if icon:
            action.setIcon(std_icon(icon))
        action.setToolTip(
            f"{tip or text} ({QKeySequence(shortcut).toString()})" if shortcut else tip or text
        )
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def _job_action(self, text, command, what, shortcut=None, icon=None, tip="") -> QAction:
        """An action on the selected job: ``command(job_id)`` is a coroutine; with no job
        selected it does nothing (the action is disabled then anyway)."""

        def trigger() -> None:
            job_id = self.panels.jobs_panel.selected_id()
            if job_id:
                spawn(command(job_id), what)

        return self._action(text, trigger, shortcut, icon, tip)

    def _make_actions(self) -> None:
        self.act_new = self._action(
            "&New job…",
            lambda: spawn(self.commands.new_job(), "new job"),
            QKeySequence.StandardKey.New,
            "SP_FileIcon",
        )
        job_action = self._job_action
        self.act_edit = job_action(
            "&Edit…", self.commands.edit_job, "edit job", "Ctrl+E", "SP_FileDialogDetailedView"
        )
        self.act_duplicate = job_action(
            "D&uplicate…",
            lambda j: self.commands.edit_job(j, copy=True),
            "duplicate job",
            "Ctrl+D",
            "SP_FileDialogNewFolder",
        )
        self.act_delete = job_action(
            "&Delete…",
            self.commands.delete_job,
            "delete job",
            QKeySequence.StandardKey.Delete,
            "SP_TrashIcon",
        )
        self.act_enable = job_action(
            "Ena&ble",
            lambda j: self.commands.set_enabled(j, True),
            "enable job",
            "Ctrl+Shift+E",
            "SP_DialogYesButton",
        )
        self.act_disable = job_action(
            "Disa&ble",
            lambda j: self.commands.set_enabled(j, False),
            "disable job",
            "Ctrl+Shift+D",
            "SP_DialogNoButton",
        )
        self.act_run = job_action(
            "&Run now",
            self.commands.run_now,
            "run now",
            "F5",
            "SP_MediaPlay",
            "Start the selected job now",
        )
        self.act_run_args = job_action(
            "Run &with arguments…",
            self.commands.run_with_args,
            "run with arguments",
            "Shift+F5",
            "SP_MediaSeekForward",
        )
        self.act_cancel = self._action(
            "&Cancel run",
            lambda: spawn(self.commands.cancel_selected_run(), "cancel run"),
            "Ctrl+.",
            "SP_MediaStop",
            "Cancel the selected (or the job's newest active) run",
        )
        self.act_filter = self._action("Filter", self._focus_filter, "Ctrl+L")
        self.act_add_worker = self._action(
            "&Add worker…",
            lambda: spawn(self.commands.add_worker(), "add worker"),
            None,
            "SP_ComputerIcon",
        )
        self.act_edit_worker = self._action(
            "&Edit worker…",
            lambda: spawn(self.commands.edit_worker(), "edit worker"),
            None,
            None,
            "Change the selected worker's tags and parallel runs",
        )
        self.act_revoke = self._action(
            "&Revoke worker…",
            lambda: spawn(self.commands.revoke_worker(), "revoke worker"),
            None,
            "SP_BrowserStop",
        )
        self.act_worker_enable = self._action(
            "Enable worker", lambda: spawn(self.commands.set_worker_enabled(True), "enable worker")
        )
        self.act_worker_disable = self._action(
            "Disable worker",
            lambda: spawn(self.commands.set_worker_enabled(False), "disable worker"),
        )
        self.act_settings = self._action(
            "&Settings…",
            lambda: spawn(self.commands.edit_settings(), "settings"),
            QKeySequence.StandardKey.Preferences,
        )
        self.act_about = self._action("&About Job Trigger", self.commands.show_about)
        self.act_quit = self._action("&Quit", self.host.request_quit, QKeySequence.StandardKey.Quit)

    def _make_menus(self) -> None:
        bar = self.window.menuBar()
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
            self.act_edit_worker,
            self.act_revoke,
            self.act_worker_enable,
            self.act_worker_disable,
        ):
            m.addAction(a)
        bar.addMenu("&Help").addAction(self.act_about)

        tb = self.jobs_toolbar = self.window.addToolBar("Jobs")
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
        wt = self.panels.workers_panel.toolbar
        wt.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (
            self.act_add_worker,
            self.act_edit_worker,
            self.act_revoke,
            self.act_worker_enable,
            self.act_worker_disable,
        ):
            wt.addAction(a)

    def update(self, *_args: Any) -> None:
        """Enable the actions that apply to the current selection."""
        row = (
            self.panels.jobs_panel.selected_row() if self.panels.jobs_panel.selected_id() else None
        )
        has = row is not None
        for a in (
            self.act_edit,
            self.act_duplicate,
            self.act_delete,
            self.act_run,
            self.act_run_args,
        ):
            a.setEnabled(has)
        self.act_enable.setEnabled(row is not None and not row.enabled)
        self.act_disable.setEnabled(row is not None and row.enabled)
        run = self.host.selected_run()
        active = any(
            self.panels.runs_model.row_at(i).state in run_states.ACTIVE
            for i in range(min(20, self.panels.runs_model.rowCount()))
        )
        self.act_cancel.setEnabled(
            (run is not None and run.state in run_states.ACTIVE) or (has and active)
        )
        worker = self.panels.workers_panel.selected_name()
        w = self.panels.workers_model.get(worker) if worker else None
        self.act_revoke.setEnabled(w is not None)
        self.act_edit_worker.setEnabled(w is not None)
        self.act_worker_enable.setEnabled(w is not None and not w.enabled)
        self.act_worker_disable.setEnabled(w is not None and w.enabled)

    def _focus_filter(self) -> None:
        self.panels.tabs.setCurrentIndex(0)
        self.panels.jobs_panel.filter.setFocus()
        self.panels.jobs_panel.filter.selectAll()

    # ------------------------------------------------------------------ menus
    def _jobs_menu(self, pos) -> None:
        menu = QMenu(self.window)
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
        menu.popup(self.panels.jobs_panel.view.viewport().mapToGlobal(pos))

    def _runs_menu(self, pos) -> None:
        menu = QMenu(self.window)
        menu.addAction(self.act_cancel)
        menu.addAction("Save output…", self.panels.log_pane._ask_save)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(self.panels.runs_view.viewport().mapToGlobal(pos))

    def _workers_menu(self, pos) -> None:
        menu = QMenu(self.window)
        for a in (
            self.act_edit_worker,
            self.act_worker_enable,
            self.act_worker_disable,
            self.act_revoke,
            None,
            self.act_add_worker,
        ):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(self.panels.workers_panel.view.viewport().mapToGlobal(pos))
