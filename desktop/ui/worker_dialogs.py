"""Adding a worker: ask for name, tags and slots; then show the token once, with a button that
saves a ready worker.ini for the new host."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.schedule_forms import error_label
from worker import private

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def worker_ini(server_url: str, name: str, token: str, tags: list[str], slots: int) -> str:
    """The worker.ini for a new host: the worker's own commented template (worker/config.py)
    with this worker's values filled in, so the admin edits nothing to connect."""
    values = {
        "server_url": server_url,
        "name": name,
        "token": token,
        "slots": str(slots),
        "tags": ", ".join(tags),
    }
    try:
        from worker.config import TEMPLATE

        text = TEMPLATE.format(url=server_url)
    except ImportError:  # the worker package is not shipped with this console build
        text = "[worker]\n"
    header = "; Written by the Job Trigger console. Keep it private: the token is a password.\n"
    for key, value in values.items():
        # the first "key =" line, commented out or not, inside the template
        pattern = re.compile(rf"^(?:;\s*)?{re.escape(key)}\s*=.*$", re.MULTILINE)
        line = f"{key} = {value}"
        text, found = pattern.subn(_literal(line), text, count=1)
        if not found:
            text = text.replace("[worker]\n", f"[worker]\n{line}\n", 1)
    return header + text


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that inserts `text` as it is (a string replacement would read any
    backslash in it as an escape)."""
    return lambda _match: text


def parse_tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class AddWorkerDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, taken: set[str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add worker")
        self.taken = taken or set()
        self.name = QLineEdit(placeholderText="e.g. fileserver-01")
        self.tags = QLineEdit(placeholderText="windows, backup")
        self.slots = QSpinBox(minimum=1, maximum=64, value=1)
        self.slots.setToolTip("How many runs this worker may run at the same time")
        self.name_error = error_label()
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("", self.name_error)
        form.addRow("Tags", self.tags)
        form.addRow("Parallel runs", self.slots)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.name.textChanged.connect(self._check)
        self._check()

    def problem(self) -> str:
        name = self.name.text().strip()
        if not name:
            return "is required: the worker's name as in its worker.ini"
        if not _NAME.match(name):
            return "use letters, digits, '.', '_' and '-' (starting with a letter or digit)"
        if name in self.taken:
            return "a worker with this name exists; revoke it first or pick another name"
        return ""

    def _check(self) -> None:
        problem = self.problem()
        self.name_error.setText(problem if self.name.text() else "")
        self.name_error.setVisible(bool(problem and self.name.text()))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def values(self) -> tuple[str, list[str], int]:
        return self.name.text().strip(), parse_tags(self.tags.text()), self.slots.value()


class TokenDialog(QDialog):
    """Shows a new worker's token once (it is stored only as a hash) and saves its worker.ini."""

    def __init__(
        self, parent: QWidget | None, server_url: str, name: str, token: str, tags, slots: int
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Worker {name} added")
        self.ini_text = worker_ini(server_url, name, token, list(tags), slots)
        self.saved_to: Path | None = None
        note = QLabel(
            f"<b>Copy this token now.</b> It is shown only once; Job Trigger keeps only a hash "
            f"of it. Save a ready <code>worker.ini</code> and put it next to the worker program "
            f"on <b>{name}</b>'s host."
        )
        note.setWordWrap(True)
        self.token = QLineEdit(token, readOnly=True)
        self.token.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.token.setMinimumWidth(460)
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(token))
        row = QHBoxLayout()
        row.addWidget(self.token, 1)
        row.addWidget(copy)
        self.status = QLabel()
        save = QPushButton("Save worker.ini…")
        save.clicked.connect(self._ask_path)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.accept)
        close.addButton(save, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(row)
        layout.addWidget(QLabel(f"Server URL: {server_url}"))
        layout.addWidget(self.status)
        layout.addWidget(close)

    def _ask_path(self) -> None:
        dialog = QFileDialog(self, "Save worker.ini", "worker.ini")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(lambda path: self.save(Path(path)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.open()

    def save(self, path: Path) -> None:
        try:
            private.write_private_text(path, self.ini_text)  # it holds the token
        except OSError as exc:
            self.status.setText(f"Could not write {path}: {exc.strerror}. Pick another folder.")
            return
        self.saved_to = path
        self.status.setText(f"Saved to {path}")


class EditWorkerDialog(QDialog):
    """A worker's tags and parallel runs, which only the console sets (a worker's hello never
    does): which jobs it may get and how many at once."""

    def __init__(self, parent: QWidget | None, name: str, tags, slots: int) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Worker {name}")
        self.tags = QLineEdit(", ".join(tags), placeholderText="windows, backup")
        self.tags.setToolTip(
            "Jobs that target a tag run only on workers the console gave that tag; the "
            "worker's own worker.ini cannot add tags"
        )
        self.slots = QSpinBox(minimum=1, maximum=1000, value=slots)
        self.slots.setToolTip("How many runs this worker may run at the same time")
        self.tags_error = error_label()
        form = QFormLayout()
        form.addRow("Name", QLabel(name))
        form.addRow("Tags", self.tags)
        form.addRow("", self.tags_error)
        form.addRow("Parallel runs", self.slots)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.tags.textChanged.connect(self._check)
        self._check()

    def problem(self) -> str:
        if any(len(t) > 100 for t in parse_tags(self.tags.text())):
            return "each tag is at most 100 characters"
        return ""

    def _check(self) -> None:
        problem = self.problem()
        self.tags_error.setText(problem)
        self.tags_error.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(not problem)

    def values(self) -> tuple[list[str], int]:
        return parse_tags(self.tags.text()), self.slots.value()
