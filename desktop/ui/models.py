"""The table models: jobs, runs (lazy, keyset-paged) and workers.

Every change is incremental (dataChanged / insert / remove of the one row), never a reset on an
event, so 10,000 jobs keep their selection, scroll position and speed while runs tick by.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from desktop.core.timeutil import utcnow
from desktop.service.rules import IN_CLEAR_ADVICE
from desktop.ui.asyncqt import spawn
from desktop.ui.formatting import (
    DEFAULT_DISPLAY_TZ,
    format_age,
    format_duration,
    format_time,
    outcome_colour,
    outcome_label,
)
from desktop.ui.rows import JobRow, RunRow, WorkerRow, job_sort_key

log = logging.getLogger(__name__)

SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1  # lower-case text the jobs filter matches
ID_ROLE = Qt.ItemDataRole.UserRole + 2
ROW_ROLE = Qt.ItemDataRole.UserRole + 3

_Index = QModelIndex | QPersistentModelIndex


@lru_cache(maxsize=32)
def outcome_icon(colour: str) -> QIcon:
    """A small filled dot in the outcome colour (cached: one pixmap per colour)."""
    pix = QPixmap(12, 12)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pix)


def _no_key(row: Any) -> None:
    return None


class _KeyedTableModel(QAbstractTableModel):
    """Rows in a list plus a key -> row map, with single-row insert/update/remove."""

    HEADERS: Sequence[str] = ()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []
        self._index: dict[Any, int] = {}
        self.display_tz = DEFAULT_DISPLAY_TZ
        # (column, descending) when the model keeps its rows sorted, else None
        self.sorting = None

    # Sorting lives in the model, not in QSortFilterProxyModel: the proxy would call data() from
    # C++ for every comparison (~280,000 Python calls to sort 10,000 jobs, over a second);
    # list.sort with a key is milliseconds, and single-row changes move one row by bisection.
    def key_function(self, column: int) -> Callable[[Any], Any]:
        """The sort key of a row for `column` (a plain function: it runs 10,000 times a sort)."""
        return lambda row: None

    def _key(self, row: Any) -> Any:
        return self._key_fn(row)

    @property
    def sorting(self) -> tuple[int, bool] | None:
        return self._sorting

    @sorting.setter
    def sorting(self, value: tuple[int, bool] | None) -> None:
        self._sorting = value
        # unsorted, rows keep the order they came in and no key is asked for
        self._key_fn: Callable[[Any], Any] = (
            self.key_function(value[0]) if value is not None else _no_key
        )
        self._descending = value is not None and value[1]

    def _before(self, a: Any, b: Any) -> bool:
        """Does key a sort strictly before key b in the current order?"""
        return a > b if self._descending else a < b

    def _position(self, row: Any, rows: list[Any]) -> int:
        """Where `row` goes in `rows` (sorted): after every row that is not after it."""
        key = self._key(row)
        lo, hi = 0, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._before(key, self._key(rows[mid])):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.HEADERS):
            self.sorting = None
            return
        self.sorting = (column, order == Qt.SortOrder.DescendingOrder)
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        keys = [(self.key_of(self._rows[i.row()]), i.column()) for i in old]
        self._rows.sort(key=self._key_fn, reverse=self.sorting[1])
        self._reindex()
        self.changePersistentIndexList(old, [self.index(self._index[k], c) for k, c in keys])
        self.layoutChanged.emit()

    # --- Qt interface
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    # --- row access
    @staticmethod
    def key_of(row: Any) -> Any:
        return row.id

    def row_at(self, row: int) -> Any:
        return self._rows[row]

    def row_for_key(self, key: Any) -> int | None:
        return self._index.get(key)

    def get(self, key: Any) -> Any | None:
        i = self._index.get(key)
        return None if i is None else self._rows[i]

    def rows(self) -> list[Any]:
        return list(self._rows)

    def _reindex(self, start: int = 0) -> None:
        for i in range(start, len(self._rows)):
            self._index[self.key_of(self._rows[i])] = i

    # --- changes
    def set_rows(self, rows: Iterable[Any]) -> None:
        """Replace everything (initial load only; events use upsert/remove)."""
        self.beginResetModel()
        self._rows = list(rows)
        if self.sorting is not None:
            self._rows.sort(key=self._key_fn, reverse=self.sorting[1])
        self._index = {}
        self._reindex()
        self.endResetModel()

    def upsert(self, row: Any, *, at_top: bool = False) -> None:
        key = self.key_of(row)
        i = self._index.get(key)
        if i is not None:
            self._rows[i] = row
            if self.sorting is not None:
                i = self._resort(i)
            self.dataChanged.emit(self.index(i, 0), self.index(i, self.columnCount() - 1))
            return
        if self.sorting is not None:
            pos = self._position(row, self._rows)
        else:
            pos = 0 if at_top else len(self._rows)
        self.beginInsertRows(QModelIndex(), pos, pos)
        self._rows.insert(pos, row)
        if pos == len(self._rows) - 1:
            self._index[key] = pos
        else:
            self._reindex(pos)
        self.endInsertRows()

    def update_rows(self, rows: Iterable[Any]) -> None:
        """Many upserts with one dataChanged for the rows changed in place.

        A reconnect storm changes every worker's row at once (online again): an upsert each is
        three calls into Qt and a signal per row, each holding the interpreter lock the Core's
        thread needs.  A row whose sort key did not change stays where it is, so the rows
        changed in place are announced together (the span from the first to the last: the view
        repaints only what it shows); new rows and rows that move go through upsert.  Into an
        empty model the rows go as one reset (set_rows)."""
        rows = list(rows)
        if not self._rows and rows:
            # the first load (10,000 workers): one reset, not a rowsInserted per row
            self.set_rows(rows)
            return
        first = last = -1
        for row in rows:
            i = self._index.get(self.key_of(row))
            if i is None or (
                self.sorting is not None and self._key(row) != self._key(self._rows[i])
            ):
                if first >= 0:  # announced before the order changes under it
                    self._changed(first, last)
                    first = last = -1
                self.upsert(row)
                continue
            self._rows[i] = row
            first = i if first < 0 else min(first, i)
            last = max(last, i)
        if first >= 0:
            self._changed(first, last)

    def _changed(self, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))

    def _resort(self, i: int) -> int:
        """Row i changed: move it where the sort order wants it; returns its new row."""
        row = self._rows[i]
        key = self._key(row)
        in_place = (i == 0 or not self._before(key, self._key(self._rows[i - 1]))) and (
            i == len(self._rows) - 1 or not self._before(self._key(self._rows[i + 1]), key)
        )
        if in_place:
            return i
        rest = self._rows[:i] + self._rows[i + 1 :]
        j = self._position(row, rest)
        # Qt counts the destination in the numbering before the move
        self.beginMoveRows(QModelIndex(), i, i, QModelIndex(), j + 1 if j > i else j)
        self._rows = rest
        self._rows.insert(j, row)
        self._reindex(min(i, j))
        self.endMoveRows()
        return j

    def remove(self, key: Any) -> bool:
        i = self._index.get(key)
        if i is None:
            return False
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._rows[i]
        del self._index[key]
        self._reindex(i)
        self.endRemoveRows()
        return True

    def set_display_tz(self, name: str) -> None:
        self.display_tz = name
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, self.columnCount() - 1)
            )


class JobsTableModel(_KeyedTableModel):
    HEADERS = ("Name", "Schedule", "Target", "Next run", "Last run", "Last outcome", "Enabled")
    NAME, SCHEDULE, TARGET, NEXT, LAST, OUTCOME, ENABLED = range(7)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.sorting = (self.NAME, False)

    def key_function(self, column: int) -> Callable[[JobRow], Any]:
        return job_sort_key(column)

    def data(self, index: _Index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        job: JobRow = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NAME:
                return job.name
            if col == self.SCHEDULE:
                return job.schedule_text
            if col == self.TARGET:
                return job.target_text
            if col == self.NEXT:
                if not job.enabled:
                    return "disabled"
                return format_time(job.next_fire_at, self.display_tz) or "not scheduled"
            if col == self.LAST:
                return format_time(job.last_run_at, self.display_tz)
            if col == self.OUTCOME:
                return outcome_label(job.last_run_state)
            if col == self.ENABLED:
                return "Yes" if job.enabled else "No"
        elif role == SEARCH_ROLE:
            return job.search_text
        elif role == Qt.ItemDataRole.DecorationRole and col == self.OUTCOME:
            colour = outcome_colour(job.last_run_state)
            return outcome_icon(colour) if colour else None
        elif role == Qt.ItemDataRole.ForegroundRole and not job.enabled:
            return QColor("#8c8c8c")
        elif role == Qt.ItemDataRole.ToolTipRole:
            if col == self.NAME:
                return f"{job.name}\nscript: {job.script}"
            if col == self.SCHEDULE:
                return job.schedule_text
        elif role == ID_ROLE:
            return job.id
        elif role == ROW_ROLE:
            return job
        return None


RunsLoader = Callable[[int, int | None, int], Awaitable[list[RunRow]]]


class RunsTableModel(_KeyedTableModel):
    """Runs of one job, newest first, fetched a page at a time as the view scrolls.

    canFetchMore/fetchMore are Qt's lazy-population hooks.  fetchMore starts an async page load
    (keyset: the runs older than the oldest one shown), so a job with 1,000,000 runs opens with
    one small query.  A change of job bumps a generation so late pages of the old job are dropped.
    """

    HEADERS = (
        "Run",
        "Outcome",
        "Started",
        "Duration",
        "Exit code",
        "Worker",
        "Trigger",
        "Scheduled",
    )
    ID, OUTCOME, STARTED, DURATION, EXIT, WORKER, TRIGGER, SCHEDULED = range(8)

    def __init__(self, loader: RunsLoader | None = None, page_size: int = 200, parent=None):
        super().__init__(parent)
        self._loader = loader
        self.page_size = page_size
        self.job_id: int | None = None
        self._more = False
        self._loading = False
        self._generation = 0
        # the latest page task, for tests and callers that must wait
        self.last_load: asyncio.Task[None] | None = None

    def set_loader(self, loader: RunsLoader) -> None:
        self._loader = loader

    def set_job(self, job_id: int | None) -> None:
        self._generation += 1
        self.job_id = job_id
        self._loading = False
        self._more = job_id is not None and self._loader is not None
        self.set_rows([])
        if self._more:
            self.fetchMore(QModelIndex())

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._more and not self._loading

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:  # noqa: B008
        loader, job_id = self._loader, self.job_id
        if parent.isValid() or not self._more or self._loading or loader is None or job_id is None:
            return
        self._loading = True
        self.last_load = spawn(
            self._load_page(loader, job_id, self._generation), "loading runs", background=True
        )

    async def _load_page(self, loader: RunsLoader, job_id: int, generation: int) -> None:
        before = self._rows[-1].id if self._rows else None
        try:
            page = await loader(job_id, before, self.page_size)
        finally:
            if generation == self._generation:
                self._loading = False
        if generation != self._generation:
            return
        fresh = [r for r in page if r.id not in self._index]
        self._more = len(page) >= self.page_size
        if not fresh:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
        self._rows.extend(fresh)
        self._reindex(start)
        self.endInsertRows()

    def apply(self, row: RunRow) -> None:
        """A run changed or appeared: update it in place, or put a new run of this job on top.
        Runs older than what is loaded are left to paging."""
        if row.job_id != self.job_id:
            return
        if row.id in self._index:
            self.upsert(row)
        elif not self._rows or row.id > self._rows[0].id:
            self.upsert(row, at_top=True)

    def data(self, index: _Index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        run: RunRow = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.ID:
                return str(run.id)
            if col == self.SCHEDULED:
                return format_time(run.scheduled_at, self.display_tz)
            if col == self.STARTED:
                return format_time(run.started_at, self.display_tz)
            if col == self.DURATION:
                if run.finished_at is None and run.started_at is not None:
                    return "running…"
                return format_duration(run.duration)
            if col == self.WORKER:
                return run.worker
            if col == self.OUTCOME:
                return outcome_label(run.state)
            if col == self.EXIT:
                return "" if run.exit_code is None else str(run.exit_code)
            if col == self.TRIGGER:
                return run.trigger if run.attempt <= 1 else f"{run.trigger} #{run.attempt}"
        elif role == Qt.ItemDataRole.DecorationRole and col == self.OUTCOME:
            colour = outcome_colour(run.state)
            return outcome_icon(colour) if colour else None
        elif role == Qt.ItemDataRole.ToolTipRole and run.reason:
            return run.reason
        elif role == Qt.ItemDataRole.TextAlignmentRole and col in (self.ID, self.EXIT):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == ID_ROLE:
            return run.id
        elif role == ROW_ROLE:
            return run
        return None


class WorkersTableModel(_KeyedTableModel):
    HEADERS = ("Name", "Status", "Host", "OS", "Version", "Heartbeat", "Running", "Tags")
    NAME, STATUS, HOST, OS, VERSION, HEARTBEAT, RUNNING, TAGS = range(8)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.now = utcnow()
        self.sorting = (self.NAME, False)

    def key_function(self, column: int) -> Callable[[WorkerRow], Any]:
        return lambda w: w.name.casefold()

    @staticmethod
    def key_of(row: WorkerRow) -> str:
        return row.name

    def tick(self, now: datetime) -> None:
        """Heartbeat ages move with the clock: refresh just that column."""
        self.now = now
        if self._rows:
            col = self.HEARTBEAT
            self.dataChanged.emit(self.index(0, col), self.index(len(self._rows) - 1, col))

    def data(self, index: _Index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        w: WorkerRow = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.NAME:
                return w.name
            if col == self.STATUS:
                if not w.enabled:
                    return "Disabled"
                if w.online and w.problem:
                    return "Online, stalled"
                if w.online and w.in_clear:
                    return "Online, no TLS"
                return "Online" if w.online else "Offline"
            if col == self.HOST:
                return w.host
            if col == self.OS:
                return w.os
            if col == self.VERSION:
                return w.version
            if col == self.HEARTBEAT:
                return format_age(w.last_heartbeat, self.now)
            if col == self.RUNNING:
                return f"{w.running} / {w.slots}"
            if col == self.TAGS:
                return ", ".join(w.tags)
        elif role == Qt.ItemDataRole.DecorationRole and col == self.STATUS:
            colour = "#2e9d4a" if w.online and w.enabled else "#8c8c8c"
            if w.online and w.in_clear:
                colour = "#e0a030"  # online, but its token crossed the network in clear
            if w.online and w.problem:
                colour = "#d08a00"  # stalled: the worker said why (tooltip)
            return outcome_icon(colour)
        elif role == Qt.ItemDataRole.ToolTipRole and col == self.STATUS and w.online:
            tips = [w.problem] if w.problem else []
            if w.in_clear:
                tips.append(f"{w.name}: {IN_CLEAR_ADVICE}")
            return "\n".join(tips) or None
        elif role == Qt.ItemDataRole.ToolTipRole and col == self.HEARTBEAT:
            return format_time(w.last_heartbeat, self.display_tz) or "never connected"
        elif role == ID_ROLE:
            return w.name
        elif role == ROW_ROLE:
            return w
        return None
