"""Real DST transitions, both ways, in three hemispheres/zones, plus a zone without DST.

2026 transitions used here (UTC):
  America/New_York  spring 03-08 07:00 (02:00 -> 03:00)   fall 11-01 06:00 (02:00 -> 01:00)
  Europe/London     spring 03-29 01:00 (01:00 -> 02:00)   fall 10-25 01:00 (02:00 -> 01:00)
  Australia/Sydney  fall   04-04 16:00 (03:00 -> 02:00)   spring 10-03 16:00 (02:00 -> 03:00)
"""

from datetime import datetime, timedelta, timezone

import pytest

from desktop.core.schedule_wall import resolve
from desktop.core.schedules import parse

UTC = timezone.utc


def Z(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(data: dict, after: datetime, n: int) -> list[datetime]:
    return parse(data).next_n(after, n)


CASES = [
    # (id, schedule, after, expected UTC firings)
    (
        "new-york spring: 02:30 does not exist, fires at 03:00 EDT",
        {"kind": "daily", "tz": "America/New_York", "times": ["02:30"]},
        Z(2026, 3, 7, 0),
        [Z(2026, 3, 7, 7, 30), Z(2026, 3, 8, 7, 0), Z(2026, 3, 9, 6, 30)],
    ),
    (
        "new-york fall: 01:30 happens twice, fires once (EDT)",
        {"kind": "daily", "tz": "America/New_York", "times": ["01:30"]},
        Z(2026, 10, 31, 0),
        [Z(2026, 10, 31, 5, 30), Z(2026, 11, 1, 5, 30), Z(2026, 11, 2, 6, 30)],
    ),
    (
        "new-york fall: asked during the second 01:xx, no second firing",
        {"kind": "daily", "tz": "America/New_York", "times": ["01:30"]},
        Z(2026, 11, 1, 6, 15),  # 01:15 EST, the repeated hour
        [Z(2026, 11, 2, 6, 30)],
    ),
    (
        "new-york hourly across fall back: the repeated 01:30 fires once",
        {"kind": "hourly", "tz": "America/New_York", "minute": 30},
        Z(2026, 11, 1, 4, 0),
        [Z(2026, 11, 1, 4, 30), Z(2026, 11, 1, 5, 30), Z(2026, 11, 1, 7, 30)],
    ),
    (
        "new-york hourly across spring forward: 02:30 moves to 03:00",
        {"kind": "hourly", "tz": "America/New_York", "minute": 30},
        Z(2026, 3, 8, 5, 0),
        [Z(2026, 3, 8, 5, 30), Z(2026, 3, 8, 6, 30), Z(2026, 3, 8, 7, 0), Z(2026, 3, 8, 7, 30)],
    ),
    (
        "new-york two times in the gap fire once at its end",
        {"kind": "daily", "tz": "America/New_York", "times": ["02:10", "02:50", "03:00"]},
        Z(2026, 3, 8, 6, 0),
        [Z(2026, 3, 8, 7, 0), Z(2026, 3, 9, 6, 10)],
    ),
    (
        "new-york cron 30 2 * * * on spring forward",
        {"kind": "cron", "tz": "America/New_York", "expr": "30 2 * * *"},
        Z(2026, 3, 7, 12),
        [Z(2026, 3, 8, 7, 0), Z(2026, 3, 9, 6, 30)],
    ),
    (
        "new-york cron with seconds in the gap",
        {"kind": "cron", "tz": "America/New_York", "expr": "15 30 2 * * *"},
        Z(2026, 3, 7, 12),
        [Z(2026, 3, 8, 7, 0), Z(2026, 3, 9, 6, 30, 15)],
    ),
    (
        "new-york cron every 30 min is wall clock: the repeated hour does not fire again",
        {"kind": "cron", "tz": "America/New_York", "expr": "*/30 * * * *"},
        Z(2026, 11, 1, 4, 45),
        [Z(2026, 11, 1, 5, 0), Z(2026, 11, 1, 5, 30), Z(2026, 11, 1, 7, 0)],
    ),
    (
        "new-york once inside the gap",
        {"kind": "once", "tz": "America/New_York", "at": "2026-03-08T02:30:00"},
        Z(2026, 1, 1),
        [Z(2026, 3, 8, 7, 0)],
    ),
    (
        "new-york interval ignores DST: exactly 1 h apart through fall back",
        {"kind": "interval", "tz": "America/New_York", "every": 1, "unit": "hours"},
        Z(2026, 11, 1, 4, 30),
        [Z(2026, 11, 1, 5), Z(2026, 11, 1, 6), Z(2026, 11, 1, 7)],
    ),
    (
        "london spring: 01:30 does not exist, fires at 02:00 BST",
        {"kind": "daily", "tz": "Europe/London", "times": ["01:30"]},
        Z(2026, 3, 28, 12),
        [Z(2026, 3, 29, 1, 0), Z(2026, 3, 30, 0, 30)],
    ),
    (
        "london fall: 01:30 twice, fires once (BST)",
        {"kind": "daily", "tz": "Europe/London", "times": ["01:30"]},
        Z(2026, 10, 24, 12),
        [Z(2026, 10, 25, 0, 30), Z(2026, 10, 26, 1, 30)],
    ),
    (
        "london last sunday of march at 01:30",
        {
            "kind": "monthly",
            "tz": "Europe/London",
            "nth": "last",
            "weekday": "sun",
            "times": ["01:30"],
        },
        Z(2026, 3, 1),
        [Z(2026, 3, 29, 1, 0), Z(2026, 4, 26, 0, 30)],
    ),
    (
        "sydney fall back in april: 02:30 twice, fires once (AEDT)",
        {"kind": "daily", "tz": "Australia/Sydney", "times": ["02:30"]},
        Z(2026, 4, 4, 0),
        [Z(2026, 4, 4, 15, 30), Z(2026, 4, 5, 16, 30)],
    ),
    (
        "sydney spring forward in october: 02:30 fires at 03:00 AEDT",
        {"kind": "daily", "tz": "Australia/Sydney", "times": ["02:30"]},
        Z(2026, 10, 3, 0),
        [Z(2026, 10, 3, 16, 0), Z(2026, 10, 4, 15, 30)],
    ),
    (
        "sydney weekly sunday 02:15 over both transitions",
        {"kind": "weekly", "tz": "Australia/Sydney", "days": ["sun"], "times": ["02:15"]},
        Z(2026, 4, 1),
        [Z(2026, 4, 4, 15, 15), Z(2026, 4, 11, 16, 15)],
    ),
    (
        "hong kong has no DST: 02:30 is always 18:30 UTC the day before",
        {"kind": "daily", "tz": "Asia/Hong_Kong", "times": ["02:30"]},
        Z(2026, 3, 7, 0),
        [Z(2026, 3, 7, 18, 30), Z(2026, 3, 8, 18, 30), Z(2026, 3, 9, 18, 30)],
    ),
]


@pytest.mark.parametrize(
    ("data", "after", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_dst_table(data, after, expected):
    assert fires(data, after, len(expected)) == expected


def test_sydney_weekly_spring_forward_in_october():
    s = parse({"kind": "weekly", "tz": "Australia/Sydney", "days": ["sun"], "times": ["02:15"]})
    assert s.next_after(Z(2026, 10, 1)) == Z(2026, 10, 3, 16, 0)  # 02:15 missing -> 03:00


def test_resolve_ambiguous_is_first_occurrence_and_gap_is_its_end():
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    assert resolve(datetime(2026, 11, 1, 1, 30), ny) == Z(2026, 11, 1, 5, 30)
    assert resolve(datetime(2026, 3, 8, 2, 0), ny) == Z(2026, 3, 8, 7, 0)
    assert resolve(datetime(2026, 3, 8, 2, 59, 59), ny) == Z(2026, 3, 8, 7, 0)
    assert resolve(datetime(2026, 3, 8, 3, 0), ny) == Z(2026, 3, 8, 7, 0)
    # a 30-minute DST shift and a whole skipped day
    assert resolve(datetime(2026, 10, 4, 2, 15), ZoneInfo("Australia/Lord_Howe")) == Z(
        2026, 10, 3, 15, 30
    )
    assert resolve(datetime(2011, 12, 30, 12), ZoneInfo("Pacific/Apia")) == Z(2011, 12, 30, 10)


def test_results_are_aware_utc_even_for_other_zone_input():
    s = parse({"kind": "daily", "tz": "Europe/London", "times": ["09:00"]})
    after = datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=8)))
    got = s.next_after(after)
    assert got == Z(2026, 6, 1, 8, 0)
    assert got.tzinfo is UTC
