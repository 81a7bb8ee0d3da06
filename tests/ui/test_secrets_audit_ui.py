"""The editor's Secrets section and the Audit tab, driven through the window as a person would
(StoreCore: the real store).  Also renders the README's two pictures offscreen
(docs/screenshots/editor-secrets.png, audit-panel.png) when JOBTRIGGER_SCREENSHOTS=1."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.store import queries
from desktop.store import secrets as js
from desktop.store.models import JobSecret
from tests.conftest import timeout
from tests.ui.test_main_window import console, settle

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
JOB = {
    "name": "db-backup",
    "script": "backup.ps1",
    "schedule": {"v": 1, "kind": "daily", "times": ["02:00"], "tz": "Asia/Hong_Kong"},
}
VALUE = "Sup3r-s3cret-pa55"


def _save_shot(widget, name: str, tmp_path: Path) -> Path:
    folder = DOCS if os.environ.get("JOBTRIGGER_SCREENSHOTS") == "1" else tmp_path
    path = folder / name
    assert widget.grab().save(str(path))
    assert path.stat().st_size > 5_000
    return path


@pytest.mark.asyncio
async def test_secrets_are_set_masked_revealed_on_request_and_refused_when_bad(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, dialogs, errors):
        job_id = window.jobs_panel.selected_id()
        task = asyncio.ensure_future(window.commands.edit_job(job_id))
        editor = await dialogs.next()
        row = editor.secrets.add_row()
        row.name.setText("1BAD")
        row.value.setText(VALUE)
        assert not editor.save_button.isEnabled()
        assert "not a valid environment variable name" in editor.secrets.error.text()
        row.name.setText("PATH")
        assert editor.save_button.isEnabled()  # allowed, with the worker policy pointed out
        assert "workers refuse PATH by default" in editor.secrets.error.text()
        row.name.setText("DB_PASSWORD")
        short = editor.secrets.add_row()
        short.name.setText("PIN")
        short.value.setText("12")
        assert not editor.save_button.isEnabled()
        assert "at least 4 characters" in editor.secrets.error.text()
        short.remove.click()
        assert editor.save_button.isEnabled(), editor.errors
        assert row.value.echoMode() == row.value.EchoMode.Password
        editor.save_button.click()
        await asyncio.wait_for(task, timeout(10))
        await settle(window)
        assert errors == []
        assert await core.db.call(js.values_for_job, job_id) == {"DB_PASSWORD": VALUE}
        assert VALUE not in (await core.db.call(lambda: JobSecret.get().sealed))

        # reopened: the name, never the value, until Reveal is asked for
        task = asyncio.ensure_future(window.commands.edit_job(job_id))
        editor = await dialogs.next()
        (stored,) = editor.secrets.live_rows()
        assert stored.name.text() == "DB_PASSWORD" and stored.value.text() == ""
        assert "unchanged" in stored.value.placeholderText()
        assert editor.secrets.changes() == {}
        stored.reveal.click()
        await asyncio.wait_for(editor.secrets.reveal_task, timeout(10))
        assert stored.value.text() == VALUE
        assert stored.value.echoMode() == stored.value.EchoMode.Normal
        editor.reject()
        await asyncio.wait_for(task, timeout(10))
        events = await core.audit_events(kind="job")
        assert [e.detail for e in events[:2]] == [
            "secret DB_PASSWORD revealed",
            "secret DB_PASSWORD added",
        ]
        assert all(VALUE not in e.detail for e in events)


@pytest.mark.asyncio
async def test_the_audit_tab_filters_sorts_and_shows_newest_first(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, _dialogs, errors):
        job_id = window.jobs_panel.selected_id()
        await core.add_worker("fileserver-01", ["windows"], 2)
        await core.save_job_secrets(job_id, {"API_TOKEN": VALUE})
        await core.db.call(queries.set_setting, "retention_days", "30", core.actor)
        panel = window.audit_panel
        window.tabs.setCurrentWidget(panel)
        await asyncio.wait_for(panel.load_task, timeout(10))
        view = panel.view.model()
        col = [view.index(r, 4).data() for r in range(view.rowCount())]
        assert col[:3] == ["retention_days", "db-backup", "fileserver-01"]  # newest first
        details = [view.index(r, 5).data() for r in range(view.rowCount())]
        assert "secret API_TOKEN added" in details and not any(VALUE in d for d in details)
        panel.kind.setCurrentIndex(2)  # Workers
        await asyncio.wait_for(panel.load_task, timeout(10))
        assert [view.index(r, 4).data() for r in range(view.rowCount())] == ["fileserver-01"]
        assert view.index(0, 1).data() == core.actor
        panel.kind.setCurrentIndex(0)
        await asyncio.wait_for(panel.load_task, timeout(10))
        panel.view.sortByColumn(4, Qt.SortOrder.AscendingOrder)
        names = [view.index(r, 4).data() for r in range(view.rowCount())]
        assert names == sorted(names, key=str.lower)
        assert errors == []


@pytest.mark.asyncio
async def test_render_the_readme_pictures(tmp_path, qtbot):
    async with console(tmp_path, qtbot, [JOB]) as (core, window, dialogs, _errors):
        job_id = window.jobs_panel.selected_id()
        await core.save_job_secrets(job_id, {"DB_PASSWORD": VALUE, "API_TOKEN": VALUE + "x"})
        await core.add_worker("fileserver-01", ["windows"], 2)
        await core.db.call(queries.set_setting, "retention_days", "30", core.actor)
        task = asyncio.ensure_future(window.commands.edit_job(job_id))
        editor = await dialogs.next()
        editor.resize(1250, 700)
        new = editor.secrets.add_row()
        new.name.setText("SMTP_PASSWORD")
        new.value.setText("typed-but-hidden")
        await settle(window)
        _save_shot(editor, "editor-secrets.png", tmp_path)
        editor.reject()
        await asyncio.wait_for(task, timeout(10))
        window.resize(1200, 520)
        window.tabs.setCurrentWidget(window.audit_panel)
        await asyncio.wait_for(window.audit_panel.load_task, timeout(10))
        await settle(window)
        _save_shot(window, "audit-panel.png", tmp_path)
