"""Property tests: the engine against an independent reference, plus serialisation and junk.

The reference enumerates the rule's local wall times naively (day by day) and maps each wall
time to UTC by scanning instants: the first instant whose local wall time reaches it.  That is
the DST rule in its plainest form (a missing time fires when the clock first passes it, at the
end of the gap; a repeated time fires at its first occurrence) and shares no code with
desktop.core.schedule_wall.
"""

import calendar
import itertools
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from cronsim import CronSim
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from desktop.core.schedule_fields import NTHS, WEEKDAYS
from desktop.core.schedules import ScheduleError, dumps, loads, parse, validate

UTC = timezone.utc
ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Asia/Hong_Kong",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/St_Johns",  # -03:30 / -02:30
    "Asia/Kolkata",
    "UTC",
]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ strategies


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """UTC instants (2024-2030) where the zone's offset changes, found by scanning."""
    tz, out = ZoneInfo(zone), []
    t = datetime(2024, 1, 1, tzinfo=UTC)
    prev = t.astimezone(tz).utcoffset()
    while t.year < 2031:
        t += timedelta(minutes=30)
        off = t.astimezone(tz).utcoffset()
        if off != prev:
            out.append(t)
            prev = off
    return tuple(out)


times_st = st.lists(
    st.builds(
        time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]), st.sampled_from([0, 0, 30])
    ),
    min_size=1,
    max_size=3,
).map(lambda ts: [t.strftime("%H:%M:%S") for t in ts])


def kind_fields(kind: str):
    if kind == "hourly":
        window = st.none() | st.tuples(st.integers(0, 23), st.integers(0, 23)).map(list)
        return st.fixed_dictionaries({"minute": st.integers(0, 59), "hours": window})
    if kind == "daily":
        return st.fixed_dictionaries({"times": times_st})
    if kind == "weekly":
        days = st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)
        return st.fixed_dictionaries({"days": days, "times": times_st})
    if kind == "monthly":
        day = st.integers(1, 31) | st.just("last")
        by_day = st.fixed_dictionaries(
            {"days": st.lists(day, min_size=1, max_size=4), "times": times_st}
        )
        by_nth = st.fixed_dictionaries(
            {"nth": st.sampled_from(NTHS), "weekday": st.sampled_from(WEEKDAYS), "times": times_st}
        )
        return by_day | by_nth
    if kind == "cron":
        minute = st.sampled_from(["*/15", "0", "30", "0,45", "*/20", "*"])
        hour = st.sampled_from(["*", "1", "2", "1-3", "*/3", "0,12"])
        dom = st.sampled_from(["*", "*", "1", "L", "29", "15"])
        dow = st.sampled_from(["*", "*", "0", "1-5", "6"])
        sec = st.sampled_from(["", "", "0 ", "30 ", "*/30 "])  # "*/30 * *": cronsim walks
        return st.tuples(sec, minute, hour, dom, dow).map(
            lambda p: {"expr": f"{p[0]}{p[1]} {p[2]} {p[3]} * {p[4]}"}
        )
    if kind == "once":
        at = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31)).map(
            lambda d: d.replace(microsecond=0).isoformat()
        )
        return st.fixed_dictionaries({"at": at})
    raise AssertionError(kind)


WALL_KINDS = ("hourly", "daily", "weekly", "monthly", "cron", "once")


@st.composite
def wall_schedule(draw):
    kind = draw(st.sampled_from(WALL_KINDS))
    zone = draw(st.sampled_from(ZONES))
    fields = {k: v for k, v in draw(kind_fields(kind)).items() if v is not None}
    return {"v": 1, "kind": kind, "tz": zone, **fields}


