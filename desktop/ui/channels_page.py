"""The Channels page in Settings: channels with their delivery counts and last error, add /
edit / remove, "Send test", the default rule for all jobs, and the recent notifications with
"Retry now".  Everything here is saved at once through Core (not on the dialog's OK)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core import notify as n
from desktop.ui.asyncqt import ask, spawn
from desktop.ui.formatting import format_time
from desktop.ui.notify_widgets import RulesTable
from desktop.ui.schedule_forms import error_label

CLEAR_NOTE = "Passwords and webhook keys are stored encrypted with the secrets key (Settings)."


class ChannelDialog(QDialog):
    """Add or edit one channel; OK stays disabled while a field is wrong (the reason shown)."""

    def __init__(self, parent: QWidget | None, kind: str = n.EMAIL, record=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Channel")
        self.name = QLineEdit(placeholderText="ops-mail")
        self.kind = QComboBox()
        self.kind.addItem("E-mail (SMTP)", n.EMAIL)
        self.kind.addItem("Webhook (HTTP POST, JSON)", n.WEBHOOK)
        self.host = QLineEdit(placeholderText="smtp.example.com")
        self.port = QSpinBox(minimum=0, maximum=65535)
        self.port.setSpecialValueText("default")
        self.security = QComboBox()
        for key, label in (("starttls", "STARTTLS"), ("tls", "TLS"), ("none", "none (LAN only)")):
            self.security.addItem(label, key)
        self.username = QLineEdit(placeholderText="optional")
        # not `sender`: that would hide QObject.sender()
        self.from_address = QLineEdit(placeholderText="jobs@example.com")
        self.to = QLineEdit(placeholderText="ops@example.com, oncall@example.com")
        self.url = QLineEdit(placeholderText="https://hooks.slack.com/services/...")
        self.preset = QComboBox()
        for key, label in (("plain", "Job Trigger JSON"), ("slack", "Slack"), ("teams", "Teams")):
            self.preset.addItem(label, key)
        self.secret = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("unchanged" if record and record.has_secret else "none")

        email = QWidget()
        f = QFormLayout(email)
        f.setContentsMargins(0, 0, 0, 0)
        f.addRow("Server", self.host)
        f.addRow("Port", self.port)
        f.addRow("Security", self.security)
        f.addRow("User", self.username)
        f.addRow("From", self.from_address)
        f.addRow("To", self.to)
        hook = QWidget()
        f = QFormLayout(hook)
        f.setContentsMargins(0, 0, 0, 0)
        f.addRow("URL", self.url)
        f.addRow("Format", self.preset)
        self.stack = QStackedWidget()
        self.stack.addWidget(email)
        self.stack.addWidget(hook)
        self.secret_label = QLabel()
        self.error = error_label()
        note = QLabel(CLEAR_NOTE)
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.stack)
        secret_form = QFormLayout()
        secret_form.addRow(self.secret_label, self.secret)
        layout.addLayout(secret_form)
        layout.addWidget(note)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        if record is not None:
            self.name.setText(record.name)
            self.name.setReadOnly(True)
            kind = record.kind
            cfg = record.config
            if kind == n.EMAIL:
                self.host.setText(cfg["host"])
                self.port.setValue(int(cfg["port"]))
                self.security.setCurrentIndex(self.security.findData(cfg["security"]))
                self.username.setText(cfg.get("username", ""))
                self.from_address.setText(cfg["sender"])
                self.to.setText(", ".join(cfg["to"]))
            else:
                self.url.setText(cfg["url"])
                self.preset.setCurrentIndex(self.preset.findData(cfg.get("preset", "plain")))
        self.kind.setCurrentIndex(self.kind.findData(kind))
        self.has_secret = bool(record and record.has_secret)
        for edit in (
            self.name,
            self.host,
            self.username,
            self.from_address,
            self.to,
            self.url,
            self.secret,
        ):
            edit.textChanged.connect(self.revalidate)
        for combo in (self.kind, self.security, self.preset):
            combo.currentIndexChanged.connect(self.revalidate)
        self.port.valueChanged.connect(self.revalidate)
        self.revalidate()

    def config(self) -> dict:
        if self.kind.currentData() == n.EMAIL:
            return {
                "host": self.host.text().strip(),
                "port": self.port.value() or None,
                "security": self.security.currentData(),
                "username": self.username.text().strip(),
                "sender": self.from_address.text().strip(),
                "to": self.to.text(),
            }
        return {"url": self.url.text().strip(), "preset": self.preset.currentData()}

    def secret_value(self) -> str | None:
        """None keeps the stored secret (the field left empty when one is stored)."""
        text = self.secret.text()
        return None if not text and self.has_secret else text

    def problem(self) -> str:
        if not self.name.text().strip():
            return "name: required"
        secret = self.secret_value()
        try:
            n.validate_channel(
                self.kind.currentData(), self.config(), "x" if secret is None else secret
            )
        except n.ChannelError as exc:
            return str(exc)
        return ""

    def revalidate(self) -> None:
        email = self.kind.currentData() == n.EMAIL
        self.stack.setCurrentIndex(0 if email else 1)
        self.secret_label.setText("Password" if email else "HMAC key")
        problem = self.problem()
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class ChannelsPage(QWidget):
    def __init__(self, core, display_tz: str = "UTC", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.display_tz = display_tz
        self.records: list = []
        self.channels = _table(["Name", "Where", "Messages", "Last error"])
        self.add_email = QPushButton("Add e-mail…")
        self.add_hook = QPushButton("Add webhook…")
        self.edit = QPushButton("Edit…")
        self.remove = QPushButton("Remove")
        self.test = QPushButton("Send test")
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        row = QHBoxLayout()
        for b in (self.add_email, self.add_hook, self.edit, self.remove, self.test):
            row.addWidget(b)
        row.addStretch(1)
        box = QGroupBox("Channels (saved at once)")
        v = QVBoxLayout(box)
        v.addWidget(self.channels, 1)
        v.addLayout(row)
        v.addWidget(self.test_result)

        self.default_rules = RulesTable()
        self.default_rules.setMinimumHeight(110)
        self.save_default = QPushButton("Save default rule")
        self.default_note = QLabel()
        drow = QHBoxLayout()
        drow.addWidget(self.save_default)
        drow.addWidget(self.default_note, 1)
        dbox = QGroupBox("Default rule: notify for every job (in addition to its own rules)")
        v = QVBoxLayout(dbox)
        v.addWidget(self.default_rules, 1)
        v.addLayout(drow)

        self.recent = _table(
            ["Run", "Job", "Channel", "Event", "State", "Tries", "When", "Last error"]
        )
        self.retry = QPushButton("Retry now")
        rrow = QHBoxLayout()
        rrow.addWidget(self.retry)
        rrow.addStretch(1)
        rbox = QGroupBox("Recent notifications")
        v = QVBoxLayout(rbox)
        v.addWidget(self.recent, 1)
        v.addLayout(rrow)

        layout = QVBoxLayout(self)
        layout.addWidget(box, 3)
        layout.addWidget(dbox, 2)
        layout.addWidget(rbox, 3)

        self.add_email.clicked.connect(lambda: spawn(self.add_channel(n.EMAIL), "adding a channel"))
        self.add_hook.clicked.connect(
            lambda: spawn(self.add_channel(n.WEBHOOK), "adding a channel")
        )
        self.edit.clicked.connect(lambda: spawn(self.edit_channel(), "editing a channel"))
        self.remove.clicked.connect(lambda: spawn(self.remove_channel(), "removing a channel"))
        self.test.clicked.connect(lambda: spawn(self.send_test(), "sending a test message"))
        self.save_default.clicked.connect(lambda: spawn(self.store_default(), "saving the rule"))
        self.retry.clicked.connect(lambda: spawn(self.retry_selected(), "retrying"))
        self.channels.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def selected(self):
        rows = self.channels.selectionModel().selectedRows()
        return self.records[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        for b in (self.edit, self.remove, self.test):
            b.setEnabled(chosen)

    async def refresh(self) -> None:
        self.records = await self.core.list_channels()
        status = await self.core.channel_status()
        recent = await self.core.notifications(None, 50)
        errors = {}
        for r in recent:
            if r.last_error and r.channel not in errors:
                errors[r.channel] = r.last_error
        self.channels.setRowCount(len(self.records))
        for i, ch in enumerate(self.records):
            counts = status.get(ch.name, {})
            text = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing sent yet"
            bad = counts.get("failing") or counts.get("failed")
            for col, value in enumerate(
                [ch.name, ch.description, text, errors.get(ch.name, "") if bad else ""]
            ):
                self.channels.setItem(i, col, QTableWidgetItem(value))
        self.default_rules.set_data([c.name for c in self.records], await self.core.rules(None))
        self.recent_records = recent
        self.recent.setRowCount(len(recent))
        for i, r in enumerate(recent):
            when = r.delivered_at if r.state == "delivered" else r.next_attempt_at
            values = [
                str(r.run_id),
                r.job_name,
                r.channel,
                r.event,
                r.shown_state,
                str(r.attempts),
                format_time(when, self.display_tz),
                r.last_error,
            ]
            for col, value in enumerate(values):
                self.recent.setItem(i, col, QTableWidgetItem(value))
        self._update_buttons()

    async def _edit(self, dlg: ChannelDialog) -> None:
        try:
            if not await ask(dlg):
                return
            await self.core.save_channel(
                dlg.name.text().strip(), dlg.kind.currentData(), dlg.config(), dlg.secret_value()
            )
        finally:
            dlg.deleteLater()
        await self.refresh()

    async def add_channel(self, kind: str) -> None:
        await self._edit(ChannelDialog(self, kind))

    async def edit_channel(self) -> None:
        record = self.selected()
        if record is not None:
            await self._edit(ChannelDialog(self, record.kind, record))

    async def remove_channel(self) -> None:
        record = self.selected()
        if record is not None:
            await self.core.remove_channel(record.name)
            await self.refresh()

    async def send_test(self) -> None:
        record = self.selected()
        if record is None:
            return
        self.test_result.setText(f"Sending a test message to {record.name}…")
        error = await self.core.send_test(record.name)
        self.test_result.setText(
            f"Test message to {record.name} failed: {error}"
            if error
            else f"Test message sent to {record.name}."
        )

    async def store_default(self) -> None:
        await self.core.set_rules(None, self.default_rules.rules())
        self.default_note.setText("Saved.")

    async def retry_selected(self) -> None:
        rows = self.recent.selectionModel().selectedRows()
        if rows:
            await self.core.retry_notification(self.recent_records[rows[0].row()].id)
            await self.refresh()
