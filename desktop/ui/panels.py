"""The two big views: the jobs table with its filter, and the workers panel, and `Panels`, the
set of views the window's parts act on.  Views only: window_commands.py decides what the
actions do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyle,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop.core.words import plural
from desktop.ui.models import (
    ID_ROLE,
    ROW_ROLE,
    SEARCH_ROLE,
    JobsTableModel,
    RunsTableModel,
    WorkersTableModel,
)

if TYPE_CHECKING:
    from desktop.ui.log_pane import LogPane


def make_table(model, *, sortable: bool) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    # fixed row height: the view does not measure 10,000 rows to lay them out
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    view.horizontalHeader().setHighlightSections(False)
    view.setSortingEnabled(sortable)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    return view


def fit_columns(view: QTableView, samples: Sequence[str], icon_columns: Sequence[int] = ()) -> int:
    """Column widths from the real font: each column as wide as its header label or its sample
    (the widest text it usually holds), whichever needs more.  Returns the total width, so the
    caller can give the table that much room.  Measured, not fixed pixels: a larger system font
    must not clip the headers."""
    header = view.horizontalHeader()
    style = header.style()
    margin = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
    mark = (
        style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize, None, header) + margin
        if view.isSortingEnabled()
        else 0
    )
    head_fm, cell_fm = header.fontMetrics(), view.fontMetrics()
    model = view.model()
    total = 0
    for col, sample in enumerate(samples):
        label = str(model.headerData(col, Qt.Orientation.Horizontal) or "")
        width = max(
            head_fm.horizontalAdvance(label) + 2 * margin + mark + 4,
            cell_fm.horizontalAdvance(sample)
            + 16
            + (_icon_room(view) if col in icon_columns else 0),
        )
        view.setColumnWidth(col, width)
        total += width
    return total


def widest(view: QTableView, texts: Iterable[str]) -> str:
    """The text that takes the most room in `view`'s font (not the one with most letters)."""
    fm = view.fontMetrics()
    return max(texts, key=fm.horizontalAdvance)


def _icon_room(view: QTableView) -> int:
    """What a cell's decoration (the outcome dot) takes before its text."""
    style = view.style()
    return style.pixelMetric(QStyle.PixelMetric.PM_SmallIconSize, None, view) + 8


class JobsFilterProxy(QSortFilterProxyModel):
    """Filters on each job's pre-built search text; sorting is passed to the source model,
    which sorts far faster than the proxy can (see _KeyedTableModel.sort)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFilterRole(SEARCH_ROLE)
        self.setFilterKeyColumn(0)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        self.sourceModel().sort(column, order)


class JobsPanel(QWidget):
    selectedJobChanged = Signal(object)  # job id or None

    def __init__(self, model: JobsTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = JobsFilterProxy(self)
        self.proxy.setSourceModel(model)
        self.filter = QLineEdit(placeholderText="Filter jobs by name, schedule, target… (Ctrl+L)")
        self.filter.setClearButtonEnabled(True)
        self.count = QLabel()
        self.view = make_table(self.proxy, sortable=True)
        self.view.sortByColumn(JobsTableModel.NAME, Qt.SortOrder.AscendingOrder)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for col, width in enumerate((200, 260, 120, 150, 150, 120, 70)):
            self.view.setColumnWidth(col, width)
        header.setSectionResizeMode(JobsTableModel.SCHEDULE, QHeaderView.ResizeMode.Stretch)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.view)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.textChanged.connect(self._update_count)
        model.rowsInserted.connect(self._update_count)
        model.rowsRemoved.connect(self._update_count)
        model.modelReset.connect(self._update_count)
        self.view.selectionModel().currentRowChanged.connect(self._current_changed)
        self._update_count()

    def set_loading(self, total: int | None) -> None:
        """A large table is still being read: ``total`` jobs exist (None: all are in)."""
        self._loading_total = total
        self._update_count()

    def _update_count(self, *_args) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        loading = getattr(self, "_loading_total", None)
        if loading is not None and loading > total:
            # the filter and the count only cover the rows read so far: say so
            self.count.setText(f"{total} of {plural(loading, 'job')}, loading the rest…")
            return
        self.count.setText(
            plural(total, "job") if shown == total else f"{shown} of {plural(total, 'job')}"
        )

    def _current_changed(self, current, _previous) -> None:
        self.selectedJobChanged.emit(current.data(ID_ROLE) if current.isValid() else None)

    def selected_id(self) -> int | None:
        index = self.view.selectionModel().currentIndex()
        if not index.isValid() or not self.view.selectionModel().isRowSelected(index.row()):
            return None
        return index.data(ID_ROLE)

    def selected_row(self):
        index = self.view.selectionModel().currentIndex()
        return index.data(ROW_ROLE) if index.isValid() else None

    def select(self, job_id: int) -> bool:
        row = self.model.row_for_key(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():  # filtered out: clear the filter so the new job shows
            self.filter.clear()
            index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.view.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.view.scrollTo(index)
        return True


class WorkersPanel(QWidget):
    def __init__(self, model: WorkersTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.toolbar = QToolBar()
        self.view = make_table(model, sortable=False)
        header = self.view.horizontalHeader()
        for col, width in enumerate((180, 90, 160, 180, 80, 110, 80)):
            self.view.setColumnWidth(col, width)
        header.setStretchLastSection(True)
        self.hint = QLabel(
            "Workers connect out to this console. Add one to get its token and a ready "
            "worker.ini, then start the worker program on that host."
        )
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.view)
        layout.addWidget(self.hint)

    def selected_name(self) -> str | None:
        index = self.view.selectionModel().currentIndex()
        return index.data(ID_ROLE) if index.isValid() else None


@dataclass(frozen=True)
class Panels:
    """The window's views and their models: what the actions and commands act on, handed to
    them explicitly (built by MainWindow, or by a test on its own)."""

    jobs_model: JobsTableModel
    runs_model: RunsTableModel
    workers_model: WorkersTableModel
    jobs_panel: JobsPanel
    runs_view: QTableView
    workers_panel: WorkersPanel
    log_pane: LogPane
    tabs: QTabWidget
