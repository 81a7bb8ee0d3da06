"""Checks for the individual fields of a schedule definition (pure).

Each checker takes the raw value from a JSON-like dict and returns ``(value, None)`` when it is
good or ``(None, message)`` with a message a person understands (the editor shows it next to the
field).  They never raise on junk input: schedules come from files and from people.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timezone
from typing import Any

from desktop.core.zones import zone_problem

UTC = timezone.utc
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index == date.weekday()
NTHS = ("first", "second", "third", "fourth", "last")
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
# An interval step longer than this is almost surely a typo (and keeps datetime maths in range).
MAX_INTERVAL_SECONDS = 3660 * 86400

_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")

Result = tuple[Any, "str | None"]


def is_int(value: Any) -> bool:
    # bool is an int subclass; True is not a day of the month
    return isinstance(value, int) and not isinstance(value, bool)


def check_tz(value: Any) -> Result:
    problem = zone_problem(value)
    return (None, problem) if problem else (value, None)


def check_time(value: Any) -> Result:
    hint = "is not a time of day (HH:MM or HH:MM:SS, 00:00 to 23:59:59)"
    if not isinstance(value, str):
        return None, f"{value!r} {hint}"
    m = _TIME_RE.fullmatch(value.strip())
    if not m:
        return None, f"{value!r} {hint}"
    hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None, f"{value!r} {hint}"
    return time(hour, minute, second), None


def format_time(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def check_times(value: Any) -> Result:
    if value is None:
        return None, 'is required: one or more times of day, e.g. ["09:30", "17:00"]'
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        return None, 'must be a list of one or more times of day, e.g. ["09:30", "17:00"]'
    times, bad = set(), []
    for item in value:
        t, err = check_time(item)
        if err:
            bad.append(err)
        else:
            times.add(t)
    if bad:
        return None, "; ".join(bad)
    return tuple(sorted(times)), None


def check_weekdays(value: Any) -> Result:
    hint = "choose one or more of mon, tue, wed, thu, fri, sat, sun"
    if not isinstance(value, (list, tuple)) or not value:
        return None, f"is required: {hint}"
    days, bad = set(), []
    for item in value:
        name = item.strip().lower()[:3] if isinstance(item, str) else None
        if name in WEEKDAYS and item.strip().lower() in (name, _long_day(name)):
            days.add(name)
        else:
            bad.append(repr(item))
    if bad:
        return None, f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a weekday; {hint}"
    return tuple(d for d in WEEKDAYS if d in days), None


def _long_day(short: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[short]


def check_weekday(value: Any) -> Result:
    days, err = check_weekdays([value] if isinstance(value, str) else None)
    if err:
        return None, f"{value!r} is not a weekday; choose one of mon, tue, wed, thu, fri, sat, sun"
    return days[0], None


def check_month_days(value: Any) -> Result:
    hint = 'days of the month 1 to 31 or "last", e.g. [1, 15, "last"]'
    if not isinstance(value, (list, tuple)) or not value:
        return None, f"is required: {hint}"
    days, bad = set(), []
    for item in value:
        if is_int(item) and 1 <= item <= 31:
            days.add(item)
        elif isinstance(item, str) and item.strip().lower() == "last":
            days.add("last")
        else:
            bad.append(repr(item))
    if bad:
        return None, f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a valid day; {hint}"
    numbers = sorted(d for d in days if d != "last")
    return tuple(numbers) + (("last",) if "last" in days else ()), None


def check_nth(value: Any) -> Result:
    if isinstance(value, str) and value.strip().lower() in NTHS:
        return value.strip().lower(), None
    return None, f"{value!r} is not one of first, second, third, fourth, last"


def check_int(value: Any, lo: int, hi: int, what: str) -> Result:
    if is_int(value) and lo <= value <= hi:
        return value, None
    return None, f"{value!r} is not {what} (a whole number from {lo} to {hi})"


def check_hour_window(value: Any) -> Result:
    hint = "must be [from_hour, to_hour], whole hours 0 to 23, e.g. [9, 17] or [22, 2]"
    if value is None:
        return None, None
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(is_int(h) and 0 <= h <= 23 for h in value)
    ):
        return None, f"{value!r} {hint}"
    return (value[0], value[1]), None


def check_instant(value: Any) -> Result:
    hint = 'must be a UTC date and time in ISO 8601, e.g. "2026-01-01T00:00:00Z"'
    if not isinstance(value, str):
        return None, f"{value!r} {hint}"
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None, f"{value!r} {hint}"
    if dt.tzinfo is None:
        return None, f"{value!r} has no time zone; add 'Z' for UTC, e.g. \"2026-01-01T00:00:00Z\""
    return dt.astimezone(UTC), None


def format_instant(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def check_local_datetime(value: Any) -> Result:
    hint = 'must be a local date and time in ISO 8601, e.g. "2026-12-01T09:00:00"'
    if not isinstance(value, str):
        return None, f"{value!r} {hint}"
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, f"{value!r} {hint}"
    if dt.tzinfo is not None:
        return None, (
            f"{value!r} carries a UTC offset; give the local wall time without one "
            "(the zone comes from the tz field)"
        )
    return dt, None
