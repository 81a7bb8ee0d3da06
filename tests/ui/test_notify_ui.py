"""The Channels tab in Settings and the editor's "Notifications and chains" tab, driven as a
person would: a real webhook receiver on 127.0.0.1 gets "Send test", a bad URL keeps OK
disabled with the reason, a chain to the job itself keeps Save disabled, a cycle through
another job is refused on Save and changes nothing.  JOBTRIGGER_SCREENSHOTS=1 writes the
README's pictures (docs/screenshots/channels.png, rules.png, chains.png)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.core import notify as n
from desktop.notify.sender import Sender
from desktop.store import chains, channels, queries
from desktop.ui.channels_page import ChannelDialog
from tests.conftest import timeout
from tests.notify.receivers import HookReceiver
from tests.ui.test_main_window import console, settle

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _shot_dir(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("JOBTRIGGER_SCREENSHOTS") == "1" else tmp_path


def _job(name: str) -> dict:
    return {"name": name, "script": "test_job.py", "schedule": {"kind": "manual"}}


@pytest.fixture
def hook():
    receiver = HookReceiver()
    yield receiver
    receiver.close()


@pytest.mark.asyncio
async def test_channels_tab_sends_a_test_and_shows_failures(tmp_path, qtbot, hook):
    jobs = [_job("nightly-backup"), _job("payroll-export")]
    async with console(tmp_path, qtbot, jobs) as (core, window, dialogs, errors):
        await core.save_channel("ops-hook", "webhook", {"url": hook.url}, "k")
        await core.save_channel(
            "ops-mail",
            "email",
            {
                "host": "smtp.example.com",
                "sender": "jobs@example.com",
                "to": "ops@example.com, oncall@example.com",
                "username": "jobs",
            },
            "pw",
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
        await core.save_channel("teams", "webhook", {"url": dead, "preset": "teams"})
        # never "failed" here: the run below must not reach out to smtp.example.com
        await core.set_rules(None, [{"channel": "ops-mail", "on": ["lost", "missed"]}])
        # a failed run notified on two channels: one delivered, one failing with its reason
        job_id = next(r.id for r in window.jobs_model.rows() if r.name == "payroll-export")
        both = [{"channel": "ops-hook", "on": ["failed"]}, {"channel": "teams", "on": ["failed"]}]
        await core.set_rules(job_id, both)
        run_id = await core.run_now(job_id)
        await core.start_run(run_id, "finance-01")
        await core.finish_run(run_id, "failed", 2)
        sender = Sender(core.db)
        try:
            await sender.pass_once()
        finally:
            await sender.stop()
        await asyncio.to_thread(hook.wait_for, 1, timeout(10))
        task = asyncio.ensure_future(window.commands.edit_settings())
        dlg = await dialogs.next()
        page = dlg.channels_page
        dlg.tabs.setCurrentIndex(1)
        dlg.resize(900, 760)
        await settle(window)
        names = [page.channels.item(r, 0).text() for r in range(page.channels.rowCount())]
        assert names == ["ops-hook", "ops-mail", "teams"]
        assert page.default_rules.rules() == [{"channel": "ops-mail", "on": ["lost", "missed"]}]

        page.channels.selectRow(0)
        page.test.click()
        await settle(window)
        requests = await asyncio.to_thread(hook.wait_for, 2, timeout(10))
        assert [json.loads(r.body)["event"] for r in requests] == ["failed", n.TEST]
        shown = {
            page.recent.item(r, 2).text(): page.recent.item(r, 4).text()
            for r in range(page.recent.rowCount())
        }
        assert shown == {"ops-hook": "delivered", "teams": "failing"}
        assert page.test_result.text() == "Test message sent to ops-hook."

        page.channels.selectRow(2)
        page.test.click()
        await settle(window)
        assert "Test message to teams failed: cannot reach the webhook" in page.test_result.text()
        assert dlg.grab().save(str(_shot_dir(tmp_path) / "channels.png"))
        dlg.reject()
        await asyncio.wait_for(task, timeout(10))
        assert errors == []


def test_channel_dialog_keeps_ok_disabled_with_the_reason(qtbot):
    dlg = ChannelDialog(None, n.WEBHOOK)
    qtbot.addWidget(dlg)
    ok = dlg.buttons.button(dlg.buttons.StandardButton.Ok)
    dlg.name.setText("hook")
    dlg.url.setText("ftp://example.com/x")
    assert not ok.isEnabled() and "only http:// and https://" in dlg.error.text()
    dlg.url.setText("https://example.com/x")
    assert ok.isEnabled()
    dlg.kind.setCurrentIndex(dlg.kind.findData(n.EMAIL))
    dlg.host.setText("smtp.example.com")
    dlg.from_address.setText("jobs@example.com")
    dlg.to.setText("ops@example.com\nBcc: all@example.com")
    assert not ok.isEnabled() and "not an e-mail address" in dlg.error.text()


@pytest.mark.asyncio
async def test_editor_saves_rules_and_chains_with_the_job(tmp_path, qtbot):
    jobs = [_job("extract"), _job("load"), _job("report")]
    async with console(tmp_path, qtbot, jobs) as (core, window, dialogs, errors):
        await core.save_channel("ops-hook", "webhook", {"url": "http://127.0.0.1:9/x"})
        await core.save_channel(
            "ops-mail", "email", {"host": "smtp.example.com", "sender": "a@b.cd", "to": "o@b.cd"}
        )
        ids = {r.name: r.id for r in window.jobs_model.rows()}
        # load -> extract exists: extract -> load would close a loop through another job
        await core.set_chains(ids["load"], [{"then": "extract", "on": "end"}])

        task = asyncio.ensure_future(window.commands.edit_job(ids["extract"]))
        editor = await dialogs.next()
        editor.resize(1250, 640)
        editor.tabs.setCurrentIndex(1)
        await settle(window)
        tab = editor.links_tab
        tab.rules.item(0, 0).setCheckState(Qt.CheckState.Checked)  # ops-hook: failed
        tab.rules.item(1, 2).setCheckState(Qt.CheckState.Checked)  # ops-mail: lost
        tab.chains.add_row({"then": "extract", "on": "success"})
        assert not editor.save_button.isEnabled()
        assert "cannot start itself" in editor.links_tab.error.text()
        tab.chains.table.cellWidget(0, 0).setCurrentText("report")
        tab.chains.table.cellWidget(0, 2).setText("--after {run_id} --code {exit_code}")
        tab.chains.add_row({"then": "report", "on": "failure", "args": ["{password}"]})
        assert "unknown field {password}" in editor.links_tab.error.text()
        tab.chains.table.cellWidget(1, 2).setText("")
        tab.chains.table.cellWidget(1, 0).setCurrentText("load")
        assert editor.save_button.isEnabled()
        await settle(window)
        shots = _shot_dir(tmp_path)
        assert tab.rules_box.grab().save(str(shots / "rules.png"))
        assert tab.chains_box.grab().save(str(shots / "chains.png"))
        marker = await core.db.call(queries.change_marker)
        editor.description.setText("changed")
        editor.save_button.click()
        await settle(window)
        assert "chains would loop" in editor.general_error.text()
        # the refused chain took the job's change with it: nothing was written
        assert (await core.db.call(queries.get_job, ids["extract"])).description == ""
        assert await core.db.call(queries.change_marker) == marker

        tab.chains.table.selectRow(1)
        tab.chains.remove_button.click()
        editor.save_button.click()
        await asyncio.wait_for(task, timeout(10))
        assert (await core.db.call(queries.get_job, ids["extract"])).description == "changed"
        assert await core.db.call(channels.rules_spec, ids["extract"]) == [
            {"channel": "ops-hook", "on": ["failed"]},
            {"channel": "ops-mail", "on": ["lost"]},
        ]
        specs = [r.spec() for r in await core.db.call(chains.list_chains, ids["extract"])]
        assert specs == [
            {
                "then": "report",
                "on": "success",
                "args": ["--after", "{run_id}", "--code", "{exit_code}"],
            }
        ]
        assert errors == []
