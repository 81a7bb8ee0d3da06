"""Each kind's rule, month ends, leap years, year rollover, describe() and validation messages."""

import json
from datetime import datetime, timezone

import pytest

from desktop.core import schedules
from desktop.core.schedules import ScheduleError, dumps, loads, parse, validate

UTC = timezone.utc


def Z(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def utc_days(data: dict, after: datetime, n: int) -> list[str]:
    """Firings as local 'YYYY-MM-DD HH:MM' strings in the schedule's zone (readable tables)."""
    s = parse(data)
    return [t.astimezone(s.zone).strftime("%Y-%m-%d %H:%M") for t in s.next_n(after, n)]


# ------------------------------------------------------------------ month ends and leap years


def test_day_31_skips_months_without_one():
    data = {"kind": "monthly", "tz": "UTC", "days": [31], "times": ["09:00"]}
    assert utc_days(data, Z(2026, 1, 31, 12), 4) == [
        "2026-03-31 09:00",
        "2026-05-31 09:00",
        "2026-07-31 09:00",
        "2026-08-31 09:00",
    ]


def test_last_day_follows_month_length_and_leap_years():
    data = {"kind": "monthly", "tz": "UTC", "days": ["last"], "times": ["23:00"]}
    assert utc_days(data, Z(2027, 12, 1), 4) == [
        "2027-12-31 23:00",
        "2028-01-31 23:00",
        "2028-02-29 23:00",
        "2028-03-31 23:00",
    ]
    assert utc_days(data, Z(2026, 2, 1), 1) == ["2026-02-28 23:00"]
    assert utc_days(data, Z(2100, 2, 1), 1) == ["2100-02-28 23:00"]  # 2100 is not a leap year
    assert utc_days(data, Z(2000, 2, 1), 1) == ["2000-02-29 23:00"]  # 2000 is


def test_day_and_last_day_on_the_same_date_fire_once():
    data = {"kind": "monthly", "tz": "UTC", "days": [30, "last", 31], "times": ["08:00"]}
    assert utc_days(data, Z(2026, 2, 1), 4) == [
        "2026-02-28 08:00",
        "2026-03-30 08:00",
        "2026-03-31 08:00",
        "2026-04-30 08:00",
    ]


def test_feb_29_fires_only_in_leap_years():
    data = {"kind": "monthly", "tz": "Asia/Hong_Kong", "days": [29], "times": ["10:00"]}
    got = utc_days(data, Z(2027, 1, 30), 3)
    assert got == ["2027-03-29 10:00", "2027-04-29 10:00", "2027-05-29 10:00"]
    cron = {"kind": "cron", "tz": "Asia/Hong_Kong", "expr": "0 10 29 2 *"}
    assert utc_days(cron, Z(2026, 1, 1), 3) == [
        "2028-02-29 10:00",
        "2032-02-29 10:00",
        "2036-02-29 10:00",
    ]


@pytest.mark.parametrize(
    ("nth", "weekday", "expected"),
    [
        ("first", "mon", ["2026-11-02", "2026-12-07", "2027-01-04"]),
        ("second", "tue", ["2026-11-10", "2026-12-08", "2027-01-12"]),
        ("fourth", "thu", ["2026-11-26", "2026-12-24", "2027-01-28"]),
        ("last", "fri", ["2026-11-27", "2026-12-25", "2027-01-29"]),
        ("last", "sun", ["2026-11-29", "2026-12-27", "2027-01-31"]),
    ],
)
def test_nth_weekday_of_month_across_year_end(nth, weekday, expected):
    data = {"kind": "monthly", "tz": "UTC", "nth": nth, "weekday": weekday, "times": ["06:00"]}
    assert [d[:10] for d in utc_days(data, Z(2026, 11, 1), 3)] == expected


# ------------------------------------------------------------------ year rollover, each kind


def test_daily_rolls_over_the_year():
    data = {"kind": "daily", "tz": "Asia/Hong_Kong", "times": ["23:59", "00:00:30"]}
    after = datetime(2026, 12, 31, 23, 0, tzinfo=parse(data).zone)
    assert utc_days(data, after, 3) == ["2026-12-31 23:59", "2027-01-01 00:00", "2027-01-01 23:59"]
    assert parse(data).next_n(after, 2)[1] == Z(2026, 12, 31, 16, 0, 30)


def test_weekly_picks_listed_days_in_order_over_new_year():
    data = {"kind": "weekly", "tz": "Europe/London", "days": ["fri", "mon"], "times": ["09:30"]}
    assert utc_days(data, Z(2026, 12, 29), 3) == [
        "2027-01-01 09:30",
        "2027-01-04 09:30",
        "2027-01-08 09:30",
    ]


def test_hourly_window_wraps_midnight():
    data = {"kind": "hourly", "tz": "UTC", "minute": 15, "hours": [22, 1]}
    assert utc_days(data, Z(2026, 12, 31, 12), 5) == [
        "2026-12-31 22:15",
        "2026-12-31 23:15",
        "2027-01-01 00:15",
        "2027-01-01 01:15",
        "2027-01-01 22:15",
    ]


def test_hourly_plain_window():
    data = {"kind": "hourly", "tz": "UTC", "minute": 0, "hours": [9, 10]}
    assert utc_days(data, Z(2026, 1, 1, 9, 0), 3) == [
        "2026-01-01 10:00",
        "2026-01-02 09:00",
        "2026-01-02 10:00",
    ]


def test_interval_is_anchored_and_strict():
    s = parse({"kind": "interval", "tz": "UTC", "every": 5, "unit": "minutes"})
    assert s.next_after(Z(2026, 1, 1, 0, 0)) == Z(2026, 1, 1, 0, 5)  # strictly after
    assert s.next_after(Z(2026, 1, 1, 0, 3, 59)) == Z(2026, 1, 1, 0, 5)
    anchored = parse(
        {
            "kind": "interval",
            "tz": "UTC",
            "every": 90,
            "unit": "seconds",
            "start": "2026-01-01T00:00:10Z",
        }
    )
    assert anchored.next_after(Z(2025, 1, 1)) == Z(2026, 1, 1, 0, 0, 10)  # not before its start
    assert anchored.next_n(Z(2026, 1, 1, 0, 0, 10), 2) == [
        Z(2026, 1, 1, 0, 1, 40),
        Z(2026, 1, 1, 0, 3, 10),
    ]


def test_cron_six_fields_means_seconds_first():
    s = parse({"kind": "cron", "tz": "UTC", "expr": "*/20 * * * * *"})
    assert s.next_n(Z(2026, 12, 31, 23, 59, 30), 3) == [
        Z(2026, 12, 31, 23, 59, 40),
        Z(2027, 1, 1, 0, 0, 0),
        Z(2027, 1, 1, 0, 0, 20),
    ]


def test_once_fires_once_then_never():
    s = parse({"kind": "once", "tz": "Asia/Hong_Kong", "at": "2026-12-01T09:00:00"})
    assert s.next_after(Z(2026, 1, 1)) == Z(2026, 12, 1, 1, 0)
    assert s.next_after(Z(2026, 12, 1, 1, 0)) is None
    assert s.next_n(Z(2026, 1, 1), 5) == [Z(2026, 12, 1, 1, 0)]


def test_manual_never_fires():
    s = parse({"kind": "manual", "tz": "UTC"})
    assert s.next_after(Z(2026, 1, 1)) is None
    assert s.next_n(Z(2026, 1, 1), 3) == []


def test_near_the_end_of_time_returns_none_instead_of_crashing():
    late = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert parse({"kind": "daily", "tz": "UTC", "times": ["09:00"]}).next_after(late) is None
    assert (
        parse({"kind": "interval", "tz": "UTC", "every": 2, "unit": "days"}).next_after(late)
        is None
    )


@pytest.mark.parametrize("kind_data", [{"kind": "daily", "times": ["09:00"]}, {"kind": "manual"}])
def test_naive_instant_is_refused(kind_data):
    s = parse({"tz": "UTC", **kind_data})
    with pytest.raises(ValueError, match="naive"):
        s.next_after(datetime(2026, 1, 1))


# ------------------------------------------------------------------ describe()


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"kind": "interval", "every": 5, "unit": "minutes"}, "Every 5 minutes"),
        ({"kind": "interval", "every": 1, "unit": "hours"}, "Every hour"),
        (
            {"kind": "interval", "every": 2, "unit": "days", "start": "2026-01-01T01:00:00Z"},
            "Every 2 days from 2026-01-01 09:00 (Asia/Hong_Kong)",
        ),
        ({"kind": "hourly", "minute": 5}, "Every hour at :05 (Asia/Hong_Kong)"),
        (
            {"kind": "hourly", "minute": 0, "hours": [22, 2]},
            "Every hour at :00, 22:00 to 02:59 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "daily", "times": ["17:00", "09:30"]},
            "Daily at 09:30 and 17:00 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "weekly", "days": ["mon", "tue", "wed", "thu", "fri"], "times": ["09:30"]},
            "Weekdays at 09:30 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "weekly", "days": ["sun", "sat"], "times": ["10:00"]},
            "Weekends at 10:00 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "weekly", "days": ["fri", "mon", "wed"], "times": ["08:00:30"]},
            "Mon, Wed and Fri at 08:00:30 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "monthly", "days": [1, 15, "last"], "times": ["09:30"]},
            "Monthly on the 1st, 15th and last day at 09:30 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "monthly", "nth": "first", "weekday": "mon", "times": ["09:30"]},
            "Monthly on the first Monday at 09:30 (Asia/Hong_Kong)",
        ),
        (
            {"kind": "cron", "expr": "0 9 * * 1-5"},
            "Cron 0 9 * * 1-5: At 09:00 on Monday through Friday (Asia/Hong_Kong)",
        ),
        (
            {"kind": "once", "at": "2026-12-01T09:00:00"},
            "Once at 2026-12-01 09:00 (Asia/Hong_Kong)",
        ),
        ({"kind": "manual"}, "Manual only: runs when started by hand (Asia/Hong_Kong)"),
    ],
)
def test_describe(data, text):
    assert parse({"tz": "Asia/Hong_Kong", **data}).describe() == text


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (
            {"kind": "daily", "tz": "UTC", "times": ["25:00"]},
            "times",
            "'25:00' is not a time of day",
        ),
        ({"kind": "daily", "tz": "UTC", "times": []}, "times", "one or more times"),
        ({"kind": "daily", "tz": "UTC"}, "times", "is required"),
        (
            {"kind": "daily", "tz": "Mars/Olympus", "times": ["09:00"]},
            "tz",
            "is not a time zone",
        ),
        ({"kind": "daily", "tz": "America", "times": ["09:00"]}, "tz", "is not a time zone"),
        ({"kind": "daily", "times": ["09:00"]}, "tz", "is not a time zone"),
        ({"kind": "yearly", "tz": "UTC"}, "kind", "'yearly' is not a schedule kind; choose one of"),
        ({"tz": "UTC"}, "kind", "is required"),
        (
            {"kind": "daily", "tz": "UTC", "times": ["09:00"], "v": 2},
            "v",
            "newer than this Job Trigger",
        ),
        (
            {"kind": "daily", "tz": "UTC", "times": ["09:00"], "v": "1"},
            "v",
            "not a schedule format",
        ),
        ({"kind": "daily", "tz": "UTC", "time": ["09:00"]}, "schedule", "unknown field 'time'"),
        (
            {"kind": "weekly", "tz": "UTC", "days": ["mon", "funday"], "times": ["09:00"]},
            "days",
            "'funday' is not a weekday",
        ),
        ({"kind": "weekly", "tz": "UTC", "days": [], "times": ["09:00"]}, "days", "is required"),
        (
            {"kind": "monthly", "tz": "UTC", "days": [0, 32], "times": ["09:00"]},
            "days",
            "0, 32 are not a valid day",
        ),
        (
            {"kind": "monthly", "tz": "UTC", "days": [True], "times": ["09:00"]},
            "days",
            "True is not a valid day",
        ),
        ({"kind": "monthly", "tz": "UTC", "times": ["09:00"]}, "days", "is required"),
        (
            {
                "kind": "monthly",
                "tz": "UTC",
                "days": [1],
                "nth": "first",
                "weekday": "mon",
                "times": ["09:00"],
            },
            "days",
            "either",
        ),
        (
            {"kind": "monthly", "tz": "UTC", "nth": "fifth", "weekday": "mon", "times": ["09:00"]},
            "nth",
            "'fifth'",
        ),
        (
            {"kind": "monthly", "tz": "UTC", "nth": "first", "times": ["09:00"]},
            "weekday",
            "not a weekday",
        ),
        ({"kind": "hourly", "tz": "UTC", "minute": 60}, "minute", "60 is not a minute of the hour"),
        (
            {"kind": "hourly", "tz": "UTC", "minute": 0, "hours": [9]},
            "hours",
            "[from_hour, to_hour]",
        ),
        (
            {"kind": "interval", "tz": "UTC", "every": 0, "unit": "minutes"},
            "every",
            "0 is not a positive",
        ),
        (
            {"kind": "interval", "tz": "UTC", "every": 5, "unit": "weeks"},
            "unit",
            "'weeks' is not a unit",
        ),
        (
            {"kind": "interval", "tz": "UTC", "every": 5000, "unit": "days"},
            "every",
            "longer than 10 years",
        ),
        (
            {
                "kind": "interval",
                "tz": "UTC",
                "every": 5,
                "unit": "minutes",
                "start": "2026-01-01T00:00:00",
            },
            "start",
            "has no time zone",
        ),
        (
            {"kind": "interval", "tz": "UTC", "every": 5, "unit": "minutes", "start": "soon"},
            "start",
            "ISO 8601",
        ),
        ({"kind": "cron", "tz": "UTC", "expr": "61 * * * *"}, "expr", "bad minute field"),
        ({"kind": "cron", "tz": "UTC", "expr": "* * * *"}, "expr", "has 4 fields"),
        (
            {"kind": "cron", "tz": "UTC", "expr": "0 0 31 2 *"},
            "expr",
            "not a valid cron expression",
        ),
        ({"kind": "cron", "tz": "UTC"}, "expr", "is required"),
        ({"kind": "once", "tz": "UTC", "at": "2026-12-01T09:00:00+08:00"}, "at", "without one"),
        ({"kind": "once", "tz": "UTC", "at": "tomorrow"}, "at", "ISO 8601"),
        ({"kind": "manual", "tz": "UTC", "every": 5}, "schedule", "unknown field 'every'"),
    ],
)
def test_validation_messages(data, field, words):
    errors = validate(data)
    assert field in errors, errors
    assert words in errors[field]
    with pytest.raises(ScheduleError) as info:
        parse(data)
    assert info.value.errors == errors
    assert f"{field}: {errors[field]}" in str(info.value)