@st.composite
def instant_for(draw, zone: str):
    """Half the time anywhere in 2024-2030, half the time within a day of a DST change."""
    near = transitions(zone)
    if near and draw(st.booleans()):
        base = draw(st.sampled_from(near))
        offset = draw(st.integers(-8 * 3600, 2 * 3600))
        return base + timedelta(
            seconds=offset, microseconds=draw(st.sampled_from([0, 0, 1, 500000]))
        )
    return draw(st.datetimes(datetime(2024, 1, 1), datetime(2030, 6, 30), timezones=st.just(UTC)))


# ------------------------------------------------------------------ reference model


def rule_walls(data: dict, lo: datetime, hi: datetime) -> list[datetime]:
    """Every local wall time in [lo, hi] that the rule names, by brute force."""
    kind = data["kind"]
    if kind == "once":
        at = datetime.fromisoformat(data["at"])
        return [at] if lo <= at <= hi else []
    if kind == "cron":
        out = []
        for w in CronSim(data["expr"], lo - timedelta(seconds=1)):
            if w > hi:
                return out
            out.append(w)
        return out
    if kind == "hourly":
        lo_h, hi_h = data.get("hours", [0, 23])
        hours = [
            h for h in range(24) if (lo_h <= h <= hi_h if lo_h <= hi_h else h >= lo_h or h <= hi_h)
        ]
        times = [time(h, data["minute"]) for h in hours]
    else:
        times = [time.fromisoformat(t) for t in data["times"]]
    out, day = [], lo.date()
    while day <= hi.date():
        if day_matches(data, day):
            out += [datetime.combine(day, t) for t in times if lo <= datetime.combine(day, t) <= hi]
        day += timedelta(days=1)
    return out


def day_matches(data: dict, day: date) -> bool:
    kind = data["kind"]
    if kind == "weekly":
        return WEEKDAYS[day.weekday()] in data["days"]
    if kind == "monthly":
        length = calendar.monthrange(day.year, day.month)[1]
        if "days" in data:
            return day.day in data["days"] or ("last" in data["days"] and day.day == length)
        if WEEKDAYS[day.weekday()] != data["weekday"]:
            return False
        if data["nth"] == "last":
            return day.day + 7 > length
        return (day.day - 1) // 7 == NTHS.index(data["nth"])
    return True


