"""Editing notification rules (channels x events) and chains (then job, on, arguments); used by
the job editor and the Channels page.  Plain lists of dicts in and out, as Core takes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core import chains as c
from desktop.core import notify as n
from desktop.ui.fieldtext import parse_args

_W = TypeVar("_W", bound=QWidget)

EVENT_LABELS = {
    n.FAILED: "Failed",
    n.TIMED_OUT: "Timed out",
    n.LOST: "Lost",
    n.MISSED: "Missed",
    n.RECOVERED: "Recovered",
}
ON_LABELS = {c.SUCCESS: "on success", c.FAILURE: "on failure", c.END: "on any end"}


class RulesTable(QTableWidget):
    """One row per channel, one check box per event."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(n.EVENTS), parent)
        self.setHorizontalHeaderLabels([EVENT_LABELS[e] for e in n.EVENTS])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.itemChanged.connect(lambda _item: self.changed.emit())
        self._channels: list[str] = []

    def set_data(self, channels: Iterable[str], rules: list[dict]) -> None:
        self.blockSignals(True)
        self._channels = sorted(channels)
        wanted = {r["channel"]: set(r["on"]) for r in rules}
        self.setRowCount(len(self._channels))
        self.setVerticalHeaderLabels(self._channels)
        for row, name in enumerate(self._channels):
            for col, event in enumerate(n.EVENTS):
                item = QTableWidgetItem()
                item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                on = event in wanted.get(name, set())
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                self.setItem(row, col, item)
        self.blockSignals(False)

    def rules(self) -> list[dict]:
        out = []
        for row, name in enumerate(self._channels):
            events = [e for col, e in enumerate(n.EVENTS) if _checked(self.item(row, col))]
            if events:
                out.append({"channel": name, "on": events})
        return out


def _checked(item: QTableWidgetItem | None) -> bool:
    return item is not None and item.checkState() == Qt.CheckState.Checked


class ChainsEditor(QWidget):
    """Rows of (then job, on, arguments); arguments may use {run_id} {exit_code} {state} {job}."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Then start", "When", "Arguments (empty: its own)"])
        header = self.table.horizontalHeader()
        # cell widgets do not size their columns: fixed widths that fit a job name and "on any end"
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 200)
        self.table.setColumnWidth(1, 130)
        self.table.verticalHeader().setVisible(False)
        self.add_button = QPushButton("Add chain")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(lambda: self.add_row())
        self.remove_button.clicked.connect(self._remove)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._jobs: list[str] = []

    def set_data(self, jobs: Iterable[str], chains: list[dict]) -> None:
        self._jobs = sorted(jobs)
        self.table.setRowCount(0)
        for chain in chains:
            self.add_row(chain)

    def add_row(self, chain: dict | None = None) -> None:
        chain = chain or {"then": self._jobs[0] if self._jobs else "", "on": c.SUCCESS}
        row = self.table.rowCount()
        self.table.insertRow(row)
        then = QComboBox(editable=True)
        then.addItems(self._jobs)
        then.setCurrentText(chain["then"])
        on = QComboBox()
        for key, label in ON_LABELS.items():
            on.addItem(label, key)
        on.setCurrentIndex(list(ON_LABELS).index(chain.get("on", c.SUCCESS)))
        args = QLineEdit(" ".join(chain["args"]) if chain.get("args") is not None else "")
        args.setPlaceholderText("e.g. --after {run_id} --code {exit_code}")
        self.table.setCellWidget(row, 0, then)
        self.table.setCellWidget(row, 1, on)
        self.table.setCellWidget(row, 2, args)
        then.currentTextChanged.connect(lambda _t: self.changed.emit())
        on.currentIndexChanged.connect(lambda _i: self.changed.emit())
        args.textChanged.connect(lambda _t: self.changed.emit())
        self.changed.emit()

    def _cell(self, row: int, column: int, kind: type[_W]) -> _W:
        """The editing widget add_row put in this cell."""
        widget = self.table.cellWidget(row, column)
        if not isinstance(widget, kind):
            raise TypeError(f"chain row {row}, column {column}: not a {kind.__name__}")
        return widget

    def _remove(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            row = self.table.rowCount() - 1
        if row >= 0:
            self.table.removeRow(row)
            self.changed.emit()

    def chains(self) -> list[dict]:

        out = []
        for row in range(self.table.rowCount()):
            then = self._cell(row, 0, QComboBox).currentText().strip()
            on = self._cell(row, 1, QComboBox).currentData()
            text = self._cell(row, 2, QLineEdit).text().strip()
            chain: dict = {"then": then, "on": on}
            if text:
                chain["args"], _ = parse_args(text)
            out.append(chain)
        return out

    def problems(self, own_name: str) -> str:
        """What is wrong before saving (the store checks cycles through other jobs again)."""

        for row in range(self.table.rowCount()):
            text = self._cell(row, 2, QLineEdit).text().strip()
            if text and parse_args(text)[1]:
                return f"chain {row + 1}: arguments: {parse_args(text)[1]}"
        seen = set()
        for i, chain in enumerate(self.chains(), 1):
            if chain["then"] not in self._jobs:
                return f"chain {i}: there is no job {chain['then']!r}"
            if chain["then"] == own_name:
                return f"chain {i}: a job cannot start itself (that would loop)"
            if (chain["then"], chain["on"]) in seen:
                return f"chain {i}: the same chain twice"
            seen.add((chain["then"], chain["on"]))
            try:
                c.check_args(chain.get("args") or [])
            except c.ChainError as exc:
                return f"chain {i}: {exc}"
        return ""


class LinksTab(QWidget):
    """The editor's "Notifications and chains" tab."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QGroupBox, QLabel

        from desktop.ui.schedule_forms import error_label

        self.loaded = False
        self.rules = RulesTable()
        self.rules_note = QLabel(
            "Tick the events to notify on, per channel (channels: Settings -> Channels). "
            "The default rule in Settings applies to every job as well."
        )
        self.rules_note.setWordWrap(True)
        self.chains = ChainsEditor()
        self.chains_note = QLabel(
            "When a run of this job ends, start another job, once per run. Arguments may use "
            "{run_id}, {exit_code}, {state} and {job} of the run that ended."
        )
        self.chains_note.setWordWrap(True)
        self.error = error_label()
        self.rules_box = QGroupBox("Notify")
        v = QVBoxLayout(self.rules_box)
        v.addWidget(self.rules_note)
        v.addWidget(self.rules, 1)
        self.chains_box = QGroupBox("Then start")
        v = QVBoxLayout(self.chains_box)
        v.addWidget(self.chains_note)
        v.addWidget(self.chains, 1)
        v.addWidget(self.error)
        layout = QVBoxLayout(self)
        layout.addWidget(self.rules_box, 1)
        layout.addWidget(self.chains_box, 1)
        self.rules.changed.connect(self.changed)
        self.chains.changed.connect(self.changed)

    def set_data(self, channels, jobs, rules: list[dict], chains: list[dict]) -> None:
        self.rules.set_data(channels, rules)
        self.chains.set_data(jobs, chains)
        self.loaded = True
        self.changed.emit()

    def links(self) -> tuple[list[dict], list[dict]] | None:
        """(rules, chains) to save with the job; None when they were never loaded."""
        if not self.loaded:
            return None
        return self.rules.rules(), self.chains.chains()
