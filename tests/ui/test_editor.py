"""The job editor: every schedule kind round-trips, bad input blocks Save with a message next to
the field, and the preview lists real fire times in both zones."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from desktop.store.errors import ValidationError
from desktop.store.validation import normalize_job_spec
from desktop.ui.editor import JobEditorDialog
from desktop.ui.fieldtext import parse_env
from tests.conftest import timeout

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)

SCHEDULES = {
    "interval": {"every": 90, "unit": "seconds", "start": "2026-01-01T00:00:30Z"},
    "hourly": {"minute": 15, "hours": [22, 2]},
    "daily": {"times": ["09:30", "17:00"]},
    "weekly": {"days": ["mon", "wed", "fri"], "times": ["07:45"]},
    "monthly": {"days": [1, 15, "last"], "times": ["23:00"]},
    "monthly_nth": {"nth": "second", "weekday": "tue", "times": ["10:00"]},
    "cron": {"expr": "*/10 8-18 * * 1-5"},
    "once": {"at": "2027-03-14T09:26:53"},
    "manual": {},
}


def make_spec(kind: str, fields: dict) -> dict:
    return {
        "name": f"job-{kind}",
        "description": "round trip",
        "script": "backup.ps1",
        "args": ["--full", "C:\\backup target", ""],
        "env": {"MODE": "fast", "EMPTY": ""},
        "target_kind": "tag",
        "target_value": "windows",
        "schedule": {"v": 1, "kind": kind.split("_")[0], "tz": "America/New_York", **fields},
        "time_zone": "America/New_York",
        "enabled": False,
        "misfire_policy": "run_all",
        "misfire_cap": 5,
        "concurrency": "queue",
        "timeout_seconds": 600,
        "max_retries": 3,
        "retry_delay_seconds": 30,
        "retry_backoff": 1.5,
        "retry_max_delay_seconds": 900,
        "queue_timeout_seconds": 120,
    }


def dialog(qtbot, **kw) -> JobEditorDialog:
    dlg = JobEditorDialog(None, scripts=["backup.ps1", "test_job.py"], now=lambda: NOW, **kw)
    qtbot.addWidget(dlg)
    return dlg


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_every_schedule_kind_round_trips_through_the_dialog(qtbot, kind):
    spec = make_spec(kind, SCHEDULES[kind])
    dlg = dialog(qtbot)
    dlg.load(spec, job_id=7)
    assert dlg.errors == {}, dlg.errors
    assert dlg.save_button.isEnabled()
    assert normalize_job_spec(dlg.spec()) == normalize_job_spec(spec)
    assert dlg.windowTitle() == "Edit job"


def test_preview_shows_next_ten_times_in_display_and_job_zone(qtbot):
    dlg = dialog(qtbot, display_tz="Asia/Hong_Kong")
    dlg.load(make_spec("daily", {"times": ["09:30"]}))
    rows = dlg.preview_rows()
    assert len(rows) == 10
    # 09:30 in New York (EST, UTC-5) is 22:30 in Hong Kong (UTC+8)
    assert rows[0] == ("2026-11-29 22:30:00", "2026-11-29 09:30:00")
    assert rows[1][1] == "2026-11-30 09:30:00"
    assert "09:30" in dlg.summary.text()


def test_invalid_time_blocks_save_and_says_why_next_to_the_field(qtbot):
    dlg = dialog(qtbot)
    dlg.load(make_spec("daily", {"times": ["09:30"]}))
    dlg.forms["daily"].times.setText("25:00")
    assert not dlg.save_button.isEnabled()
    assert "25:00" in dlg.error_text("times")
    assert dlg.preview_rows() == []
    dlg.forms["daily"].times.setText("23:00")
    assert dlg.save_button.isEnabled() and dlg.error_text("times") == ""


@pytest.mark.parametrize(
    ("setup", "field", "words"),
    [
        (lambda d: d.name.setText(""), "name", "required"),
        (lambda d: d.script.setCurrentText("../evil.py"), "script", "folders"),
        (lambda d: d.tz.setText("Mars/Olympus"), "time_zone", "Mars/Olympus"),
        (lambda d: d.args.setText('--say "unclosed'), "args", "quote"),
        (lambda d: d.env.setPlainText("JUSTANAME"), "env", "NAME=value"),
        (lambda d: d.target_value.setCurrentText(""), "target_value", "tag"),
        (
            lambda d: d.forms["cron"].expr.setText("61 * * * *") or d.kind.setCurrentIndex(5),
            "expr",
            "cron",
        ),
        (lambda d: d.name.setText("taken"), "name", "already"),
    ],
)
def test_bad_input_blocks_save_with_a_message(qtbot, setup, field, words):
    dlg = dialog(qtbot, taken_names=["taken"])
    dlg.load(make_spec("daily", {"times": ["09:30"]}))
    assert dlg.save_button.isEnabled()
    setup(dlg)
    assert not dlg.save_button.isEnabled()
    assert words.lower() in dlg.error_text(field).lower(), (dlg.errors, dlg.error_text(field))


def test_weekly_without_days_is_refused(qtbot):
    dlg = dialog(qtbot)
    dlg.load(make_spec("weekly", {"days": ["mon"], "times": ["09:30"]}))
    dlg.forms["weekly"].days["mon"].setChecked(False)
    assert not dlg.save_button.isEnabled()
    assert dlg.error_text("days")


def test_duplicate_gets_a_free_name_and_no_id(qtbot):
    dlg = dialog(qtbot, taken_names=["job-daily", "job-daily (copy)"])
    dlg.load(make_spec("daily", {"times": ["09:30"]}), job_id=3, copy=True)
    assert dlg.job_id is None
    assert dlg.name.text() == "job-daily (copy 2)"
    assert dlg.save_button.isEnabled()


def test_timezone_completer_finds_zones_by_any_part(qtbot):
    dlg = dialog(qtbot)
    completer = dlg.tz.completer()
    completer.setCompletionPrefix("york")
    found = [
        completer.completionModel().index(i, 0).data()
        for i in range(completer.completionModel().rowCount())
    ]
    assert "America/New_York" in found


def test_parse_env_reports_the_bad_line():
    env, problem = parse_env("A=1\n# comment\n\nB=x=y\nBROKEN")
    assert env == {"A": "1", "B": "x=y"}
    assert "line 5" in problem


@pytest.mark.asyncio
async def test_save_goes_through_the_saver_and_store_errors_land_on_fields(qtbot):
    calls = []

    async def saver(spec):
        calls.append(spec)
        if len(calls) == 1:
            raise ValidationError({"name": "another job already has this name"})
        return "record"

    dlg = dialog(qtbot, saver=saver)
    dlg.load(make_spec("daily", {"times": ["09:30"]}))
    done = asyncio.get_running_loop().create_future()
    dlg.finished.connect(lambda code: done.done() or done.set_result(code))
    dlg.open()
    dlg.save_button.click()
    await dlg.save_task
    assert "already" in dlg.error_text("name")
    assert not done.done()
    dlg.name.setText("fresh-name")
    dlg.save_button.click()
    await dlg.save_task
    code = await asyncio.wait_for(done, timeout(5))
    assert code == dlg.DialogCode.Accepted and dlg.result_record == "record"
    assert calls[-1]["name"] == "fresh-name"


def test_a_new_job_shows_no_required_before_input_then_says_it(qtbot):
    from PySide6.QtCore import Qt

    dlg = dialog(qtbot)
    dlg.show()
    qtbot.waitExposed(dlg)
    assert "name" in dlg.errors and not dlg.save_button.isEnabled()
    assert dlg.error_text("name") == ""  # nothing red before the person typed anything
    assert "is required" in dlg.save_button.toolTip()
    dlg.name.setFocus()
    qtbot.keyClicks(dlg.name, "x")
    qtbot.keyClick(dlg.name, Qt.Key.Key_Backspace)
    assert dlg.error_text("name") == "is required"


@pytest.mark.parametrize("typed", ["America", "Europe/Lond", "../etc", "utc", "/etc/localtime"])
def test_typing_a_bad_zone_keeps_field_and_message_in_step(qtbot, zone_source, typed):
    """Typed key by key (through tzdata too): after every key the message is the one for what the
    field holds, so a folder name such as 'America' cannot stop validation half way."""
    from desktop.core.zones import zone_problem

    dlg = dialog(qtbot)
    dlg.load(make_spec("daily", {"times": ["09:30"]}))
    dlg.show()
    qtbot.waitExposed(dlg)
    below = dlg.kind.mapTo(dlg, dlg.kind.rect().topLeft()).y()
    next_field = dlg.forms["daily"].times
    next_y = next_field.mapTo(dlg, next_field.rect().topLeft()).y()
    dlg.tz.selectAll()
    for ch in typed:
        qtbot.keyClicks(dlg.tz, ch)
        text = dlg.tz.text()
        assert dlg.error_text("time_zone") == (zone_problem(text) or ""), text
        assert dlg.save_button.isEnabled() == (zone_problem(text) is None)
        # the error line under Time zone does not push the next field down
        assert next_field.mapTo(dlg, next_field.rect().topLeft()).y() == next_y
    assert dlg.error_text("time_zone") == zone_problem(typed)
    assert dlg.kind.mapTo(dlg, dlg.kind.rect().topLeft()).y() == below
    dlg.tz.selectAll()
    qtbot.keyClicks(dlg.tz, "America/New_York")
    assert dlg.error_text("time_zone") == "" and dlg.save_button.isEnabled()
