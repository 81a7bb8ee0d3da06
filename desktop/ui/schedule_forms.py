"""One small form per schedule kind.  Each turns its widgets into the schedule dict that
desktop.core.schedules understands (without the common v/kind/tz keys) and back, and has a place
to show the message for each of its fields."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QDateTime, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NTHS = ("first", "second", "third", "fourth", "last")
UNITS = ("seconds", "minutes", "hours", "days")
EPOCH_TEXT = "1970-01-01T00:00:00Z"
ERROR_STYLE = "color: #d64541;"


def error_label() -> QLabel:
    label = QLabel()
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def split_list(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", text.strip()) if t]


def month_day(token: str) -> Any:
    # numbers become ints; anything else ("last", typos) goes on as text for the validator to name
    return int(token) if token.isdigit() else token.lower()


class KindForm(QWidget):
    changed = Signal()
    kind = ""
    FIELDS: tuple[str, ...] = ()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.errors: dict[str, QLabel] = {}

    def add_row(self, label: str, field: str, widget: QWidget) -> None:
        err = error_label()
        self.errors[field] = err
        holder = QWidget()
        box = QHBoxLayout(holder)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(widget, 1)
        self.form.addRow(label, holder)
        self.form.addRow("", err)

    def values(self) -> dict[str, Any]:
        raise NotImplementedError

    def load(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def show_errors(self, errors: dict[str, str]) -> list[str]:
        """Show the messages for this form's fields; returns the keys it could not place."""
        for field, label in self.errors.items():
            message = errors.get(field, "")
            label.setText(message)
            label.setVisible(bool(message))
        return [k for k in errors if k not in self.errors]

    def _watch(self, *widgets: QWidget) -> None:
        for w in widgets:
            if isinstance(w, QLineEdit):
                w.textChanged.connect(self.changed)
            elif isinstance(w, QSpinBox):
                w.valueChanged.connect(self.changed)
            elif isinstance(w, QComboBox):
                w.currentIndexChanged.connect(self.changed)
                if w.isEditable():
                    w.editTextChanged.connect(self.changed)
            elif isinstance(w, (QCheckBox, QRadioButton)):
                w.toggled.connect(self.changed)
            elif isinstance(w, QDateTimeEdit):
                w.dateTimeChanged.connect(self.changed)


def _times_edit() -> QLineEdit:
    edit = QLineEdit(placeholderText="09:30, 17:00")
    edit.setToolTip("One or more times of day (HH:MM or HH:MM:SS), separated by commas")
    return edit


class IntervalForm(KindForm):
    kind = "interval"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.every = QSpinBox(minimum=1, maximum=10**9, value=5)
        self.unit = QComboBox()
        self.unit.addItems(UNITS)
        self.unit.setCurrentText("minutes")
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.every)
        box.addWidget(self.unit, 1)
        self.start = QLineEdit(placeholderText="optional: 2026-01-01T00:00:00Z")
        self.start.setToolTip(
            "The instant (UTC) the intervals count from; empty = aligned to the clock "
            "(every 5 minutes fires at :00, :05, …). Elapsed time: DST does not shift it."
        )
        self.add_row("Every", "every", row)
        self.errors["unit"] = self.errors["every"]  # one line for the pair
        self.add_row("Counting from", "start", self.start)
        self._watch(self.every, self.unit, self.start)

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {"every": self.every.value(), "unit": self.unit.currentText()}
        if self.start.text().strip():
            out["start"] = self.start.text().strip()
        return out

    def load(self, data: dict[str, Any]) -> None:
        self.every.setValue(int(data.get("every", 5)))
        self.unit.setCurrentText(data.get("unit", "minutes"))
        start = data.get("start") or ""
        self.start.setText("" if start == EPOCH_TEXT else start)

    def show_errors(self, errors: dict[str, str]) -> list[str]:
        merged = dict(errors)
        if "unit" in merged:
            merged["every"] = "; ".join(filter(None, [merged.get("every"), merged.pop("unit")]))
        return super().show_errors(merged)


