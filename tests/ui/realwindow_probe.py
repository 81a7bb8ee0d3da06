"""The real-window layout checks, run by tests/ui/test_real_window.py in a child process on the
xcb platform under Xvfb (a QApplication cannot switch platform, and the rest of tests/ui runs
offscreen).  Not collected by a plain pytest run: the outer test runs this file with
`-o python_files=realwindow_probe.py -o python_functions=probe_`.

Real fonts, 100 % scale, the screen size from the outer test; clicks and keys go through QTest.
PNGs of what was checked are written to $JOBTRIGGER_PROBE_OUT.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLabel,
    QStyle,
    QTableView,
)

from desktop.core.zones import zone_problem
from desktop.ui import asyncqt
from desktop.ui.main_window import MainWindow
from tests.ui.test_main_window import Dialogs, settle
from tests.ui.test_screenshots import demo_core

OUT = Path(os.environ.get("JOBTRIGGER_PROBE_OUT", "."))


def screen_size() -> tuple[int, int]:
    w, h = os.environ["JOBTRIGGER_PROBE_SIZE"].split("x")
    return int(w), int(h)


def clipped_headers(view: QTableView) -> list[str]:
    """Header labels that do not fit their column (text, margins and the sort mark)."""
    header = view.horizontalHeader()
    model = view.model()
    style = header.style()
    fm = header.fontMetrics()
    margin = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
    mark = (
        style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize, None, header) + margin
        if view.isSortingEnabled()
        else 0
    )
    out = []
    for col in range(model.columnCount()):
        if header.isSectionHidden(col):
            continue
        text = str(model.headerData(col, Qt.Orientation.Horizontal) or "")
        need = fm.horizontalAdvance(text) + 2 * margin + mark
        if header.sectionSize(col) < need:
            out.append(f"{text!r}: {header.sectionSize(col)} px < {need} px")
    return out


def clipped_cells(view: QTableView, row: int) -> list[str]:
    """Cells of `row` whose text (and icon) does not fit (a column reduced to one letter)."""
    model = view.model()
    fm = view.fontMetrics()
    icon = view.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize, None, view) + 4
    out = []
    for col in range(model.columnCount()):
        index = model.index(row, col)
        text = str(model.data(index) or "")
        has_icon = model.data(index, Qt.ItemDataRole.DecorationRole) is not None
        need = fm.horizontalAdvance(text) + 8 + (icon if has_icon else 0)
        if text and view.columnWidth(col) < need:
            out.append(f"{text!r}: {view.columnWidth(col)} px < {need} px")
    return out


def at_rest(view: QAbstractItemView) -> list[str]:
    problems = []
    if view.horizontalScrollBar().isVisible():
        problems.append("a horizontal scrollbar")
    return problems


def click(widget, pos: QPoint) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)


def visible_texts(widget) -> list[str]:
    return [w.text() for w in widget.findChildren(QLabel) if w.isVisible() and w.text()]


@pytest.mark.asyncio
async def probe_real_window(tmp_path, qtbot):
    width, height = screen_size()
    assert QGuiApplication.platformName() == "xcb"
    screen = QGuiApplication.primaryScreen()
    assert (screen.geometry().width(), screen.geometry().height()) == (width, height)
    assert screen.devicePixelRatio() == 1.0

    core = await demo_core(tmp_path / "real.db")
    window = MainWindow(core, db_url="sqlite:///jobtrigger.db", tray=False)
    qtbot.addWidget(window)
    dialogs = Dialogs()
    asyncqt.dialog_watchers.append(dialogs)
    try:
        window.show()
        await window.load()
        qtbot.waitExposed(window)
        avail = screen.availableGeometry()
        assert avail.contains(window.frameGeometry()), (window.frameGeometry(), avail)

        # one finished run of the job clicked in the table
        jobs = window.jobs_panel.view
        job_id = next(r.id for r in window.jobs_model.rows() if r.name == "nightly-backup")
        row = next(
            r
            for r in range(jobs.model().rowCount())
            if jobs.model().index(r, 0).data() == "nightly-backup"
        )
        click(jobs.viewport(), jobs.visualRect(jobs.model().index(row, 0)).center())
        assert window.jobs_panel.selected_id() == job_id
        run_id = await core.run_now(job_id)
        await core.start_run(run_id, "fileserver-01")
        await core.output(run_id, ("stdout", "backup pass 1\n"))
        await core.finish_run(run_id, "succeeded", 0)
        await settle(window)
        assert window.runs_model.rowCount() == 1

        for name, view in (("jobs", jobs), ("runs", window.runs_view)):
            assert clipped_headers(view) == [], name
            assert at_rest(view) == [], name
        assert clipped_cells(window.runs_view, 0) == []
        assert window.chart.title().startswith("Last 1 run ·")
        (bar,) = window.chart.bar_rects()
        assert bar.left() < window.chart.width() / 5 and bar.width() >= 12
        assert not [t for t in visible_texts(window) if " 1 runs" in t or " 1 jobs" in t]
        assert window.grab().save(str(OUT / "main-window.png"))

        # the editor, opened with a click on the toolbar's New button
        new_button = window.jobs_toolbar.widgetForAction(window.acts.act_new)
        click(new_button, new_button.rect().center())
        editor = await dialogs.next()
        qtbot.waitExposed(editor)
        QApplication.processEvents()  # its layout settles; the editor's own task is still open
        assert window.frameGeometry().contains(editor.frameGeometry()), (
            editor.frameGeometry(),
            window.frameGeometry(),
        )
        assert not [t for t in visible_texts(editor) if "is required" in t]
        preview = editor.preview
        assert preview.rowCount() == 10
        assert not preview.verticalScrollBar().isVisible()
        assert not preview.horizontalScrollBar().isVisible()
        last = preview.visualRect(preview.model().index(9, 0))
        assert last.bottom() <= preview.viewport().height(), (last, preview.viewport().height())
        assert clipped_headers(preview) == []
        assert editor.grab().save(str(OUT / "job-editor.png"))
        # a folder of the zone database, typed key by key: the message follows the field
        editor.tz.setFocus()
        editor.tz.selectAll()
        QTest.keyClicks(editor.tz, "America")
        assert editor.error_text("time_zone") == zone_problem("America")
        QTest.keyClick(editor, Qt.Key.Key_Escape)
        await settle(window)

        # the Workers tab, clicked: the toolbar stays and the tab bar does not move
        tabbar = window.tabs.tabBar()
        y_before = tabbar.mapTo(window, QPoint(0, 0)).y()
        click(tabbar, tabbar.tabRect(1).center())
        await settle(window)
        assert window.tabs.currentIndex() == 1
        assert window.jobs_toolbar.isVisible()
        assert tabbar.mapTo(window, QPoint(0, 0)).y() == y_before
        workers = window.workers_panel.view
        assert clipped_headers(workers) == []
        assert at_rest(workers) == []
        for r in range(workers.model().rowCount()):
            assert clipped_cells(workers, r) == [], r
        assert window.grab().save(str(OUT / "workers-panel.png"))
        assert isinstance(workers.horizontalHeader(), QHeaderView)
    finally:
        asyncqt.dialog_watchers.remove(dialogs)
        window.shutdown()
        await asyncqt.cancel_pending()
        await core.stop()
