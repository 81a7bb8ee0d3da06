"""Schedule kinds -> next fire time, time zone and DST aware (pure: time is passed in).

Every kind is a frozen dataclass built by :func:`parse` from its versioned dict form (what the
store saves and export files carry); :func:`validate` returns the same messages without raising.

DST rules (DESIGN.md), applied the same way to every wall-clock kind (hourly, daily, weekly,
monthly, cron, once): each rule produces local wall times; a wall time that does not exist fires
at the first instant after the gap, a wall time that happens twice fires once (its first
occurrence), and several wall times that land on the same instant fire once.  So an hourly
schedule or a cron ``*/5 * * * *`` pauses for the repeated hour of a fall-back night, and on a
spring-forward night everything named inside the gap fires once at its end; use an interval
schedule for elapsed time ("every 5 minutes" that ignores DST).

Monthly day 29/30/31 does not fire in a month without that day (use "last" for month ends).
"""

from __future__ import annotations

import calendar
import copy
import json
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from desktop.core import schedule_fields as f
from desktop.core.schedule_wall import local_wall, resolve

SCHEDULE_VERSION = 1
KINDS = ("interval", "hourly", "daily", "weekly", "monthly", "cron", "once", "manual")

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


class ScheduleError(ValueError):
    """An invalid schedule definition; ``errors`` maps field -> message for a person."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def _aware(after: datetime) -> datetime:
    if not isinstance(after, datetime):
        raise TypeError(f"expected an aware datetime, got {type(after).__name__}")
    if after.tzinfo is None or after.utcoffset() is None:
        # A naive time is a bug in the caller: we cannot know which zone it meant.
        raise ValueError(f"naive datetime {after!r}: pass an aware instant (e.g. tzinfo=UTC)")
    return after


@dataclass(frozen=True)
class Schedule:
    kind: ClassVar[str] = ""
    tz: str
    # Looked up once: next_after runs often and ZoneInfo() is a cache lookup each time.
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def next_after(self, after: datetime) -> datetime | None:
        raise NotImplementedError

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        out: list[datetime] = []
        current = after
        while len(out) < n:
            following = self.next_after(current)
            if following is None:
                break
            out.append(following)
            current = following
        return out

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"v": SCHEDULE_VERSION, "kind": self.kind, "tz": self.tz, **self._fields()}

    def _fields(self) -> dict[str, Any]:
        return {}

    def _zone_suffix(self) -> str:
        return f" ({self.tz})"


@dataclass(frozen=True)
class _WallSchedule(Schedule):
    """A rule over local wall times; subclasses give the rule's next wall time after one."""

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The rule's first naive local wall time strictly after ``wall``, or None."""
        raise NotImplementedError

    def next_after(self, after: datetime) -> datetime | None:
        after = _aware(after)
        tz = self._zone
        try:
            # resolve() is monotone, so the first wall time resolving past `after` is the answer;
            # only in the second pass of a fall-back hour are a few wall times skipped here.
            wall: datetime | None = local_wall(after, tz)
            while (wall := self._next_wall(wall)) is not None:  # type: ignore[arg-type]
                instant = resolve(wall, tz)
                if instant > after:
                    return instant
        except OverflowError:  # walked past year 9999
            return None
        return None


def _times_text(times: tuple[time, ...]) -> str:
    return _join([f.format_time(t) for t in times])


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _next_in_days(
    wall: datetime, times: tuple[time, ...], ahead: tuple[int, ...] | None
) -> datetime | None:
    """Next wall time after ``wall`` for a rule of ``times`` on some weekdays.

    ``ahead[weekday]`` is 0 when that weekday is in the rule, else how many days on the next
    one is; ``None`` means every day.
    """
    day = wall.date()
    if ahead is None or ahead[day.weekday()] == 0:
        i = bisect_right(times, wall.time())
        if i < len(times):
            return datetime.combine(day, times[i])
        day += _DAY
    if ahead is not None:
        day += timedelta(days=ahead[day.weekday()])
    return datetime.combine(day, times[0])