def reference_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant at which the local clock shows ``wall`` or later."""

    def reached(u: datetime) -> bool:
        return u.astimezone(tz).replace(tzinfo=None) >= wall

    # Start 16 h early; every offset in ZONES is a multiple of 15 minutes, so the coarse grid
    # lands exactly on the first occurrence and cannot step over a short stretch before a
    # fall-back (it must not find the second occurrence instead).
    u = wall.replace(tzinfo=UTC) - timedelta(hours=16)
    assert not reached(u)
    for step in (timedelta(minutes=15), timedelta(minutes=1), timedelta(seconds=1)):
        while not reached(u + step):  # u stays the last instant that has not reached it
            u += step
    return u + timedelta(seconds=1)


def reference_next(data: dict, after: datetime, until: datetime) -> list[datetime]:
    tz = ZoneInfo(data["tz"])
    lo = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    hi = until.astimezone(tz).replace(tzinfo=None) + timedelta(hours=3)
    found = {reference_instant(w, tz) for w in rule_walls(data, lo, hi)}
    return sorted(u for u in found if after < u <= until)


# ------------------------------------------------------------------ properties


@FAST
@given(st.data())
def test_wall_kinds_match_the_reference(data):
    spec = data.draw(wall_schedule())
    after = data.draw(instant_for(spec["tz"]))
    schedule = parse(spec)
    got = schedule.next_n(after, 6)
    # strictly increasing, aware UTC, strictly after `after`
    assert all(t.tzinfo is UTC for t in got)
    assert all(a < b for a, b in zip([after, *got], got))
    if spec["kind"] == "once":
        until = datetime(2031, 1, 1, tzinfo=UTC)
    else:
        assert len(got) == 6  # every recurring rule here fires at least yearly
        until = got[-1]
    # sound and complete: exactly the reference firings in (after, until]
    assert got == reference_next(spec, after, until)


@FAST
@given(st.data())
def test_local_times_are_in_the_rule_and_never_repeat(data):
    spec = data.draw(wall_schedule())
    assume(spec["kind"] != "once")
    tz = ZoneInfo(spec["tz"])
    got = parse(spec).next_n(data.draw(instant_for(spec["tz"])), 8)
    walls = [t.astimezone(tz).replace(tzinfo=None) for t in got]
    assert len(set(walls)) == len(walls)  # no wall time fires twice across a fall-back hour
    for t, w in zip(got, walls):
        first_pass = w.replace(tzinfo=tz, fold=0).astimezone(UTC)
        assert first_pass == t, "a repeated wall time fired in its second pass"
        if w not in rule_walls(spec, w, w):
            # only allowed at the end of a spring-forward gap that swallowed a rule time
            before = (t - timedelta(seconds=1)).astimezone(tz)
            assert before.utcoffset() < t.astimezone(tz).utcoffset()
            gap_start = before.replace(tzinfo=None) + timedelta(seconds=1)
            assert rule_walls(spec, gap_start, w), (w, gap_start)


@FAST
@given(
    st.sampled_from(
        ["America/New_York", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe"]
    ),
    st.data(),
)
def test_times_in_a_spring_forward_gap_never_vanish(zone, data):
    tz = ZoneInfo(zone)
    gaps = [
        t
        for t in transitions(zone)
        if t.astimezone(tz).utcoffset() > (t - timedelta(seconds=1)).astimezone(tz).utcoffset()
    ]
    end = data.draw(st.sampled_from(gaps))
    gap_start = (end - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) + timedelta(
        seconds=1
    )
    gap_end = end.astimezone(tz).replace(tzinfo=None)
    wall = gap_start + timedelta(
        seconds=data.draw(st.integers(0, int((gap_end - gap_start).total_seconds()) - 1))
    )
    kind = data.draw(st.sampled_from(["daily", "once", "cron"]))
    spec = {
        "daily": {"kind": "daily", "times": [wall.strftime("%H:%M:%S")]},
        "once": {"kind": "once", "at": wall.isoformat()},
        "cron": {
            "kind": "cron",
            "expr": f"{wall.second} {wall.minute} {wall.hour} {wall.day} {wall.month} *",
        },
    }[kind]
    s = parse({"tz": zone, **spec})
    assert s.next_after(end - timedelta(seconds=1)) == end


def _shifts(zone: str, forward: bool) -> list[datetime]:
    tz = ZoneInfo(zone)
    return [
        t
        for t in transitions(zone)
        if (t.astimezone(tz).utcoffset() > (t - timedelta(seconds=1)).astimezone(tz).utcoffset())
        == forward
    ]


def _spec_at(wall: datetime, kind: str) -> dict:
    return {
        "daily": {"kind": "daily", "times": [wall.strftime("%H:%M:%S")]},
        "once": {"kind": "once", "at": wall.isoformat()},
        "hourly": {"kind": "hourly", "minute": wall.minute},
        "cron": {
            "kind": "cron",
            "expr": f"{wall.second} {wall.minute} {wall.hour} {wall.day} {wall.month} *",
        },
    }[kind]


@FAST
@given(
    st.sampled_from(
        ["America/New_York", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe"]
    ),
    st.sampled_from(["daily", "once", "cron", "hourly"]),
    st.data(),
)
def test_times_in_a_fall_back_hour_fire_once_at_the_first_pass(zone, kind, data):
    tz = ZoneInfo(zone)
    change = data.draw(st.sampled_from(_shifts(zone, forward=False)))
    first_pass = (change - timedelta(seconds=1)).astimezone(tz)
    repeat = first_pass.utcoffset() - change.astimezone(tz).utcoffset()
    seconds = data.draw(st.integers(1, int(repeat.total_seconds())))
    wall = (change - timedelta(seconds=seconds)).astimezone(tz).replace(tzinfo=None)
    if kind == "hourly":
        wall = wall.replace(second=0)
    s = parse({"tz": zone, **_spec_at(wall, kind)})
    got = s.next_n(change - repeat - timedelta(hours=1), 4)
    hits = [t for t in got if t.astimezone(tz).replace(tzinfo=None) == wall]
    assert hits == [wall.replace(tzinfo=tz, fold=0).astimezone(UTC)]
    assert hits[0] < change  # the first pass, before the clocks went back


@FAST
@given(
    st.integers(1, 500),
    st.sampled_from(["seconds", "minutes", "hours", "days"]),
    st.datetimes(datetime(1990, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.datetimes(
        datetime(2000, 1, 1),
        datetime(2040, 1, 1),
        timezones=st.sampled_from([UTC, ZoneInfo("America/New_York")]),
    ),
)
def test_interval_is_elapsed_time_on_its_grid(every, unit, start, after):
    start = start.replace(microsecond=0)
    spec = {"kind": "interval", "tz": "America/New_York", "every": every, "unit": unit}
    spec["start"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    s = parse(spec)
    got = s.next_n(after, 4)
    step = s.step
    assert got[0] > after and (got[0] == start or got[0] - step <= after)
    assert all(b - a == step for a, b in itertools.pairwise(got))
    assert all((t - start) % step == timedelta(0) and t >= start for t in got)


@st.composite
def any_valid_schedule(draw):
    kind = draw(st.sampled_from(["interval", "manual", *WALL_KINDS]))
    zone = draw(st.sampled_from(ZONES))
    if kind == "manual":
        fields = {}
    elif kind == "interval":
        fields = {
            "every": draw(st.integers(1, 10_000)),
            "unit": draw(st.sampled_from(["seconds", "minutes", "hours"])),
        }
        if draw(st.booleans()):
            start = draw(st.datetimes(datetime(1970, 1, 1), datetime(2100, 1, 1)))
            fields["start"] = start.replace(microsecond=0).isoformat() + "Z"
    else:
        fields = {k: v for k, v in draw(kind_fields(kind)).items() if v is not None}
    return {"v": 1, "kind": kind, "tz": zone, **fields}


@FAST
@given(any_valid_schedule())
def test_serialised_form_round_trips(spec):
    assert validate(spec) == {}
    s = parse(spec)
    assert parse(s.to_dict()) == s
    text = dumps(s)
    assert loads(text) == s
    assert dumps(loads(text)) == text  # stable
    assert s.describe() and "\n" not in s.describe()


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-100, 100)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
)
junk_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "v",
        "kind",
        "tz",
        "every",
        "unit",
        "start",
        "minute",
        "hours",
        "times",
        "days",
        "nth",
        "weekday",
        "expr",
        "at",
    ]
)
plausible = st.sampled_from(
    [
        "daily",
        "cron",
        "monthly",
        "weekly",
        "hourly",
        "interval",
        "once",
        "manual",
        "UTC",
        "Asia/Hong_Kong",
        "09:30",
        "last",
        "mon",
        "*/5 * * * *",
        1,
        0,
        31,
        ["09:00"],
        ["mon"],
        [1, "last"],
        "2026-01-01T00:00:00Z",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(field_names | st.text(max_size=4), plausible | junk_value, max_size=6)
    | junk_value
)
def test_junk_never_crashes_validate_and_parse_raises_only_schedule_error(data):
    errors = validate(data)
    assert isinstance(errors, dict)
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in errors.items())
    try:
        s = parse(data)
    except ScheduleError as exc:
        assert exc.errors == errors and errors
        return
    assert errors == {}
    assert parse(s.to_dict()) == s
    s.next_n(datetime(2026, 1, 1, tzinfo=UTC), 2)
    s.describe()
