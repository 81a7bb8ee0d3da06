"""What the main window's actions do: job, worker and settings commands.  Each is a coroutine
that talks to the core (never blocking the loop) and opens dialogs with open() + await.

`WindowCommands` is given what it uses: the core facade, the views (`Panels`), a parent widget
for its dialogs and the few window calls of `CommandHost`.  A new command goes here; a new
action that triggers it goes in window_actions.py."""

from __future__ import annotations

import logging
import shlex
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QStatusBar, QWidget

from desktop.core import runs as run_states
from desktop.service.rules import StoreError, ValidationError
from desktop.ui.about import about_box
from desktop.ui.asyncqt import ask, confirm, show_message, spawn
from desktop.ui.editor import JobEditorDialog
from desktop.ui.panels import Panels
from desktop.ui.rows import job_row
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.worker_dialogs import AddWorkerDialog, EditWorkerDialog, TokenDialog

log = logging.getLogger(__name__)


class CommandHost(Protocol):
    """What the commands need of the window around them."""

    display_tz: str
    settings: dict[str, str]
    db_url: str

    def statusBar(self) -> QStatusBar: ...

    def select_run(self, run_id: int) -> bool: ...

    def selected_run(self) -> Any: ...

    def apply_display_tz(self, name: str) -> None: ...

    def update_actions(self, *_args: Any) -> None: ...

    def mark_status_dirty(self) -> None: ...

    async def reload_jobs(self, ids: list[int]) -> None: ...

    async def reload_runs(self, ids: list[int]) -> None: ...

    async def refresh_workers(self) -> None: ...

    async def refresh_all_status(self) -> None: ...