class HourlyForm(KindForm):
    kind = "hourly"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.minute = QSpinBox(minimum=0, maximum=59)
        self.minute.setSuffix(" min past the hour")
        # not `window`: that would hide QWidget.window()
        self.between = QCheckBox("Only between")
        self.from_hour = QSpinBox(minimum=0, maximum=23, value=8)
        self.to_hour = QSpinBox(minimum=0, maximum=23, value=18)
        for spin in (self.from_hour, self.to_hour):
            spin.setSuffix(":00")
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.between)
        box.addWidget(self.from_hour)
        box.addWidget(QLabel("and"))
        box.addWidget(self.to_hour)
        box.addStretch(1)
        self.between.toggled.connect(self._sync)
        self.add_row("At", "minute", self.minute)
        self.add_row("Hours", "hours", row)
        self._watch(self.minute, self.between, self.from_hour, self.to_hour)
        self._sync()

    def _sync(self) -> None:
        self.from_hour.setEnabled(self.between.isChecked())
        self.to_hour.setEnabled(self.between.isChecked())

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {"minute": self.minute.value()}
        if self.between.isChecked():
            out["hours"] = [self.from_hour.value(), self.to_hour.value()]
        return out

    def load(self, data: dict[str, Any]) -> None:
        self.minute.setValue(int(data.get("minute", 0)))
        hours = data.get("hours")
        self.between.setChecked(bool(hours))
        if hours:
            self.from_hour.setValue(int(hours[0]))
            self.to_hour.setValue(int(hours[1]))


class DailyForm(KindForm):
    kind = "daily"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.times = _times_edit()
        self.times.setText("09:00")
        self.add_row("At", "times", self.times)
        self._watch(self.times)

    def values(self) -> dict[str, Any]:
        return {"times": split_list(self.times.text())}

    def load(self, data: dict[str, Any]) -> None:
        self.times.setText(", ".join(data.get("times", [])))


class WeeklyForm(KindForm):
    kind = "weekly"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        self.days: dict[str, QCheckBox] = {}
        for key, name in zip(WEEKDAYS, WEEKDAY_NAMES):
            cb = QCheckBox(name[:3])
            cb.setToolTip(name)
            cb.setChecked(key not in ("sat", "sun"))
            self.days[key] = cb
            box.addWidget(cb)
        box.addStretch(1)
        self.times = _times_edit()
        self.times.setText("09:00")
        self.add_row("On", "days", row)
        self.add_row("At", "times", self.times)
        self._watch(self.times, *self.days.values())

    def values(self) -> dict[str, Any]:
        return {
            "days": [k for k, cb in self.days.items() if cb.isChecked()],
            "times": split_list(self.times.text()),
        }

    def load(self, data: dict[str, Any]) -> None:
        chosen = set(data.get("days", []))
        for key, cb in self.days.items():
            cb.setChecked(key in chosen)
        self.times.setText(", ".join(data.get("times", [])))


