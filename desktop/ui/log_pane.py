"""The log pane: one run's output, streaming live.

The widget keeps at most MAX_LINES lines (QPlainTextEdit.maximumBlockCount drops the oldest), so
a run printing 50,000 lines/s costs a bounded amount of layout per frame; the full output stays
in the database and "Save…" writes all of it from there.  stderr is drawn in a warning colour.
Chunks arrive already batched per frame by the EventBridge; consecutive chunks of one stream are
joined into one insert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QKeySequence,
    QPalette,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.asyncqt import spawn

log = logging.getLogger(__name__)

MAX_LINES = 20_000
PAGE_CHUNKS = 2_000
# A QPlainTextEdit insert costs ~13 us a line here, so the view takes at most this many lines
# per frame (~10,000 lines/s, more than anyone reads) and queues at most a moment's worth.
FRAME_MS = 30
LINES_PER_FRAME = 300
MAX_QUEUED_LINES = 3_000
LOAD_SLICE_LINES = 1_000
STDERR_COLOUR = "#d64541"

# reader(run_id, after_seq, limit) -> chunks with .seq, .stream, .text, oldest first
OutputReader = Callable[[int, int, int | None], Awaitable[list[Any]]]


class LogPane(QWidget):
    runLoaded = Signal(int)  # run id, once the stored output is shown and live lines follow

    def __init__(self, parent: QWidget | None = None, max_lines: int = MAX_LINES) -> None:
        super().__init__(parent)
        self.reader: OutputReader | None = None
        self.run_id: int | None = None
        self.last_seq = 0
        self._loading = False
        self._pending: list[Any] = []
        self.load_task: asyncio.Task[None] | None = None
        self._newline_due = False
        self.max_lines = max_lines
        self._queue: deque[tuple[str, str, int]] = deque()
        self._queued_lines = 0
        self._skipped = 0
        self._drain_timer = QTimer(self)
        self._drain_timer.setSingleShot(True)
        self._drain_timer.setInterval(FRAME_MS)
        self._drain_timer.timeout.connect(self._drain)

        self.title = QLabel("Select a run to see its output")
        self.follow = _tool_button("Follow")
        self.follow.setCheckable(True)
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep the newest line in view (End)")
        self.find_edit = QLineEdit(placeholderText="Find… (Ctrl+F)")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.setMaximumWidth(220)
        self.find_prev = _tool_button("◀")
        self.find_prev.setToolTip("Find previous (Shift+F3)")
        self.find_next = _tool_button("▶")
        self.find_next.setToolTip("Find next (F3)")
        self.copy_button = _tool_button("Copy")
        self.copy_button.setToolTip("Copy the selection, or everything shown when nothing is")
        self.save_button = _tool_button("Save…")
        self.save_button.setToolTip("Save this run's full output (from the database) to a file")

        self.view = QPlainTextEdit(readOnly=True)
        self.view.setMaximumBlockCount(max_lines)
        self.view.setUndoRedoEnabled(False)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setPlaceholderText("No output yet.")

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.title, 1)
        for w in (
            self.find_edit,
            self.find_prev,
            self.find_next,
            self.follow,
            self.copy_button,
            self.save_button,
        ):
            bar.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view)

        self._stdout_fmt = QTextCharFormat()
        self._stderr_fmt = QTextCharFormat()
        self._stderr_fmt.setForeground(QColor(STDERR_COLOUR))
        self._marker_fmt = QTextCharFormat()
        self._marker_fmt.setForeground(QColor("#8c8c8c"))
        self._marker_fmt.setFontItalic(True)

        self.find_edit.returnPressed.connect(lambda: self.find_text(backward=False))
        self.find_next.clicked.connect(lambda: self.find_text(backward=False))
        self.find_prev.clicked.connect(lambda: self.find_text(backward=True))
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self._ask_save)
        self.follow.toggled.connect(self._on_follow)
        self.view.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        QShortcut(QKeySequence.StandardKey.Find, self, self._focus_find)
        QShortcut(QKeySequence.StandardKey.FindNext, self, lambda: self.find_text(backward=False))
        QShortcut(
            QKeySequence.StandardKey.FindPrevious, self, lambda: self.find_text(backward=True)
        )
        self._update_buttons()

    # --- which run
    def set_reader(self, reader: OutputReader) -> None:
        self.reader = reader

    def show_run(self, run_id: int | None, title: str = "") -> None:
        """Show `run_id`'s stored output, then follow it live; None clears the pane."""
        self.run_id = run_id
        self.last_seq = 0
        self._pending = []
        self._queue.clear()
        self._queued_lines = 0
        self._skipped = 0
        self._drain_timer.stop()
        self.view.clear()
        self._newline_due = False
        self.title.setText(title or (f"Run {run_id}" if run_id else "Select a run"))
        self._update_buttons()
        if run_id is None or self.reader is None:
            self._loading = False
            return
        self._loading = True
        self.load_task = spawn(
            self._load(self.reader, run_id), f"loading the output of run {run_id}", background=True
        )

    async def _load(self, reader: OutputReader, run_id: int) -> None:
        """Stored output: page through it, keep only the tail the widget would keep anyway,
        then insert that in slices so the loop keeps turning."""
        tail: deque[tuple[str, str, int]] = deque()
        tail_lines = 0
        dropped = 0
        try:
            while True:
                page = await reader(run_id, self.last_seq, PAGE_CHUNKS)
                if self.run_id != run_id:
                    return  # the person moved on while this page was loading
                for c in page:
                    if c.seq <= self.last_seq:
                        continue
                    self.last_seq = c.seq
                    n = c.text.count("\n") or 1
                    tail.append((c.stream, c.text, n))
                    tail_lines += n
                    while tail_lines - tail[0][2] >= self.max_lines - 1:  # room for a marker
                        tail_lines -= tail[0][2]
                        dropped += tail.popleft()[2]
                if len(page) < PAGE_CHUNKS:
                    break
            if dropped:
                self._insert_marker(
                    f"[{dropped:,} earlier lines are not shown here; Save… writes all of them]"
                )
            while tail:
                batch, n = [], 0
                while tail and n < LOAD_SLICE_LINES:
                    item = tail.popleft()
                    batch.append(item)
                    n += item[2]
                self._insert_items(batch)
                await asyncio.sleep(0)  # one slice per loop turn
                if self.run_id != run_id:
                    return
        finally:
            if self.run_id == run_id:
                self._loading = False
                pending, self._pending = self._pending, []
                self.append(pending)
        self.runLoaded.emit(run_id)

    # --- live output
    def append(self, chunks: Iterable[Any]) -> None:
        """Output events (any runs): queue those of the shown run that are new.  The queue is
        drained a slice per frame; if it holds more than a moment's worth, the oldest queued
        lines are skipped in the view (with a marker) so the view stays live; the database
        keeps every line."""
        mine = [c for c in chunks if c.run_id == self.run_id]
        if not mine:
            return
        if self._loading:
            self._pending.extend(mine)
            return
        mine.sort(key=lambda c: c.seq)
        for c in mine:
            if c.seq <= self.last_seq:
                continue  # a replay the view already has
            self.last_seq = c.seq
            n = c.text.count("\n") or 1
            self._queue.append((c.stream, c.text, n))
            self._queued_lines += n
        while len(self._queue) > 1 and self._queued_lines - self._queue[0][2] >= MAX_QUEUED_LINES:
            n = self._queue.popleft()[2]
            self._queued_lines -= n
            self._skipped += n
        if self._queue and not self._drain_timer.isActive():
            self._drain()  # the first slice at once: a trickle of lines shows without delay

    def _drain(self) -> None:
        if self._skipped:
            self._insert_marker(
                f"[{self._skipped:,} lines skipped in this view to keep up; "
                "Save… writes all of them]"
            )
            self._skipped = 0
        batch, n = [], 0
        while self._queue and n < LINES_PER_FRAME:
            stream, text, lines = self._queue.popleft()
            room = LINES_PER_FRAME - n
            if lines > room:
                # a real worker sends ~50 ms of output per chunk (thousands of lines under a
                # flood): show a frame's worth now, the rest stays at the head of the queue
                parts = text.split("\n", room)
                head, rest = "\n".join(parts[:room]) + "\n", parts[room]
                self._queue.appendleft((stream, rest, lines - room))
                text, lines = head, room
            batch.append((stream, text, lines))
            n += lines
        self._queued_lines -= n
        self._insert_items(batch)
        if self._queue:
            self._drain_timer.start()
        else:
            self._drain_timer.stop()

    def drain_all(self) -> None:
        """Show everything queued now (tests; switching runs does not need it)."""
        while self._queue or self._skipped:
            self._drain()

    def _insert_items(self, items: list[tuple[str, str, int]]) -> None:
        if not items:
            return
        bar = self.view.verticalScrollBar()
        keep = bar.value()
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        run_stream: str | None = None
        run_text: list[str] = []
        for stream, text, _n in items:
            if stream != run_stream and run_text:
                self._put(cursor, run_stream, "".join(run_text))
                run_text = []
            run_stream = stream
            run_text.append(text)
        if run_text:
            self._put(cursor, run_stream, "".join(run_text))
        cursor.endEditBlock()
        if self.follow.isChecked():
            bar.setValue(bar.maximum())
        else:
            bar.setValue(min(keep, bar.maximum()))
        self._update_buttons()

    def _insert_marker(self, text: str) -> None:
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if self._newline_due or not self.view.document().isEmpty():
            cursor.insertBlock()
        cursor.insertText(text, self._marker_fmt)
        self._newline_due = True

    def _put(self, cursor: QTextCursor, stream: str | None, text: str) -> None:
        fmt = self._stderr_fmt if stream == "stderr" else self._stdout_fmt
        # A chunk's final newline is held back and written as a block break before the next
        # insert, so the widget never shows an empty last line; text without one continues it.
        if self._newline_due:
            cursor.insertBlock()
        self._newline_due = text.endswith("\n")
        cursor.insertText(text[:-1] if self._newline_due else text, fmt)

    def text(self) -> str:
        return self.view.toPlainText()

    # --- follow / find / copy / save
    def _on_follow(self, on: bool) -> None:
        if on:
            bar = self.view.verticalScrollBar()
            bar.setValue(bar.maximum())

    def _on_scrolled(self, value: int) -> None:
        # scrolling up by hand pauses following; back at the bottom resumes it
        at_bottom = value >= self.view.verticalScrollBar().maximum() - 2
        if self.follow.isChecked() != at_bottom and self.view.hasFocus():
            self.follow.setChecked(at_bottom)

    def _focus_find(self) -> None:
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def find_text(self, backward: bool = False) -> bool:
        needle = self.find_edit.text()
        if not needle:
            return False
        flags = QTextDocument.FindFlag.FindBackward if backward else QTextDocument.FindFlag(0)
        found = self.view.find(needle, flags)
        if not found:  # wrap around once
            cursor = self.view.textCursor()
            cursor.movePosition(
                QTextCursor.MoveOperation.End if backward else QTextCursor.MoveOperation.Start
            )
            self.view.setTextCursor(cursor)
            found = self.view.find(needle, flags)
        if found:
            self.follow.setChecked(False)
        pal = self.find_edit.palette()
        pal.setColor(
            QPalette.ColorRole.Base,
            self.palette().color(QPalette.ColorRole.Base) if found else QColor("#f8d7da"),
        )
        self.find_edit.setPalette(pal)
        return found

    def copy(self) -> str:
        text = self.view.textCursor().selectedText().replace("\u2029", "\n") or self.text()
        QApplication.clipboard().setText(text)
        return text

    def _ask_save(self) -> None:
        if self.run_id is None:
            return
        dialog = QFileDialog(self, "Save run output", f"run-{self.run_id}.log")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(["Log files (*.log *.txt)", "All files (*)"])
        run_id = self.run_id
        dialog.fileSelected.connect(
            lambda path: spawn(self.save(run_id, Path(path)), f"saving run {run_id}")
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.open()

    async def save(self, run_id: int, path: Path) -> int:
        """Write the run's full output from the database (not just what the widget kept); stderr
        lines are kept in order as they were interleaved.  Returns the number of chunks."""
        reader = self.reader
        if reader is None:
            raise RuntimeError("no output reader set: nothing to save the run from")
        after, count = 0, 0
        with open(path, "w", encoding="utf-8", newline="") as f:
            while True:
                page = await reader(run_id, after, PAGE_CHUNKS)
                for c in page:
                    f.write(c.text)
                count += len(page)
                if len(page) < PAGE_CHUNKS:
                    break
                after = page[-1].seq
        return count

    def _update_buttons(self) -> None:
        has_run = self.run_id is not None
        self.save_button.setEnabled(has_run and self.reader is not None)
        self.copy_button.setEnabled(has_run)


def _tool_button(text: str) -> QToolButton:
    # not QToolButton(text=...): Qt takes inherited properties as keywords at run time, but
    # PySide6's stubs list only the class's own, so the checker could not see these calls
    button = QToolButton()
    button.setText(text)
    return button