# ---------------------------------------------------------------- kinds


@dataclass(frozen=True)
class IntervalSchedule(Schedule):
    kind: ClassVar[str] = "interval"
    every: int
    unit: str
    start: datetime = EPOCH

    step: timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "step", timedelta(seconds=self.every * f.UNITS[self.unit]))

    def next_after(self, after: datetime) -> datetime | None:
        after = _aware(after)
        step = self.step
        k = max((after - self.start) // step + 1, 0)  # elapsed time: no zone involved
        try:
            return self.start + k * step
        except OverflowError:
            return None

    def describe(self) -> str:
        unit = self.unit[:-1] if self.every == 1 else self.unit
        text = f"Every {unit}" if self.every == 1 else f"Every {self.every} {unit}"
        if self.start != EPOCH:
            local = self.start.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
            text += f" from {local.removesuffix(':00')}{self._zone_suffix()}"
        return text

    def _fields(self) -> dict[str, Any]:
        return {"every": self.every, "unit": self.unit, "start": f.format_instant(self.start)}


@dataclass(frozen=True)
class HourlySchedule(_WallSchedule):
    kind: ClassVar[str] = "hourly"
    minute: int
    hours: tuple[int, int] | None = None
    _times: tuple[time, ...] = field(init=False, repr=False, compare=False)

    def _in_window(self, hour: int) -> bool:
        if self.hours is None:
            return True
        lo, hi = self.hours
        return lo <= hour <= hi if lo <= hi else hour >= lo or hour <= hi

    def __post_init__(self) -> None:
        super().__post_init__()
        times = tuple(time(h, self.minute) for h in range(24) if self._in_window(h))
        object.__setattr__(self, "_times", times)

    def _next_wall(self, wall: datetime) -> datetime | None:
        return _next_in_days(wall, self._times, None)

    def describe(self) -> str:
        text = f"Every hour at :{self.minute:02d}"
        if self.hours is not None:
            lo, hi = self.hours
            text += f", {lo:02d}:00 to {hi:02d}:59"
        return text + self._zone_suffix()

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"minute": self.minute}
        if self.hours is not None:
            out["hours"] = list(self.hours)
        return out


@dataclass(frozen=True)
class DailySchedule(_WallSchedule):
    kind: ClassVar[str] = "daily"
    times: tuple[time, ...]

    def _next_wall(self, wall: datetime) -> datetime | None:
        return _next_in_days(wall, self.times, None)

    def describe(self) -> str:
        return f"Daily at {_times_text(self.times)}{self._zone_suffix()}"

    def _fields(self) -> dict[str, Any]:
        return {"times": [f.format_time(t) for t in self.times]}