def test_error_text_joins_fields_as_documented():
    err = ScheduleError({"times": "'25:00' is not a time of day (HH:MM)"})
    assert str(err) == "times: '25:00' is not a time of day (HH:MM)"
    assert isinstance(err, ValueError)


def test_all_problems_are_reported_at_once():
    errors = validate({"kind": "weekly", "tz": "Nowhere/Land", "days": ["xyz"], "times": ["9"]})
    assert set(errors) == {"tz", "days", "times"}


def test_not_a_dict():
    assert "schedule" in validate(["daily"])  # type: ignore[arg-type]
    with pytest.raises(ScheduleError):
        loads("{not json")
    with pytest.raises(ScheduleError):
        loads("[]")


def test_lenient_spellings_are_normalised():
    s = parse(
        {
            "kind": "weekly",
            "tz": "UTC",
            "days": ["Monday", "FRI", "mon"],
            "times": ["9:05", "09:05:00"],
        }
    )
    assert s.to_dict() == {
        "v": 1,
        "kind": "weekly",
        "tz": "UTC",
        "days": ["mon", "fri"],
        "times": ["09:05"],
    }


# ------------------------------------------------------------------ serialised form


def test_dumps_is_stable_sorted_json_and_round_trips():
    s = parse(
        {"kind": "monthly", "tz": "Europe/London", "days": ["last", 1], "times": ["17:00", "09:30"]}
    )
    text = dumps(s)
    assert text == (
        '{"days":[1,"last"],"kind":"monthly","times":["09:30","17:00"],"tz":"Europe/London","v":1}'
    )
    assert loads(text) == s
    assert dumps(loads(text)) == text
    assert json.loads(text)["v"] == schedules.SCHEDULE_VERSION


