"""The editor's Secrets section: a job's named secrets, values masked.

Stored values are never loaded: a stored secret shows as dots and "unchanged"; typing a new
value replaces it; Reveal asks the console for that one value (an explicit, audited action)
and shows it in the field.  Duplicate does not copy secrets.  ``changes()`` gives what Save
sends: {name: new value} and {name: None} for removed ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.secret_rules import check_name, check_value, worker_warning
from desktop.ui.asyncqt import spawn

Revealer = Callable[[str], Awaitable[str]]

SHORT_NOTE = "Encrypted, shown as *** in output; workers' environment policy applies."
NOTE = (
    "Stored encrypted; sent only to the worker that runs the job, as an environment variable, "
    "and shown as *** in its output. The name must pass the worker's environment policy "
    "(PATH, LD_*, PYTHON*... are refused by default) or the run is declined."
)


class _Row:
    def __init__(self, name: str, stored: bool) -> None:
        self.stored = stored
        self.name = QLineEdit(name, placeholderText="API_TOKEN")
        self.name.setMinimumWidth(self.name.fontMetrics().horizontalAdvance("SMTP_PASSWORD"))
        self.name.setReadOnly(stored)
        self.value = QLineEdit()
        self.value.setEchoMode(QLineEdit.EchoMode.Password)
        self.value.setPlaceholderText("●●●●●●●● unchanged" if stored else "value")
        self.reveal = QToolButton()
        self.reveal.setText("Reveal")
        self.reveal.setEnabled(stored)
        self.reveal.setToolTip("Show the stored value (recorded in the audit trail)")
        self.remove = QToolButton()
        self.remove.setText("Remove")
        self.removed = False


class SecretsEditor(QGroupBox):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Secrets", parent)
        self.revealer: Revealer | None = None
        self.rows: list[_Row] = []
        self.reveal_task: asyncio.Task[None] | None = None
        self.grid = QGridLayout()
        self.grid.setContentsMargins(0, 0, 0, 0)
        # names are the long part (SMTP_PASSWORD); values are dots anyway
        self.grid.setColumnStretch(0, 3)
        self.grid.setColumnStretch(1, 2)
        self.add_button = QPushButton("Add secret")
        self.add_button.clicked.connect(lambda: self.add_row())
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        # one short line (the editor must fit a 1280x800 screen); the whole rule as tooltip
        note = QLabel(SHORT_NOTE)
        note.setWordWrap(True)
        note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        note.setToolTip(NOTE)
        self.setToolTip(NOTE)
        note.setStyleSheet("color: palette(placeholder-text);")
        layout = QVBoxLayout(self)
        layout.addLayout(self.grid)
        layout.addWidget(self.add_button)
        layout.addWidget(self.error)
        layout.addWidget(note)

    def load(self, names: Iterable[str]) -> None:
        for name in names:
            self.add_row(name, stored=True)

    def add_row(self, name: str = "", *, stored: bool = False) -> _Row:
        row = _Row(name, stored)
        i = len(self.rows)
        self.grid.addWidget(row.name, i, 0)
        self.grid.addWidget(row.value, i, 1)
        self.grid.addWidget(row.reveal, i, 2)
        self.grid.addWidget(row.remove, i, 3)
        row.name.textChanged.connect(self.changed)
        row.value.textChanged.connect(self.changed)
        row.remove.clicked.connect(lambda: self._remove(row))
        row.reveal.clicked.connect(lambda: self._reveal(row))
        self.rows.append(row)
        self.changed.emit()
        return row

    def _remove(self, row: _Row) -> None:
        row.removed = True
        for w in (row.name, row.value, row.reveal, row.remove):
            w.hide()
        self.changed.emit()

    def _reveal(self, row: _Row) -> None:
        if self.revealer is None:
            return
        self.reveal_task = spawn(self._fetch(self.revealer, row), "revealing a secret")

    async def _fetch(self, revealer: Revealer, row: _Row) -> None:
        try:
            value = await revealer(row.name.text())
        except Exception as exc:
            self.error.setText(f"Could not reveal {row.name.text()}: {exc}")
            self.error.show()
            return
        row.value.setText(value)
        row.value.setEchoMode(QLineEdit.EchoMode.Normal)
        row.value.setPlaceholderText("value")

    def live_rows(self) -> list[_Row]:
        return [r for r in self.rows if not r.removed]

    def problems(self) -> dict[str, str]:
        """secrets.NAME -> what is wrong (the same rules as the CLI and the store)."""
        errors: dict[str, str] = {}
        seen: set[str] = set()
        for row in self.live_rows():
            name, value = row.name.text().strip(), row.value.text()
            if not name and not value and not row.stored:
                continue  # an empty new row is ignored
            problem = check_name(name)
            if problem is None and name.upper() in seen:
                problem = f"{name} is used twice"
            if problem is None and (value or not row.stored):
                problem = check_value(value)
            if problem:
                errors[f"secrets.{name or '?'}"] = problem
            seen.add(name.upper())
        return errors

    def warnings(self) -> list[str]:
        return [w for w in (worker_warning(r.name.text().strip()) for r in self.live_rows()) if w]

    def show_problems(self) -> None:
        lines = list(self.problems().values()) + self.warnings()
        self.error.setText("\n".join(lines))
        self.error.setVisible(bool(lines))

    def changes(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for row in self.rows:
            name = row.name.text().strip()
            if row.removed:
                if row.stored:
                    out[name] = None
                continue
            if row.value.text() and name:
                out[name] = row.value.text()
        return out