class MonthlyForm(KindForm):
    kind = "monthly"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.by_day = QRadioButton("On days")
        self.by_nth = QRadioButton("On the")
        group = QButtonGroup(self)
        group.addButton(self.by_day)
        group.addButton(self.by_nth)
        self.by_day.setChecked(True)
        self.day_list = QLineEdit("1", placeholderText="1, 15, last")
        self.day_list.setToolTip(
            "Days of the month, or 'last'. A day 31 does not fire in a 30-day month: "
            "use 'last' for month ends."
        )
        day_row = QWidget()
        box = QHBoxLayout(day_row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.by_day)
        box.addWidget(self.day_list, 1)
        self.nth = QComboBox()
        self.nth.addItems(NTHS)
        self.weekday = QComboBox()
        for key, name in zip(WEEKDAYS, WEEKDAY_NAMES):
            self.weekday.addItem(name, key)
        nth_row = QWidget()
        box = QHBoxLayout(nth_row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.by_nth)
        box.addWidget(self.nth)
        box.addWidget(self.weekday, 1)
        self.times = _times_edit()
        self.times.setText("09:00")
        self.add_row("", "days", day_row)
        self.add_row("", "nth", nth_row)
        self.errors["weekday"] = self.errors["nth"]
        self.add_row("At", "times", self.times)
        self.by_day.toggled.connect(self._sync)
        self._watch(self.by_day, self.by_nth, self.day_list, self.nth, self.weekday, self.times)
        self._sync()

    def _sync(self) -> None:
        self.day_list.setEnabled(self.by_day.isChecked())
        self.nth.setEnabled(not self.by_day.isChecked())
        self.weekday.setEnabled(not self.by_day.isChecked())

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {"times": split_list(self.times.text())}
        if self.by_day.isChecked():
            out["days"] = [month_day(t) for t in split_list(self.day_list.text())]
        else:
            out["nth"] = self.nth.currentText()
            out["weekday"] = self.weekday.currentData()
        return out

    def load(self, data: dict[str, Any]) -> None:
        if data.get("days") is not None:
            self.by_day.setChecked(True)
            self.day_list.setText(", ".join(str(d) for d in data["days"]))
        else:
            self.by_nth.setChecked(True)
            self.nth.setCurrentText(data.get("nth", "first"))
            self.weekday.setCurrentIndex(max(0, self.weekday.findData(data.get("weekday"))))
        self.times.setText(", ".join(data.get("times", [])))

    def show_errors(self, errors: dict[str, str]) -> list[str]:
        merged = dict(errors)
        if "weekday" in merged:
            merged["nth"] = "; ".join(filter(None, [merged.get("nth"), merged.pop("weekday")]))
        return super().show_errors(merged)


class CronForm(KindForm):
    kind = "cron"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.expr = QLineEdit("*/5 * * * *", placeholderText="minute hour day month weekday")
        hint = QLabel("5 fields: minute hour day-of-month month day-of-week (6 = seconds first)")
        hint.setEnabled(False)
        hint.setWordWrap(True)
        self.add_row("Expression", "expr", self.expr)
        self.form.addRow("", hint)
        self._watch(self.expr)

    def values(self) -> dict[str, Any]:
        return {"expr": self.expr.text()}

    def load(self, data: dict[str, Any]) -> None:
        self.expr.setText(data.get("expr", ""))


class OnceForm(KindForm):
    kind = "once"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.at = QDateTimeEdit(calendarPopup=True)
        self.at.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
        self.at.setDateTime(QDateTime.currentDateTime().addDays(1))
        self.at.setToolTip("Wall-clock time in the job's time zone")
        self.add_row("At", "at", self.at)
        self._watch(self.at)

    def values(self) -> dict[str, Any]:
        return {"at": self.at.dateTime().toString("yyyy-MM-ddTHH:mm:ss")}

    def load(self, data: dict[str, Any]) -> None:
        text = data.get("at", "")
        dt = QDateTime.fromString(text, "yyyy-MM-ddTHH:mm:ss")
        if dt.isValid():
            self.at.setDateTime(dt)


class ManualForm(KindForm):
    kind = "manual"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        note = QLabel(
            "Runs only when started by hand: Run now in the console, or "
            "`python -m desktop run NAME` on the command line."
        )
        note.setWordWrap(True)
        self.form.addRow(note)

    def values(self) -> dict[str, Any]:
        return {}

    def load(self, data: dict[str, Any]) -> None:
        pass


FORMS: tuple[type[KindForm], ...] = (
    IntervalForm,
    HourlyForm,
    DailyForm,
    WeeklyForm,
    MonthlyForm,
    CronForm,
    OnceForm,
    ManualForm,
)
KIND_LABELS = {
    "interval": "Interval (every N units)",
    "hourly": "Hourly",
    "daily": "Daily",
    "weekly": "Weekly",
    "monthly": "Monthly",
    "cron": "Cron expression",
    "once": "Once (one-shot)",
    "manual": "Manual only",
}
