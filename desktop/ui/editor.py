"""The job editor: schedule (a form per kind), time zone, script, arguments, environment, target
and policies.  It validates on every change with the same checks the store applies
(desktop.service.rules.normalize_job_spec, which uses desktop.core.schedules.validate), shows
each message next to its field, keeps Save disabled while anything is wrong, and previews the
next 10 fire times in the display zone and the job's zone.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core import schedules
from desktop.core.timeutil import utcnow
from desktop.service.rules import ValidationError, normalize_job_spec
from desktop.ui.asyncqt import spawn
from desktop.ui.fieldtext import format_env, parse_args, parse_env, zone_names
from desktop.ui.formatting import DEFAULT_DISPLAY_TZ, format_time
from desktop.ui.schedule_forms import FORMS, KIND_LABELS, KindForm, error_label
from desktop.ui.secrets_editor import SecretsEditor

PREVIEW_COUNT = 10
TARGET_KINDS = (("any", "Any worker"), ("worker", "A named worker"), ("tag", "Workers with tag"))
MISFIRE = (
    ("run_once", "Run once (the latest missed)"),
    ("skip", "Skip missed runs"),
    ("run_all", "Run each missed, up to the cap"),
)
CONCURRENCY = (
    ("skip", "Skip if still running"),
    ("queue", "Queue after the running one"),
    ("allow", "Allow overlapping runs"),
)

Saver = Callable[[dict[str, Any]], Awaitable[Any]]
# (job id, {name: value or None}) -> warnings; the job is saved first, then its secrets
SecretsSaver = Callable[[int, dict[str, Any]], Awaitable[list[str]]]


def _combo(items: Iterable[tuple[str, str]]) -> QComboBox:
    combo = QComboBox()
    for key, label in items:
        combo.addItem(label, key)
    # sized for a short label, not the longest item (the popup still shows them whole), so the
    # editor fits a 1280x800 screen
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(16)
    return combo


def _set_combo(combo: QComboBox, key: Any) -> None:
    i = combo.findData(key)
    if i >= 0:
        combo.setCurrentIndex(i)


def _item_text(item: QTableWidgetItem | None) -> str:
    return "" if item is None else item.text()


def _optional_spin(maximum: int, suffix: str, none_text: str) -> QSpinBox:
    """A spin box where 0 reads as 'none' (no timeout, wait forever)."""
    spin = QSpinBox(minimum=0, maximum=maximum)
    spin.setSuffix(suffix)
    spin.setSpecialValueText(none_text)
    return spin


class JobEditorDialog(QDialog):
    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        display_tz: str = DEFAULT_DISPLAY_TZ,
        scripts: Iterable[str] = (),
        workers: Iterable[str] = (),
        tags: Iterable[str] = (),
        taken_names: Iterable[str] = (),
        saver: Saver | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New job")
        self.display_tz = display_tz
        self.taken_names = set(taken_names)
        self.saver = saver
        self.secrets_saver: SecretsSaver | None = None
        self.now = now
        self.result_record: Any = None
        self.job_id: int | None = None
        self.errors: dict[str, str] = {}
        self._workers = sorted(workers)
        self._tags = sorted(tags)
        self._field_errors: dict[str, QLabel] = {}
        # A new job's empty name is not an error the person made: no red "is required" until
        # they have typed in the field or left it (Save stays disabled meanwhile).
        self._quiet: set[str] = {"name"}
        self._reserved: set[QLabel] = set()
        self._saving = False
        self.save_task: asyncio.Task[None] | None = None

        # --- general
        self.name = QLineEdit(placeholderText="nightly-backup")
        self.description = QLineEdit(placeholderText="optional: what it does, who to call")
        self.enabled = QCheckBox("Enabled (runs on its schedule)")
        self.enabled.setChecked(True)
        general = QGroupBox("Job")
        gform = QFormLayout(general)
        self._row(gform, "Name", "name", self.name, reserve=True)
        self._row(gform, "Description", "description", self.description)
        gform.addRow("", self.enabled)

        # --- schedule
        self.kind = QComboBox()
        self.stack = QStackedWidget()
        self.forms: dict[str, KindForm] = {}
        for cls in FORMS:
            form = cls()
            self.forms[cls.kind] = form
            self.kind.addItem(KIND_LABELS[cls.kind], cls.kind)
            self.stack.addWidget(form)
            form.changed.connect(self.revalidate)
        self.tz = QLineEdit(display_tz)
        completer = QCompleter(zone_names(), self.tz)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.tz.setCompleter(completer)
        self.tz.setToolTip("IANA time zone the schedule is read in; type to search (e.g. 'york')")
        self.schedule_error = error_label()
        sched = QGroupBox("Schedule")
        sform = QFormLayout(sched)
        sform.addRow("Kind", self.kind)
        self._row(sform, "Time zone", "time_zone", self.tz, reserve=True)
        sform.addRow(self.stack)
        sform.addRow(self.schedule_error)

        # --- what and where
        self.script = QComboBox(editable=True)
        self.script.addItems(sorted(scripts))
        self.script.setToolTip("A script from the workers' allow-listed scripts folder")
        self.args = QLineEdit(placeholderText='e.g. --full "C:\\backup target"')
        self.args.setToolTip("Arguments as words; quote a word with spaces. No shell is used.")
        self.env = QPlainTextEdit(placeholderText="NAME=value, one per line")
        self.env.setFixedHeight(60)
        self.target_kind = _combo(TARGET_KINDS)
        self.target_value = QComboBox(editable=True)
        target_row = QWidget()
        box = QHBoxLayout(target_row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.target_kind)
        box.addWidget(self.target_value, 1)
        what = QGroupBox("What and where")
        wform = QFormLayout(what)
        self._row(wform, "Script", "script", self.script)
        self._row(wform, "Arguments", "args", self.args)
        self._row(wform, "Environment", "env", self.env)
        self._row(wform, "Run on", "target_value", target_row)
        self._field_errors["target_kind"] = self._field_errors["target_value"]
        self.secrets = SecretsEditor()
        self.secrets.changed.connect(self.revalidate)

        # --- policies
        self.misfire = _combo(MISFIRE)
        self.misfire_cap = QSpinBox(minimum=1, maximum=10_000, value=10)
        self.misfire_cap.setSuffix(" runs at most")
        self.misfire_cap.setToolTip("How many missed times are run at most when catching up")
        self.concurrency = _combo(CONCURRENCY)
        self.timeout = _optional_spin(30 * 86400, " s", "no timeout")
        self.retries = QSpinBox(minimum=0, maximum=100)
        self.retry_delay = QSpinBox(minimum=0, maximum=7 * 86400, value=60)
        self.retry_delay.setSuffix(" s")
        self.retry_backoff = QDoubleSpinBox(minimum=1.0, maximum=10.0, value=2.0, singleStep=0.5)
        self.retry_backoff.setPrefix("× ")
        self.retry_max_delay = QSpinBox(minimum=0, maximum=30 * 86400, value=3600)
        self.retry_max_delay.setSuffix(" s max")
        # two short rows, not one wide one: the dialog must fit a 1280x800 screen
        retry_row = QWidget()
        box = QHBoxLayout(retry_row)
        box.setContentsMargins(0, 0, 0, 0)
        for part in (self.retries, QLabel("after"), self.retry_delay):
            box.addWidget(part)
        backoff_row = QWidget()
        box = QHBoxLayout(backoff_row)
        box.setContentsMargins(0, 0, 0, 0)
        for spin in (self.retry_backoff, self.retry_max_delay):
            box.addWidget(spin)
        self.queue_timeout = _optional_spin(30 * 86400, " s", "wait for a worker forever")
        policies = QGroupBox("Policies")
        pform = QFormLayout(policies)
        pform.addRow("Missed runs", self.misfire)
        self._row(pform, "Catch up", "misfire_policy", self.misfire_cap)
        self._field_errors["misfire_cap"] = self._field_errors["misfire_policy"]
        self._row(pform, "If still running", "concurrency", self.concurrency)
        self._row(pform, "Timeout", "timeout_seconds", self.timeout)
        pform.addRow("Retries", retry_row)
        self._row(pform, "Backoff", "max_retries", backoff_row)
        for key in ("retry_delay_seconds", "retry_backoff", "retry_max_delay_seconds"):
            self._field_errors[key] = self._field_errors["max_retries"]
        self._row(pform, "Queue timeout", "queue_timeout_seconds", self.queue_timeout)

        # --- preview
        self.preview = QTableWidget(0, 2)
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.preview.verticalHeader().setVisible(False)
        self.preview.horizontalHeader().setStretchLastSection(True)
        self.preview.setMinimumWidth(330)
        self.preview_note = QLabel()
        self.preview_note.setWordWrap(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("font-weight: bold;")
        preview = QGroupBox(f"Next {PREVIEW_COUNT} runs")
        pbox = QVBoxLayout(preview)
        pbox.addWidget(self.summary)
        pbox.addWidget(self.preview, 1)
        pbox.addWidget(self.preview_note)

        self.general_error = error_label()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self._on_save)
        self.buttons.rejected.connect(self.reject)

        left = QVBoxLayout()
        left.addWidget(general)
        left.addWidget(sched)
        left.addStretch(1)
        middle = QVBoxLayout()
        middle.addWidget(what)
        middle.addWidget(self.secrets)
        middle.addWidget(policies)
        middle.addStretch(1)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(middle, 1)
        columns.addWidget(preview, 1)
        from desktop.ui.notify_widgets import LinksTab

        page = QWidget()
        page.setLayout(columns)
        columns.setContentsMargins(0, 0, 0, 0)
        self.links_tab = LinksTab()
        self.tabs = QTabWidget()
        self.tabs.addTab(page, "Job")
        self.tabs.addTab(self.links_tab, "Notifications and chains")
        self._field_errors["chains"] = self.links_tab.error
        outer = QVBoxLayout(self)
        outer.addWidget(self.tabs, 1)
        outer.addWidget(self.general_error)
        outer.addWidget(self.buttons)

        # --- wiring
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.target_kind.currentIndexChanged.connect(self._target_changed)
        for edit in (self.name, self.description, self.tz, self.args):
            edit.textChanged.connect(self.revalidate)
        self.env.textChanged.connect(self.revalidate)
        self.name.textEdited.connect(lambda _text: self._speak("name"))
        self.name.editingFinished.connect(lambda: self._speak("name"))
        self.enabled.toggled.connect(self.revalidate)
        self.script.editTextChanged.connect(self.revalidate)
        self.target_value.editTextChanged.connect(self.revalidate)
        for combo in (self.misfire, self.concurrency):
            combo.currentIndexChanged.connect(self.revalidate)
        for spin in (
            self.misfire_cap,
            self.timeout,
            self.retries,
            self.retry_delay,
            self.retry_max_delay,
            self.queue_timeout,
        ):
            spin.valueChanged.connect(self.revalidate)
        self.retry_backoff.valueChanged.connect(self.revalidate)
        self.links_tab.changed.connect(self.revalidate)
        # the default daily 09:00 is a better first guess than interval for a new job
        _set_combo(self.kind, "daily")
        self._target_changed()
        self.revalidate()

    def _row(
        self, form: QFormLayout, label: str, field: str, widget: QWidget, reserve: bool = False
    ) -> None:
        """`reserve`: the error line keeps its height while hidden, for fields whose message
        comes and goes while typing, so the fields below do not move under the mouse."""
        err = error_label()
        if reserve:
            # always shown (empty when fine), with room for the longest message wrapped once
            err.setFixedHeight(2 * err.fontMetrics().lineSpacing())
            err.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            err.show()
            self._reserved.add(err)
        self._field_errors[field] = err
        form.addRow(label, widget)
        form.addRow("", err)

    # --- spec <-> widgets
    def current_form(self) -> KindForm:
        return self.forms[self.kind.currentData()]

    def schedule(self) -> dict[str, Any]:
        form = self.current_form()
        return {
            "v": schedules.SCHEDULE_VERSION,
            "kind": form.kind,
            "tz": self.tz.text().strip(),
            **form.values(),
        }

    def spec(self) -> dict[str, Any]:
        args, _ = parse_args(self.args.text())
        env, _ = parse_env(self.env.toPlainText())
        target = self.target_kind.currentData()
        return {
            "name": self.name.text(),
            "description": self.description.text(),
            "script": self.script.currentText().strip(),
            "args": args,
            "env": env,
            "target_kind": target,
            "target_value": "" if target == "any" else self.target_value.currentText().strip(),
            "schedule": self.schedule(),
            "time_zone": self.tz.text().strip(),
            "enabled": self.enabled.isChecked(),
            "misfire_policy": self.misfire.currentData(),
            "misfire_cap": self.misfire_cap.value(),
            "concurrency": self.concurrency.currentData(),
            "timeout_seconds": self.timeout.value() or None,
            "max_retries": self.retries.value(),
            "retry_delay_seconds": self.retry_delay.value(),
            "retry_backoff": self.retry_backoff.value(),
            "retry_max_delay_seconds": self.retry_max_delay.value(),
            "queue_timeout_seconds": self.queue_timeout.value() or None,
        }

    def load(self, spec: dict[str, Any], job_id: int | None = None, *, copy=False) -> None:
        """Fill the dialog from a job spec (JobRecord.to_spec()); copy=True for Duplicate."""
        self.job_id = None if copy else job_id
        self.setWindowTitle("Duplicate job" if copy else ("Edit job" if job_id else "New job"))
        name = spec.get("name", "")
        self._quiet.clear()
        if copy:
            name = self._copy_name(name)
        else:
            self.taken_names.discard(name)
        schedule = dict(spec.get("schedule") or {"kind": "manual"})
        self.name.setText(name)
        self.description.setText(spec.get("description", ""))
        self.enabled.setChecked(bool(spec.get("enabled", True)))
        self.tz.setText(spec.get("time_zone") or schedule.get("tz") or self.display_tz)
        _set_combo(self.kind, schedule.get("kind", "manual"))
        self.current_form().load(schedule)
        script = spec.get("script", "")
        if self.script.findText(script) < 0 and script:
            self.script.addItem(script)
        self.script.setCurrentText(script)
        self.args.setText(shlex.join(spec.get("args") or []))
        self.env.setPlainText(format_env(spec.get("env") or {}))
        _set_combo(self.target_kind, spec.get("target_kind", "any"))
        self._target_changed()
        self.target_value.setCurrentText(spec.get("target_value", ""))
        _set_combo(self.misfire, spec.get("misfire_policy", "run_once"))
        self.misfire_cap.setValue(int(spec.get("misfire_cap", 10)))
        _set_combo(self.concurrency, spec.get("concurrency", "skip"))
        self.timeout.setValue(int(spec.get("timeout_seconds") or 0))
        self.retries.setValue(int(spec.get("max_retries", 0)))
        self.retry_delay.setValue(int(spec.get("retry_delay_seconds", 60)))
        self.retry_backoff.setValue(float(spec.get("retry_backoff", 2.0)))
        self.retry_max_delay.setValue(int(spec.get("retry_max_delay_seconds", 3600)))
        self.queue_timeout.setValue(int(spec.get("queue_timeout_seconds") or 0))
        self.revalidate()

    def _copy_name(self, name: str) -> str:
        n = 2
        candidate = f"{name} (copy)"
        while candidate in self.taken_names:
            candidate = f"{name} (copy {n})"
            n += 1
        return candidate

    # --- validation
    def validate(self) -> dict[str, str]:
        """Every problem with the current input, keyed like the store's ValidationError."""
        errors: dict[str, str] = {}
        _, args_problem = parse_args(self.args.text())
        _, env_problem = parse_env(self.env.toPlainText())
        spec = self.spec()
        try:
            normalize_job_spec(spec, default_tz=self.display_tz)
        except ValidationError as exc:
            errors.update(exc.errors)
        errors.update(self.secrets.problems())
        if args_problem:
            errors["args"] = args_problem
        if env_problem:
            errors["env"] = env_problem
        if spec["name"].strip() in self.taken_names and "name" not in errors:
            errors["name"] = "another job already has this name"
        if self.links_tab.loaded and (problem := self.links_tab.chains.problems(spec["name"])):
            errors["chains"] = problem
        return errors

    def _speak(self, field: str) -> None:
        if field in self._quiet:
            self._quiet.discard(field)
            self.revalidate()

    def revalidate(self) -> None:
        self.errors = self.validate()
        self.secrets.show_problems()  # the secrets section shows its own
        own = set(self.secrets.problems())
        self._show_errors(
            {k: v for k, v in self.errors.items() if k not in self._quiet and k not in own}
        )
        self.save_button.setEnabled(not self.errors and not self._saving)
        self.save_button.setToolTip(
            "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(self.errors.items()))
        )
        self._update_preview()

    def _show_errors(self, errors: dict[str, str]) -> None:
        sched_errors = {}
        rest = {}
        for key, msg in errors.items():
            if key.startswith("schedule."):
                sched_errors[key.split(".", 1)[1]] = msg
            elif key == "schedule":
                sched_errors["schedule"] = msg
            else:
                rest[key] = msg
        if "tz" in sched_errors and "time_zone" not in rest:
            rest["time_zone"] = sched_errors.pop("tz")
        leftover_sched = self.current_form().show_errors(sched_errors)
        text = "; ".join(
            f"{k}: {sched_errors[k]}" if k != "schedule" else sched_errors[k]
            for k in leftover_sched
            if k != "tz"
        )
        self.schedule_error.setText(text)
        self.schedule_error.setVisible(bool(text))
        shown: dict[QLabel, list[str]] = {label: [] for label in self._field_errors.values()}
        general = []
        for key, msg in rest.items():
            label = self._field_errors.get(key)
            if label is None:
                general.append(f"{key}: {msg}")
            else:
                shown[label].append(msg)
        for label, messages in shown.items():
            label.setText("; ".join(messages))
            label.setVisible(bool(messages) or label in self._reserved)
        self.general_error.setText("\n".join(general))
        self.general_error.setVisible(bool(general))

    def error_text(self, field: str) -> str:
        """The message shown next to `field` ('' when none is shown), as a person reads it."""
        label = self._field_errors.get(field)
        if label is None:
            label = self.current_form().errors.get(field, self.schedule_error)
        return label.text() if label.isVisibleTo(self) else ""

    # --- preview
    def _update_preview(self) -> None:
        schedule_data = self.schedule()
        self.preview.setRowCount(0)
        job_tz = schedule_data.get("tz") or "UTC"
        self.preview.setHorizontalHeaderLabels([f"{self.display_tz} (display)", job_tz])
        if schedules.validate(schedule_data):
            self.summary.setText("")
            self.preview_note.setText("Fix the schedule to see when it fires.")
            return
        sched = schedules.parse(schedule_data)
        self.summary.setText(sched.describe())
        times = sched.next_n(self.now(), PREVIEW_COUNT)
        self.preview.setRowCount(len(times))
        for row, t in enumerate(times):
            self.preview.setItem(row, 0, QTableWidgetItem(format_time(t, self.display_tz)))
            self.preview.setItem(row, 1, QTableWidgetItem(format_time(t, job_tz)))
        if not times:
            self.preview_note.setText(
                "Never fires on its own: start it with Run now."
                if sched.kind == "manual"
                else "Does not fire again (the time is in the past)."
            )
        else:
            self.preview_note.setText("")
        self.preview.resizeColumnsToContents()

    def preview_rows(self) -> list[tuple[str, str]]:
        return [
            (_item_text(self.preview.item(r, 0)), _item_text(self.preview.item(r, 1)))
            for r in range(self.preview.rowCount())
        ]

    # --- reactions
    def _kind_changed(self) -> None:
        self.stack.setCurrentWidget(self.current_form())
        self.revalidate()

    def _target_changed(self) -> None:
        kind = self.target_kind.currentData()
        current = self.target_value.currentText()
        self.target_value.blockSignals(True)
        self.target_value.clear()
        self.target_value.addItems(self._workers if kind == "worker" else self._tags)
        self.target_value.setCurrentText(current)
        self.target_value.blockSignals(False)
        self.target_value.setEnabled(kind != "any")
        edit = self.target_value.lineEdit()
        if edit is not None:  # the combo is editable: it has one
            edit.setPlaceholderText({"worker": "worker name", "tag": "tag", "any": ""}[kind])
        self.revalidate()

    def _on_save(self) -> None:
        if self.errors or self._saving:
            return
        if self.saver is None:
            self.accept()
            return
        self._saving = True
        self.save_button.setEnabled(False)
        self.save_task = spawn(self._save(self.saver, self.spec()), "saving the job")

    async def _save(self, saver: Saver, spec: dict[str, Any]) -> None:
        try:
            self.result_record = await saver(spec)
            changes = self.secrets.changes()
            if changes and self.secrets_saver is not None:
                # saved: a second Save after a secrets error updates this job, never a new one
                self.job_id = self.result_record.id
                await self.secrets_saver(self.result_record.id, changes)
        except ValidationError as exc:
            # the store knows things the dialog cannot (a name taken a moment ago)
            self._saving = False
            self._show_errors(exc.errors)
            return
        except Exception as exc:
            self._saving = False
            self.general_error.setText(f"Could not save: {exc}")
            self.general_error.show()
            self.save_button.setEnabled(not self.errors)
            return
        self._saving = False
        QTimer.singleShot(0, self.accept)
