"""The Audit tab: who changed what and when, newest first.

Filters (kind, a name fragment, how far back) are applied by the console (Core.audit_events);
sorting by any column happens here.  Times are in the display zone; "who" is the OS user and
host of the window or the CLI, "console"/"cli" for rows from before issue 17, "scheduler" or a
worker name for what they did.  Secrets appear as "secret NAME changed", never a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.timeutil import utcnow
from desktop.ui.asyncqt import spawn
from desktop.ui.formatting import format_time
from desktop.ui.panels import make_table

Loader = Callable[..., Awaitable[list[Any]]]  # Core.audit_events(since=, kind=, name=)

COLUMNS = ("When", "Who", "What", "Kind", "Name", "Change")
KINDS = (("All kinds", None), ("Jobs", "job"), ("Workers", "worker"), ("Settings", "setting"))
SPANS = (
    ("Last 24 hours", timedelta(days=1)),
    ("Last 7 days", timedelta(days=7)),
    ("Last 30 days", timedelta(days=30)),
    ("Everything kept", None),
)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class AuditPanel(QWidget):
    def __init__(
        self, loader: Loader, display_tz: str, parent: QWidget | None = None, *, clock=utcnow
    ) -> None:
        super().__init__(parent)
        self.loader = loader
        self.display_tz = display_tz
        self.clock = clock
        self.load_task: asyncio.Task[None] | None = None
        self.kind = QComboBox()
        for label, key in KINDS:
            self.kind.addItem(label, key)
        self.name = QLineEdit(placeholderText="name contains…")
        self.name.setClearButtonEnabled(True)
        self.span = QComboBox()
        for label, delta in SPANS:
            self.span.addItem(label, delta)
        self.span.setCurrentIndex(1)
        self.refresh_button = QPushButton("Refresh")
        self.count = QLabel()
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = make_table(self.proxy, sortable=True)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.sortByColumn(0, Qt.SortOrder.DescendingOrder)  # newest first
        bar = QHBoxLayout()
        for w in (self.kind, self.name, self.span, self.refresh_button):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self.kind.currentIndexChanged.connect(self.refresh)
        self.span.currentIndexChanged.connect(self.refresh)
        self.name.returnPressed.connect(self.refresh)
        self.name.textChanged.connect(self._name_cleared)
        self.refresh_button.clicked.connect(self.refresh)

    def _name_cleared(self, text: str) -> None:
        if not text:
            self.refresh()

    def filters(self) -> dict[str, Any]:
        delta: timedelta | None = self.span.currentData()
        since: datetime | None = self.clock() - delta if delta else None
        return {
            "since": since,
            "kind": self.kind.currentData(),
            "name": self.name.text().strip() or None,
        }

    def refresh(self, *_args) -> None:
        self.load_task = spawn(self.load(), "loading the audit trail", background=True)

    async def load(self) -> None:
        events = await self.loader(**self.filters())
        self.show_events(events)

    def show_events(self, events: list[Any]) -> None:
        self.model.setRowCount(0)
        for e in events:
            cells = (
                (format_time(e.at, self.display_tz), e.at.timestamp()),
                (e.actor, e.actor),
                (e.action, e.action),
                (e.entity_kind, e.entity_kind),
                (e.entity_name, e.entity_name.lower()),
                (e.detail, e.detail),
            )
            row = []
            for text, key in cells:
                item = QStandardItem(text)
                item.setData(key, SORT_ROLE)
                item.setToolTip(text)
                row.append(item)
            self.model.appendRow(row)
        self.count.setText(f"{len(events)} entries" if len(events) != 1 else "1 entry")
        self.view.resizeColumnsToContents()

    def set_display_tz(self, name: str) -> None:
        self.display_tz = name
        self.refresh()