class WindowCommands:
    def __init__(self, parent: QWidget, core: Any, panels: Panels, host: CommandHost) -> None:
        self.parent = parent  # dialogs and message boxes open over it
        self.core = core
        self.panels = panels
        self.host = host

    # ------------------------------------------------------------------ job actions
    async def make_editor(self) -> JobEditorDialog:
        workers = [w.name for w in self.panels.workers_model.rows()]
        tags = sorted({t for w in self.panels.workers_model.rows() for t in w.tags})
        try:
            scripts = await self.core.live_scripts()
        except Exception:  # the catalogue is a nicety; the field stays editable
            log.exception("script catalogue unavailable")
            scripts = []
        return JobEditorDialog(
            self.parent,
            display_tz=self.host.display_tz,
            scripts=scripts,
            workers=workers,
            tags=tags,
            taken_names=[r.name for r in self.panels.jobs_model.rows()],
        )

    async def _load_links(self, dlg: JobEditorDialog, job_id: int | None) -> None:
        try:
            found = await self.core.links_context(job_id)
        except Exception:  # the job can still be edited; its links stay as stored
            log.exception("could not load notifications and chains")
            return
        dlg.links_tab.set_data(found["channels"], found["jobs"], found["rules"], found["chains"])

    async def new_job(self) -> Any:
        dlg = await self.make_editor()
        await self._load_links(dlg, None)
        dlg.saver = lambda spec: self.core.save_job(spec, links=dlg.links_tab.links())
        dlg.secrets_saver = self.core.save_job_secrets
        return await self._run_editor(dlg)

    async def edit_job(self, job_id: int, *, copy: bool = False) -> Any:
        record = await self.core.get_job(job_id)
        if record is None:
            show_message(self.parent, "Job gone", "This job was deleted meanwhile.")
            self.panels.jobs_model.remove(job_id)
            return None
        dlg = await self.make_editor()
        dlg.load(record.to_spec(), job_id, copy=copy)
        await self._load_links(dlg, job_id)
        dlg.secrets_saver = self.core.save_job_secrets
        if copy:
            # secrets are not copied: set them on the copy
            dlg.saver = lambda spec: self.core.save_job(spec, links=dlg.links_tab.links())
        else:
            dlg.saver = lambda spec: self.core.save_job(spec, job_id, dlg.links_tab.links())
            dlg.secrets.load(r.name for r in await self.core.job_secrets(job_id))
            dlg.secrets.revealer = lambda name: self.core.reveal_secret(job_id, name)
        return await self._run_editor(dlg)

    async def _run_editor(self, dlg: JobEditorDialog) -> Any:
        self.editor = dlg  # tests and screenshots reach the open dialog here
        code = await ask(dlg)
        self.editor = None
        dlg.deleteLater()
        record = dlg.result_record
        if code and record is not None:
            self.panels.jobs_model.upsert(job_row(record))
            self.panels.jobs_panel.select(record.id)
        return record if code else None

    editor: JobEditorDialog | None = None
    settings_dialog: Any = None

    async def delete_job(self, job_id: int) -> bool:
        row = self.panels.jobs_model.get(job_id)
        name = row.name if row else f"job {job_id}"
        if not await confirm(
            self.parent,
            "Delete job",
            f"Delete “{name}” and all its runs and output? This cannot be undone.",
            destructive=True,
        ):
            return False
        await self.core.delete_job(job_id)
        self.panels.jobs_model.remove(job_id)
        return True

    async def set_enabled(self, job_id: int, enabled: bool) -> None:
        await self.core.set_job_enabled(job_id, enabled)
        await self.host.reload_jobs([job_id])

    async def run_now(self, job_id: int, args: list[str] | None = None) -> int:
        run_id = await self.core.run_now(job_id, args)
        self.host.statusBar().showMessage(f"Run {run_id} queued", 5000)
        if self.panels.runs_model.job_id == job_id:
            await self.host.reload_runs([run_id])
            self.host.select_run(run_id)
        return run_id

    async def run_with_args(self, job_id: int) -> int | None:
        record = await self.core.get_job(job_id)
        if record is None:
            return None
        dlg = QInputDialog(self.parent)
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
            show_message(
                self.parent, "Arguments not understood", f"{exc}. Close the quote and try again."
            )
            return None
        return await self.run_now(job_id, args)

    async def cancel_selected_run(self) -> int | None:
        run = self.host.selected_run()
        if run is None or run.state not in run_states.ACTIVE:
            run = next(
                (
                    self.panels.runs_model.row_at(i)
                    for i in range(self.panels.runs_model.rowCount())
                    if self.panels.runs_model.row_at(i).state in run_states.ACTIVE
                ),
                None,
            )
        if run is None:
            self.host.statusBar().showMessage("No active run to cancel", 5000)
            return None
        await self.core.cancel_run(run.id)
        self.host.statusBar().showMessage(f"Cancelling run {run.id}…", 5000)
        return run.id

    # ------------------------------------------------------------------ workers
    async def add_worker(self) -> str | None:
        dlg = AddWorkerDialog(self.parent, taken={w.name for w in self.panels.workers_model.rows()})
        try:
            if not await ask(dlg):
                return None
            name, tags, slots = dlg.values()
        finally:
            dlg.deleteLater()
        token = await self.core.add_worker(name, tags, slots)
        await self.host.refresh_all_status()
        token_dlg = TokenDialog(self.parent, self.core.hub_url, name, token, tags, slots)
        try:
            await ask(token_dlg)
        finally:
            token_dlg.deleteLater()
        return token

    async def edit_worker(self) -> bool:
        """Change the selected worker's tags and slots (the console's decision, not the
        worker's)."""
        name = self.panels.workers_panel.selected_name()
        record = await self.core.get_worker(name) if name else None
        if name is None or record is None:
            return False
        dlg = EditWorkerDialog(self.parent, name, record.tags, record.slots)
        try:
            if not await ask(dlg):
                return False
            tags, slots = dlg.values()
        finally:
            dlg.deleteLater()
        try:
            await self.core.set_worker_config(name, tags, slots)
        except ValidationError as exc:
            show_message(self.parent, "Worker not changed", str(exc))
            return False
        await self.host.refresh_workers()
        return True

    async def revoke_worker(self) -> bool:
        name = self.panels.workers_panel.selected_name()
        if not name:
            return False
        if not await confirm(
            self.parent,
            "Revoke worker",
            f"Revoke {name}? It is disconnected now and its token stops working; its running "
            "runs are marked lost. To bring the host back, add it again for a new token.",
            destructive=True,
        ):
            return False
        await self.core.revoke_worker(name)
        self.panels.workers_model.remove(name)
        self.host.mark_status_dirty()
        return True

    async def set_worker_enabled(self, enabled: bool) -> None:
        name = self.panels.workers_panel.selected_name()
        if name:
            await self.core.set_worker_enabled(name, enabled)
            await self.host.refresh_workers()
            self.host.update_actions()

    # ------------------------------------------------------------------ settings etc.
    async def edit_settings(self) -> dict[str, str]:
        from desktop.ui.channels_page import ChannelsPage

        place = await self.core.secret_key_place()
        page = ChannelsPage(self.core, self.host.display_tz)
        dlg = SettingsDialog(self.parent, self.host.settings, place, channels=page)
        self.settings_dialog = dlg  # tests and screenshots reach the open dialog here
        loading = spawn(page.refresh(), "loading the channels")
        try:
            if not await ask(dlg):
                return {}
            changes = dlg.changes()
        finally:
            loading.cancel()  # closed before the channels came in: their widgets are going
            self.settings_dialog = None
            dlg.deleteLater()
        for key, value in changes.items():
            try:
                await self.core.set_setting(key, value)
            except ValidationError as exc:
                show_message(self.parent, "Setting refused", str(exc))
                return {}
        self.host.settings.update(changes)
        if "display_tz" in changes:
            self.host.apply_display_tz(changes["display_tz"])
        return changes

    def show_about(self) -> None:
        box = about_box(self.parent, self.host.db_url, getattr(self.core, "hub_url", ""))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()

    def report_error(self, what: str, exc: BaseException) -> None:
        """A failed action: environment problems and refusals are said plainly; our own bugs
        are logged with the trace and said as such."""
        # refusals (ValidationError and TransitionError are ValueErrors), the database, the
        # disk or the network: not our bug, and the message says what to do
        if isinstance(exc, (StoreError, ValueError, OSError)):
            show_message(self.parent, "Could not finish", f"{what.capitalize()} failed: {exc}")
        else:
            log.error("%s failed", what, exc_info=exc)
            show_message(
                self.parent,
                "Something went wrong",
                f"{what.capitalize()} failed because of a bug in Job Trigger: {exc!r}. "
                "The details are in the log file; please report them.",
            )