_DAY_NAMES = dict(zip(f.WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")))
_DAY_GROUPS = {
    f.WEEKDAYS: "Every day",
    f.WEEKDAYS[:5]: "Weekdays",
    f.WEEKDAYS[5:]: "Weekends",
}


@dataclass(frozen=True)
class WeeklySchedule(_WallSchedule):
    kind: ClassVar[str] = "weekly"
    days: tuple[str, ...]
    times: tuple[time, ...]
    _ahead: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        chosen = {f.WEEKDAYS.index(d) for d in self.days}
        ahead = tuple(min((c - w) % 7 for c in chosen) for w in range(7))
        object.__setattr__(self, "_ahead", ahead)

    def _next_wall(self, wall: datetime) -> datetime | None:
        return _next_in_days(wall, self.times, self._ahead)

    def describe(self) -> str:
        days = _DAY_GROUPS.get(self.days) or _join([_DAY_NAMES[d] for d in self.days])
        return f"{days} at {_times_text(self.times)}{self._zone_suffix()}"

    def _fields(self) -> dict[str, Any]:
        return {"days": list(self.days), "times": [f.format_time(t) for t in self.times]}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_LONG_DAY_NAMES = dict(
    zip(f.WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))
)


@dataclass(frozen=True)
class MonthlySchedule(_WallSchedule):
    """Either ``days`` (1..31 and/or "last") or ``nth`` + ``weekday``, at ``times``."""

    kind: ClassVar[str] = "monthly"
    times: tuple[time, ...]
    days: tuple[int | str, ...] | None = None
    nth: str | None = None
    weekday: str | None = None

    def _days_in_month(self, year: int, month: int) -> list[int]:
        first_weekday, length = calendar.monthrange(year, month)
        if self.days is not None:
            found = {d for d in self.days if isinstance(d, int) and d <= length}
            if "last" in self.days:
                found.add(length)
            return sorted(found)
        first = 1 + (f.WEEKDAYS.index(self.weekday or "mon") - first_weekday) % 7
        if self.nth == "last":
            return [first + 7 * ((length - first) // 7)]
        return [first + 7 * f.NTHS.index(self.nth or "first")]

    def _next_wall(self, wall: datetime) -> datetime | None:
        year, month, today = wall.year, wall.month, wall.day
        for day in self._days_in_month(year, month):
            if day == today:
                i = bisect_right(self.times, wall.time())
                if i < len(self.times):
                    return datetime.combine(wall.date(), self.times[i])
            elif day > today:
                return datetime.combine(date(year, month, day), self.times[0])
        while year <= 9999:  # every rule here matches within two months; this only bounds it
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            days = self._days_in_month(year, month) if year <= 9999 else []
            if days:
                return datetime.combine(date(year, month, days[0]), self.times[0])
        return None

    def describe(self) -> str:
        if self.days is not None:
            names = ["last day" if d == "last" else _ordinal(d) for d in self.days]  # type: ignore[arg-type]
            on = f"the {_join(names)}"
        else:
            on = f"the {self.nth} {_LONG_DAY_NAMES[self.weekday or 'mon']}"
        return f"Monthly on {on} at {_times_text(self.times)}{self._zone_suffix()}"

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"times": [f.format_time(t) for t in self.times]}
        if self.days is not None:
            out["days"] = list(self.days)
        else:
            out["nth"], out["weekday"] = self.nth, self.weekday
        return out


_CRON_PROBE = datetime(2000, 1, 1)
_CRON_MAX_TIMES = 1440  # one per minute
_CRON_MAX_DAYS = 50 * 366


@dataclass(frozen=True)
class CronSchedule(_WallSchedule):
    """A cron expression run on naive local wall time (our DST rules apply, not cronsim's:
    cronsim's own DST fix-up covers only 5-field fixed-time expressions)."""

    kind: ClassVar[str] = "cron"
    expr: str
    _sim: CronSim = field(init=False, repr=False, compare=False)
    _times: tuple[time, ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        sim = CronSim(self.expr, _CRON_PROBE)
        object.__setattr__(self, "_sim", sim)
        # cronsim's parsed fields: the times of day are the same on every matching day, so
        # (unless there are very many) list them once and only ask cronsim which days match.
        count = len(sim.hours) * len(sim.minutes) * len(sim.seconds)
        times = None
        if count <= _CRON_MAX_TIMES:
            times = tuple(
                time(h, m, sec)
                for h in sorted(sim.hours)
                for m in sorted(sim.minutes)
                for sec in sorted(sim.seconds)
            )
        object.__setattr__(self, "_times", times)

    def _next_wall(self, wall: datetime) -> datetime | None:
        times, sim = self._times, self._sim
        if times is None:
            # A dense expression: let cronsim walk.  A copy of the parsed one saves re-parsing;
            # a naive start makes it iterate wall-clock times > wall, as CronSim.__init__ would.
            it = copy.copy(sim)
            it.dt = wall - timedelta(microseconds=wall.microsecond)
            return next(it, None)
        day = wall.date()
        if day.month in sim.months and sim.match_day(day):
            i = bisect_right(times, wall.time())
            if i < len(times):
                return datetime.combine(day, times[i])
        for _ in range(_CRON_MAX_DAYS):  # cronsim gives up after 50 years too
            day += _DAY
            if day.month in sim.months and sim.match_day(day):
                return datetime.combine(day, times[0])
        return None

    def describe(self) -> str:
        try:
            text = self._sim.explain()
        except Exception:  # explain() is best effort; the expression itself is valid
            text = ""
        detail = f": {text}" if text else ""
        return f"Cron {self.expr}{detail}{self._zone_suffix()}"

    def _fields(self) -> dict[str, Any]:
        return {"expr": self.expr}


@dataclass(frozen=True)
class OnceSchedule(_WallSchedule):
    kind: ClassVar[str] = "once"
    at: datetime  # naive local wall time in tz

    def _next_wall(self, wall: datetime) -> datetime | None:
        return self.at if self.at > wall else None

    def describe(self) -> str:
        text = self.at.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00")
        return f"Once at {text}{self._zone_suffix()}"

    def _fields(self) -> dict[str, Any]:
        return {"at": self.at.isoformat()}


@dataclass(frozen=True)
class ManualSchedule(Schedule):
    kind: ClassVar[str] = "manual"

    def next_after(self, after: datetime) -> datetime | None:
        _aware(after)
        return None

    def describe(self) -> str:
        return f"Manual only: runs when started by hand{self._zone_suffix()}"


# ---------------------------------------------------------------- parsing


def _take(errors: dict[str, str], name: str, result: tuple[Any, str | None]) -> Any:
    value, message = result
    if message:
        errors[name] = message
    return value


def _interval(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    every = _take(e, "every", f.check_int(d.get("every"), 1, 10**9, "a positive interval"))
    unit = d.get("unit")
    if not isinstance(unit, str) or unit not in f.UNITS:
        e["unit"] = f"{unit!r} is not a unit; choose one of seconds, minutes, hours, days"
    start = EPOCH
    if d.get("start") is not None:
        start = _take(e, "start", f.check_instant(d.get("start")))
    if (
        "every" not in e
        and isinstance(unit, str)  # else e["unit"] says why
        and unit in f.UNITS
        and every * f.UNITS[unit] > f.MAX_INTERVAL_SECONDS
    ):
        e["every"] = f"{every} {unit} is longer than 10 years; use a once or monthly schedule"
    return {"every": every, "unit": unit, "start": start}


def _hourly(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    minute = _take(e, "minute", f.check_int(d.get("minute"), 0, 59, "a minute of the hour"))
    hours = _take(e, "hours", f.check_hour_window(d.get("hours")))
    return {"minute": minute, "hours": hours}


def _daily(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    return {"times": _take(e, "times", f.check_times(d.get("times")))}


def _weekly(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    days = _take(e, "days", f.check_weekdays(d.get("days")))
    return {"days": days, "times": _take(e, "times", f.check_times(d.get("times")))}


def _monthly(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"times": _take(e, "times", f.check_times(d.get("times")))}
    has_days = d.get("days") is not None
    has_nth = d.get("nth") is not None or d.get("weekday") is not None
    if has_days and has_nth:
        e["days"] = 'give either "days" or "nth" with "weekday", not both'
    elif has_days:
        out["days"] = _take(e, "days", f.check_month_days(d.get("days")))
    elif has_nth:
        out["nth"] = _take(e, "nth", f.check_nth(d.get("nth")))
        out["weekday"] = _take(e, "weekday", f.check_weekday(d.get("weekday")))
    else:
        e["days"] = (
            'is required: days of the month such as [1, 15, "last"], '
            'or "nth" ("first".."last") with a "weekday"'
        )
    return out


def _cron(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    expr = d.get("expr")
    hint = "5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"
    if not isinstance(expr, str) or not expr.strip():
        e["expr"] = f"is required: a cron expression with {hint}, e.g. '*/5 * * * *'"
        return {}
    expr = " ".join(expr.split())
    if len(expr.split()) not in (5, 6):
        e["expr"] = f"{expr!r} has {len(expr.split())} fields; a cron expression has {hint}"
        return {}
    try:
        next(CronSim(expr, _CRON_PROBE))
    except CronSimError as exc:
        problem = f"{str(exc).lower()} field"
        e["expr"] = f"{expr!r} is not a valid cron expression ({problem}); it needs {hint}"
    except StopIteration:
        e["expr"] = f"{expr!r} never matches a date; check the day and month fields"
    except Exception:  # cronsim may trip over odd input with its own errors
        e["expr"] = f"{expr!r} is not a valid cron expression; it needs {hint}"
    return {"expr": expr}


def _once(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    return {"at": _take(e, "at", f.check_local_datetime(d.get("at")))}


def _manual(d: dict[str, Any], e: dict[str, str]) -> dict[str, Any]:
    return {}


_KINDS: dict[str, tuple[type[Schedule], Any, tuple[str, ...]]] = {
    "interval": (IntervalSchedule, _interval, ("every", "unit", "start")),
    "hourly": (HourlySchedule, _hourly, ("minute", "hours")),
    "daily": (DailySchedule, _daily, ("times",)),
    "weekly": (WeeklySchedule, _weekly, ("days", "times")),
    "monthly": (MonthlySchedule, _monthly, ("days", "nth", "weekday", "times")),
    "cron": (CronSchedule, _cron, ("expr",)),
    "once": (OnceSchedule, _once, ("at",)),
    "manual": (ManualSchedule, _manual, ()),
}
_COMMON = ("v", "kind", "tz")


def _check(data: Any) -> tuple[dict[str, str], Schedule | None]:
    if not isinstance(data, dict):
        return {"schedule": "must be an object with at least 'kind' and 'tz'"}, None
    errors: dict[str, str] = {}
    version = data.get("v", SCHEDULE_VERSION)
    if not f.is_int(version) or version < 1:
        errors["v"] = f"{version!r} is not a schedule format version (expected {SCHEDULE_VERSION})"
    elif version > SCHEDULE_VERSION:
        errors["v"] = (
            f"schedule format version {version} is newer than this Job Trigger understands "
            f"({SCHEDULE_VERSION}); upgrade Job Trigger to load it"
        )
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        what = "is required" if kind is None else f"{kind!r} is not a schedule kind"
        errors["kind"] = f"{what}; choose one of {', '.join(KINDS)}"
    tz = _take(errors, "tz", f.check_tz(data.get("tz")))
    if "kind" in errors or not isinstance(kind, str):
        return errors, None
    cls, builder, allowed = _KINDS[kind]
    unknown = [k for k in data if k not in _COMMON and k not in allowed]
    if unknown:
        names = ", ".join(sorted(repr(k) for k in unknown))
        expected = ", ".join(allowed) or "no other fields"
        errors["schedule"] = f"unknown field {names} for a {kind} schedule (expected: {expected})"
    values = builder(data, errors)
    if errors:
        return errors, None
    return {}, cls(tz=tz, **values)


def validate(data: dict[str, Any]) -> dict[str, str]:
    """Field -> message for everything wrong with ``data``; ``{}`` when it is a valid schedule."""
    return _check(data)[0]


def parse(data: dict[str, Any]) -> Schedule:
    errors, schedule = _check(data)
    if errors or schedule is None:
        raise ScheduleError(errors)
    return schedule


def loads(text: str) -> Schedule:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ScheduleError({"schedule": f"is not valid JSON ({exc})"}) from None
    return parse(data)


def dumps(schedule: Schedule) -> str:
    return json.dumps(schedule.to_dict(), sort_keys=True, separators=(",", ":"))