def test_every_kind_has_a_class_and_round_trips():
    examples = {
        "interval": {"every": 3, "unit": "hours"},
        "hourly": {"minute": 7, "hours": [8, 18]},
        "daily": {"times": ["07:00"]},
        "weekly": {"days": ["wed"], "times": ["07:00"]},
        "monthly": {"nth": "third", "weekday": "wed", "times": ["07:00"]},
        "cron": {"expr": "0 */2 * * *"},
        "once": {"at": "2030-01-01T00:00:00"},
        "manual": {},
    }
    assert tuple(examples) == schedules.KINDS
    for kind, fields in examples.items():
        s = parse({"v": 1, "kind": kind, "tz": "Australia/Sydney", **fields})
        assert s.kind == kind and s.tz == "Australia/Sydney"
        d = s.to_dict()
        assert d["v"] == 1 and d["kind"] == kind and d["tz"] == "Australia/Sydney"
        assert parse(d) == s
        with pytest.raises(AttributeError):
            s.tz = "UTC"  # type: ignore[misc]  # frozen


def test_next_n_matches_repeated_next_after():
    s = parse({"kind": "cron", "tz": "Europe/London", "expr": "*/7 3 * * *"})
    start = Z(2026, 3, 28)
    manual, t = [], start
    for _ in range(12):
        t = s.next_after(t)
        manual.append(t)
    assert s.next_n(start, 12) == manual
    assert manual == sorted(set(manual))
