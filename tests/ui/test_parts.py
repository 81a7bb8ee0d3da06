"""The smaller parts: formatting, the event bridge's coalescing, the log pane, the chart, the
settings dialog."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from desktop.core.events import EventBus, JobChanged, OutputAppended, RunChanged, WorkerChanged
from desktop.ui.bridge import EventBridge
from desktop.ui.chart import RunChart
from desktop.ui.formatting import (
    format_age,
    format_duration,
    format_time,
    outcome_label,
    system_status_text,
)
from desktop.ui.log_pane import LogPane
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.worker_dialogs import AddWorkerDialog

T0 = datetime(2026, 3, 8, 6, 59, 59, tzinfo=timezone.utc)


def test_formatting():
    assert format_time(T0, "America/New_York") == "2026-03-08 01:59:59"
    assert format_time(T0 + timedelta(seconds=1), "America/New_York") == "2026-03-08 03:00:00"
    assert format_time(T0, "Not/AZone") == "2026-03-08 14:59:59"  # falls back to Hong Kong
    assert format_time(None, "UTC") == ""
    assert [format_duration(s) for s in (0.25, 12.34, 245, 7380, 100_000)] == [
        "250 ms",
        "12.3 s",
        "4 min 05 s",
        "2 h 03 min",
        "1 d 3 h",
    ]
    assert format_age(T0 - timedelta(seconds=42), T0) == "42 s ago"
    assert format_age(None, T0) == "never"
    assert outcome_label("timed_out") == "Timed out" and outcome_label(None) == "Never run"


def test_status_text_says_offline_plainly_with_the_reason():
    text, alarm = system_status_text(0, 0, 0, 3)
    assert alarm and text.startswith("System Offline: no worker is registered")
    text, alarm = system_status_text(0, 2, 0, 1)
    assert alarm and "none of the 2 workers is connected" in text and "1 queued" in text
    text, alarm = system_status_text(1, 2, 4, 0)
    assert not alarm and text == "1 of 2 workers online  |  4 running, 0 queued"


def test_bridge_coalesces_a_frame_of_events():
    bus = EventBus()
    bridge = EventBridge(bus)
    got = {"jobs": [], "runs": [], "out": [], "workers": []}
    bridge.jobsChanged.connect(got["jobs"].append)
    bridge.runsChanged.connect(got["runs"].append)
    bridge.outputAppended.connect(got["out"].append)
    bridge.workersChanged.connect(got["workers"].append)
    for i in range(10_000):
        bus.publish(OutputAppended(1, i + 1, "stdout", f"{i}\n"))
    for state in ("queued", "running", "succeeded"):
        bus.publish(RunChanged(1, 7, state))
    bus.publish(JobChanged(7))
    bus.publish(JobChanged(8, deleted=True))
    bus.publish(JobChanged(8))
    bus.publish(WorkerChanged("w1", True))
    bus.publish(WorkerChanged("w1", False))
    assert got == {"jobs": [], "runs": [], "out": [], "workers": []}  # nothing until the frame
    bridge.flush()
    assert len(got["out"]) == 1 and [c.seq for c in got["out"][0]] == list(range(1, 10_001))
    assert got["runs"] == [{1: RunChanged(1, 7, "succeeded")}]
    assert got["jobs"] == [{7: False, 8: True}]
    assert got["workers"] == [{"w1": False}]
    bridge.flush()  # an empty frame emits nothing
    assert len(got["out"]) == 1
    bridge.close()
    bus.publish(JobChanged(9))
    bridge.flush()
    assert len(got["jobs"]) == 1


@pytest.mark.asyncio
async def test_bridge_flushes_by_itself_within_a_frame():
    import asyncio

    from tests.conftest import timeout

    bus = EventBus()
    bridge = EventBridge(bus, frame_ms=5)
    fut = asyncio.get_running_loop().create_future()
    bridge.jobsChanged.connect(lambda jobs: fut.done() or fut.set_result(jobs))
    bus.publish(JobChanged(3))
    assert await asyncio.wait_for(fut, timeout(5)) == {3: False}


@dataclass
class Chunk:
    run_id: int
    seq: int
    stream: str
    text: str


def test_log_pane_caps_lines_keeps_order_and_drops_replays(qtbot):
    pane = LogPane(max_lines=1000)
    qtbot.addWidget(pane)
    pane.run_id = 5  # a run shown without a reader: live lines only
    pane.append([Chunk(5, i, "stdout", f"line {i}\n") for i in range(1, 3001)])
    pane.append([Chunk(5, 2999, "stdout", "replayed\n"), Chunk(6, 1, "stdout", "other run\n")])
    pane.append([Chunk(5, 3001, "stderr", "partial "), Chunk(5, 3002, "stderr", "line\n")])
    pane.drain_all()
    lines = pane.text().split("\n")
    assert len(lines) == 1000
    assert lines[0] == "line 2002" and lines[-2] == "line 3000"
    assert lines[-1] == "partial line"
    assert "replayed" not in pane.text() and "other run" not in pane.text()


def test_log_pane_skips_visibly_when_a_flood_outruns_the_view(qtbot):
    pane = LogPane()
    qtbot.addWidget(pane)
    pane.run_id = 2
    pane.append([Chunk(2, i, "stdout", f"line {i}\n") for i in range(1, 20_001)])
    # one slice is shown at once, the rest waits for the next frames
    assert 0 < pane.view.blockCount() <= 400
    pane.drain_all()
    text = pane.text()
    assert "lines skipped in this view to keep up" in text
    assert text.endswith("line 20000")
    assert pane.view.blockCount() < 4_000  # the view did not do 20,000 inserts


@pytest.mark.asyncio
async def test_log_pane_loads_the_tail_of_a_long_stored_output(qtbot):
    stored = [Chunk(9, i, "stdout", f"{i}\n") for i in range(1, 50_001)]

    async def reader(run_id, after_seq, limit):
        rest = [c for c in stored if c.seq > after_seq]
        return rest[:limit] if limit else rest

    pane = LogPane(max_lines=5_000)
    qtbot.addWidget(pane)
    pane.set_reader(reader)
    pane.show_run(9)
    await pane.load_task
    lines = pane.text().split("\n")
    assert "45,001 earlier lines are not shown" in lines[0]
    assert lines[1] == "45002" and lines[-1] == "50000" and len(lines) == 5_000
    pane.append([Chunk(9, 50_001, "stdout", "live\n"), Chunk(9, 40, "stdout", "old\n")])
    pane.drain_all()
    assert pane.text().endswith("50000\nlive")


def test_log_pane_find_and_copy(qtbot):
    pane = LogPane()
    qtbot.addWidget(pane)
    pane.run_id = 1
    pane.append([Chunk(1, 1, "stdout", "alpha\nbeta\ngamma\nbeta again\n")])
    pane.drain_all()
    pane.find_edit.setText("beta")
    assert pane.find_text()
    assert pane.view.textCursor().blockNumber() == 1
    assert pane.find_text()
    assert pane.view.textCursor().blockNumber() == 3
    assert pane.find_text()  # wraps around
    assert pane.view.textCursor().blockNumber() == 1
    assert not pane.follow.isChecked()  # finding pauses following
    assert pane.copy() == "beta"
    pane.find_edit.setText("delta")
    assert not pane.find_text()


def test_chart_bars_follow_the_runs(qtbot):
    from tests.ui.test_models import run

    chart = RunChart()
    qtbot.addWidget(chart)
    runs = [run(i, state="failed" if i == 3 else "succeeded") for i in range(60, 0, -1)]
    chart.set_runs(runs)
    bars = chart.bars()
    assert len(bars) == 50 and bars[-1] == (2.0, "succeeded")
    chart.resize(400, 80)
    assert not chart.grab().isNull()


def test_settings_dialog_checks_values_and_reports_changes(qtbot, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    dlg = SettingsDialog(None, {"display_tz": "Asia/Hong_Kong", "hub_port": "8000"})
    qtbot.addWidget(dlg)
    ok = dlg.buttons.button(dlg.buttons.StandardButton.Ok)
    assert ok.isEnabled() and dlg.changes() == {}
    dlg.display_tz.setText("Europe/Nowhere")
    assert not ok.isEnabled()
    dlg.display_tz.setText("Europe/London")
    dlg.tls_cert.setText("/nonexistent/cert.pem")
    assert not ok.isEnabled()
    dlg.tls_cert.setText(str(cert))
    assert not ok.isEnabled()  # a certificate without its key
    dlg.tls_key.setText(str(key))
    dlg.hub_port.setValue(9000)
    assert ok.isEnabled()
    assert dlg.changes() == {
        "display_tz": "Europe/London",
        "hub_port": "9000",
        "hub_tls_cert": str(cert),
        "hub_tls_key": str(key),
    }
    assert "Restart" in dlg.note.text()


def test_add_worker_dialog_refuses_bad_and_taken_names(qtbot):
    dlg = AddWorkerDialog(None, taken={"fs-01"})
    qtbot.addWidget(dlg)
    ok = dlg.buttons.button(dlg.buttons.StandardButton.Ok)
    for bad in ("", "has space", "../x", "fs-01"):
        dlg.name.setText(bad)
        assert not ok.isEnabled(), bad
    dlg.name.setText("fs-02")
    dlg.tags.setText(" windows ,, sql ")
    dlg.slots.setValue(3)
    assert ok.isEnabled()
    assert dlg.values() == ("fs-02", ["windows", "sql"], 3)


def test_log_pane_splits_a_big_chunk_across_frames(qtbot):
    from desktop.ui.log_pane import LINES_PER_FRAME

    pane = LogPane()
    qtbot.addWidget(pane)
    pane.run_id = 4
    big = "".join(f"row {i}\n" for i in range(1, 1001))
    pane.append([Chunk(4, 1, "stdout", big), Chunk(4, 2, "stderr", "tail\n")])
    assert pane.view.blockCount() == LINES_PER_FRAME  # one frame's worth, not 1,000 lines
    pane.drain_all()
    assert pane.text() == big + "tail"


def test_a_chart_of_one_run_is_a_readable_bar_at_the_left(qtbot):
    from desktop.core.words import plural
    from tests.ui.test_models import run

    chart = RunChart()
    qtbot.addWidget(chart)
    chart.resize(600, 80)
    chart.set_runs([run(1, state="succeeded")])
    (box,) = chart.bar_rects()
    assert box.left() < 600 / 10  # where the first run goes, not at the far right
    assert box.width() >= 12  # not a hairline
    assert chart.tooltip_for(box.center().x()).startswith("Run 1: ")
    assert chart.tooltip_for(590) == ""
    assert plural(1, "run") == "1 run" and plural(2, "run") == "2 runs"
    assert plural(0, "job") == "0 jobs"
    # 50 runs still fit the chart side by side
    chart.set_runs([run(i) for i in range(50, 0, -1)])
    boxes = chart.bar_rects()
    assert len(boxes) == 50 and boxes[-1].right() <= 600 - 4
    assert all(a.right() <= b.left() for a, b in itertools.pairwise(boxes))
