"""Settings: display time zone, hub address and TLS, local worker, retention, notifications.

Values are checked with desktop.service.rules.check_setting (the rule the CLI and the store
use) as they are typed; OK stays disabled while one is wrong.  Hub and local-worker changes
apply at the next start, and the dialog says so.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.service.rules import SETTING_DEFAULTS, check_setting
from desktop.ui.fieldtext import zone_names
from desktop.ui.schedule_forms import error_label

# UI-only preferences stored next to the core's settings (unknown keys are allowed by the store)
NOTIFY_FAILURES = "ui.notify_failures"
NOTIFY_OFFLINE = "ui.notify_offline"
TRAY_EXPLAINED = "ui.tray_explained"
TLS_CERT = "hub_tls_cert"
TLS_KEY = "hub_tls_key"

UI_DEFAULTS = {NOTIFY_FAILURES: "1", NOTIFY_OFFLINE: "1", TLS_CERT: "", TLS_KEY: ""}

RESTART_KEYS = ("hub_host", "hub_port", TLS_CERT, TLS_KEY, "local_worker")


def _value(values: dict[str, str], key: str) -> str:
    return values.get(key, SETTING_DEFAULTS.get(key, UI_DEFAULTS.get(key, "")))


class SettingsDialog(QDialog):
    def __init__(
        self,
        parent: QWidget | None,
        values: dict[str, str],
        key_place: str = "",
        channels: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = dict(values)
        self._errors: dict[str, QLabel] = {}

        self.display_tz = QLineEdit(_value(values, "display_tz"))
        completer = QCompleter(zone_names(), self.display_tz)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.display_tz.setCompleter(completer)
        self.hub_host = QLineEdit(_value(values, "hub_host"))
        self.hub_host.setToolTip("127.0.0.1 = this machine only; 0.0.0.0 = every network")
        self.hub_port = QSpinBox(minimum=0, maximum=65535)
        self.hub_port.setValue(int(_value(values, "hub_port") or 8000))
        self.tls_cert = QLineEdit(values.get(TLS_CERT, ""), placeholderText="none: plain ws://")
        self.tls_key = QLineEdit(values.get(TLS_KEY, ""), placeholderText="key file (PEM)")
        self.local_worker = QCheckBox("Run a worker on this machine")
        self.local_worker.setChecked(_value(values, "local_worker") == "1")
        self.retention_days = QSpinBox(minimum=0, maximum=36500)
        self.retention_days.setSpecialValueText("keep forever")
        self.retention_days.setSuffix(" days")
        self.retention_days.setValue(int(_value(values, "retention_days") or 0))
        self.retention_runs = QSpinBox(minimum=0, maximum=100_000_000)
        self.retention_runs.setSpecialValueText("no limit")
        self.retention_runs.setSuffix(" runs per job")
        self.retention_runs.setValue(int(_value(values, "retention_runs_per_job") or 0))
        self.audit_days = QSpinBox(minimum=0, maximum=36500)
        self.audit_days.setSpecialValueText("keep forever")
        self.audit_days.setSuffix(" days")
        self.audit_days.setValue(int(_value(values, "audit_retention_days") or 0))
        # where the secrets key is kept (keyring or key file): shown, chosen by the platform
        self.key_place = QLabel(key_place or "not known")
        self.key_place.setWordWrap(True)
        self.key_place.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.key_place.setToolTip(
            "Job secrets are encrypted with this key. Losing it loses the secrets, never the "
            "jobs. `secrets key` and `secrets rotate-key` on the command line."
        )
        self.notify_failures = QCheckBox("When a run fails, times out or is lost")
        self.notify_failures.setChecked(values.get(NOTIFY_FAILURES, "1") == "1")
        self.notify_offline = QCheckBox("When a worker goes offline")
        self.notify_offline.setChecked(values.get(NOTIFY_OFFLINE, "1") == "1")

        display = QGroupBox("Display")
        f = QFormLayout(display)
        self._row(f, "Time zone", "display_tz", self.display_tz)
        hub = QGroupBox("Hub (applies at next start)")
        f = QFormLayout(hub)
        self._row(f, "Listen on", "hub_host", self.hub_host)
        self._row(f, "Port", "hub_port", self.hub_port)
        self._row(f, "TLS certificate", TLS_CERT, self.tls_cert)
        self._row(f, "TLS key", TLS_KEY, self.tls_key)
        f.addRow("", self.local_worker)
        keep = QGroupBox("History")
        f = QFormLayout(keep)
        self._row(f, "Keep runs for", "retention_days", self.retention_days)
        self._row(f, "And at most", "retention_runs_per_job", self.retention_runs)
        self._row(f, "Keep audit for", "audit_retention_days", self.audit_days)
        f.addRow("Secrets key", self.key_place)
        notify = QGroupBox("Tray notifications (e-mail and webhooks: the Channels tab)")
        f = QFormLayout(notify)
        f.addRow(self.notify_failures)
        f.addRow(self.notify_offline)

        self.note = QLabel()
        self.note.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        general = QWidget()
        glayout = QVBoxLayout(general)
        glayout.setContentsMargins(0, 0, 0, 0)
        for box in (display, hub, keep, notify):
            glayout.addWidget(box)
        glayout.addWidget(self.note)
        # the Channels page (e-mail, webhooks) when the window passes one: a tab of its own
        self.channels_page = channels
        self.tabs: QTabWidget | None = None
        if channels is None:
            layout.addWidget(general)
        else:
            self.tabs = QTabWidget()
            self.tabs.addTab(general, "General")
            self.tabs.addTab(channels, "Channels")
            layout.addWidget(self.tabs)
        layout.addWidget(self.buttons)

        for edit in (self.display_tz, self.hub_host, self.tls_cert, self.tls_key):
            edit.textChanged.connect(self.revalidate)
        for spin in (self.hub_port, self.retention_days, self.retention_runs, self.audit_days):
            spin.valueChanged.connect(self.revalidate)
        self.local_worker.toggled.connect(self.revalidate)
        self.revalidate()

    def _row(self, form: QFormLayout, label: str, key: str, widget: QWidget) -> None:
        err = error_label()
        self._errors[key] = err
        form.addRow(label, widget)
        form.addRow("", err)

    def values(self) -> dict[str, str]:
        return {
            "display_tz": self.display_tz.text().strip(),
            "hub_host": self.hub_host.text().strip(),
            "hub_port": str(self.hub_port.value()),
            TLS_CERT: self.tls_cert.text().strip(),
            TLS_KEY: self.tls_key.text().strip(),
            "local_worker": "1" if self.local_worker.isChecked() else "0",
            "retention_days": str(self.retention_days.value()),
            "retention_runs_per_job": str(self.retention_runs.value()),
            "audit_retention_days": str(self.audit_days.value()),
            NOTIFY_FAILURES: "1" if self.notify_failures.isChecked() else "0",
            NOTIFY_OFFLINE: "1" if self.notify_offline.isChecked() else "0",
        }

    def changes(self) -> dict[str, str]:
        return {k: v for k, v in self.values().items() if v != _value(self.original, k)}

    def problems(self) -> dict[str, str]:
        values = self.values()
        out = {k: p for k, v in values.items() if (p := check_setting(k, v))}
        for key in (TLS_CERT, TLS_KEY):
            if values[key] and not Path(values[key]).expanduser().is_file():
                out[key] = f"{values[key]} is not a file here; give the full path of the PEM file"
        if bool(values[TLS_CERT]) != bool(values[TLS_KEY]):
            out[TLS_KEY if values[TLS_CERT] else TLS_CERT] = (
                "TLS needs both a certificate and its key file"
            )
        return out

    def revalidate(self) -> None:
        problems = self.problems()
        for key, label in self._errors.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problems)
        restart = [k for k in self.changes() if k in RESTART_KEYS]
        self.note.setText(
            "Restart Job Trigger for the hub and local worker changes to take effect."
            if restart
            else ""
        )
