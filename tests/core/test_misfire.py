"""Misfire plans for each policy, on-time firings, long downtime with bounded work."""

from datetime import datetime, timedelta, timezone

import pytest

from desktop.core.misfire import MISFIRE_POLICIES, MisfirePlan, plan_misfire
from desktop.core.schedules import parse

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOURLY = parse({"kind": "interval", "tz": "UTC", "every": 1, "unit": "hours"})
DAILY_NY = parse({"kind": "daily", "tz": "America/New_York", "times": ["09:00"]})


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def test_policies_are_the_documented_three():
    assert MISFIRE_POLICIES == ("skip", "run_once", "run_all")


@pytest.mark.parametrize("policy", MISFIRE_POLICIES)
def test_on_time_firing_just_runs(policy):
    now = T0 + timedelta(seconds=3)
    plan = plan_misfire(HOURLY, T0, now, policy, cap=5)
    assert plan == MisfirePlan(run=[T0], missed=[], next_fire=T0 + hours(1), missed_count=0)


@pytest.mark.parametrize("policy", MISFIRE_POLICIES)
def test_nothing_due_yet(policy):
    plan = plan_misfire(HOURLY, T0, T0 - timedelta(seconds=1), policy, cap=5)
    assert plan.run == [] and plan.missed == [] and plan.missed_count == 0
    assert plan.next_fire == T0


def test_no_stored_due_time_plans_only_the_next_fire():
    plan = plan_misfire(HOURLY, None, T0 + timedelta(minutes=10), "run_all", cap=5)
    assert plan == MisfirePlan(run=[], missed=[], next_fire=T0 + hours(1))


def test_grace_edges():
    on_edge = plan_misfire(HOURLY, T0, T0 + timedelta(seconds=60), "skip", cap=1)
    assert on_edge.run == [T0]
    late = plan_misfire(HOURLY, T0, T0 + timedelta(seconds=61), "skip", cap=1)
    assert late.run == [] and late.missed == [T0] and late.missed_count == 1


def test_downtime_skip_runs_nothing():
    now = T0 + hours(4.5)  # due: 9, 10, 11, 12, 13 -- the latest is 30 min late
    plan = plan_misfire(HOURLY, T0, now, "skip", cap=3)
    assert plan.run == []
    assert plan.missed == [T0 + hours(i) for i in range(5)]
    assert plan.missed_count == 5
    assert plan.next_fire == T0 + hours(5)


def test_downtime_run_once_runs_the_most_recent():
    plan = plan_misfire(HOURLY, T0, T0 + hours(4.5), "run_once", cap=3)
    assert plan.run == [T0 + hours(4)]
    assert plan.missed == [T0 + hours(i) for i in range(4)]
    assert plan.missed_count == 4


def test_downtime_run_all_runs_the_latest_cap_in_order():
    plan = plan_misfire(HOURLY, T0, T0 + hours(4.5), "run_all", cap=3)
    assert plan.run == [T0 + hours(2), T0 + hours(3), T0 + hours(4)]
    assert plan.missed == [T0, T0 + hours(1)]
    assert plan.missed_count == 2


def test_run_all_with_a_cap_larger_than_the_backlog_runs_everything():
    plan = plan_misfire(HOURLY, T0, T0 + hours(2.5), "run_all", cap=10)
    assert plan.run == [T0, T0 + hours(1), T0 + hours(2)]
    assert plan.missed == [] and plan.missed_count == 0


def test_skip_with_an_on_time_latest_runs_it_and_misses_the_rest():
    now = T0 + hours(3) + timedelta(seconds=20)
    plan = plan_misfire(HOURLY, T0, now, "skip", cap=3)
    assert plan.run == [T0 + hours(3)]
    assert plan.missed == [T0, T0 + hours(1), T0 + hours(2)]


def test_wall_clock_schedule_downtime_across_dst():
    due = DAILY_NY.next_after(datetime(2026, 3, 5, tzinfo=UTC))  # 03-05 09:00 EST = 14:00Z
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    plan = plan_misfire(DAILY_NY, due, now, "run_all", cap=2)
    # 09:00 EST is 14:00Z until the 7th; 09:00 EDT is 13:00Z from the 8th
    assert plan.run == [datetime(2026, 3, 8, 13, tzinfo=UTC), datetime(2026, 3, 9, 13, tzinfo=UTC)]
    assert plan.missed == [datetime(2026, 3, d, 14, tzinfo=UTC) for d in (5, 6, 7)]
    assert plan.missed_count == 3
    assert plan.next_fire == datetime(2026, 3, 10, 13, tzinfo=UTC)


def test_stored_due_off_the_grid_still_counts_once():
    # the schedule was edited after `due` was stored: due is 09:20, the grid is on the hour
    due = T0 + timedelta(minutes=20)
    plan = plan_misfire(HOURLY, due, T0 + hours(2.5), "run_all", cap=5)
    assert plan.run == [due, T0 + hours(1), T0 + hours(2)]
    wall = plan_misfire(DAILY_NY, due, due + timedelta(days=1, hours=1), "run_all", cap=5)
    assert wall.run == [due, datetime(2026, 3, 1, 14, tzinfo=UTC)]


def test_one_shot_after_downtime():
    once = parse({"kind": "once", "tz": "UTC", "at": "2026-03-01T09:00:00"})
    plan = plan_misfire(once, T0, T0 + timedelta(days=3), "run_once", cap=1)
    assert plan.run == [T0] and plan.missed == [] and plan.next_fire is None
    skipped = plan_misfire(once, T0, T0 + timedelta(days=3), "skip", cap=1)
    assert skipped.run == [] and skipped.missed == [T0] and skipped.next_fire is None


def test_huge_gap_on_an_interval_is_bounded_and_exact():
    every_second = parse({"kind": "interval", "tz": "UTC", "every": 1, "unit": "seconds"})
    now = T0 + timedelta(days=30, milliseconds=500)
    plan = plan_misfire(every_second, T0, now, "run_all", cap=10, list_cap=50)
    total = 30 * 86400 + 1
    assert len(plan.run) == 10 and len(plan.missed) == 50
    assert plan.run[-1] == T0 + timedelta(days=30)
    assert plan.missed[-1] == plan.run[0] - timedelta(seconds=1)  # the missed listed are the latest
    assert plan.missed_count == total - 10 and plan.missed_count_exact


def test_huge_gap_on_a_dense_cron_counts_up_to_the_limit():
    every_second = parse({"kind": "cron", "tz": "Europe/London", "expr": "* * * * * *"})
    now = T0 + timedelta(days=30)
    plan = plan_misfire(every_second, T0, now, "run_once", cap=1, list_cap=5, count_limit=2000)
    assert plan.run == [now]
    assert plan.missed == [now - timedelta(seconds=s) for s in range(5, 0, -1)]
    assert plan.missed_count == 1999 and not plan.missed_count_exact  # "at least 1999 missed"


def test_long_gap_on_a_daily_schedule_counts_exactly():
    due = DAILY_NY.next_after(datetime(2016, 3, 1, tzinfo=UTC))
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)  # ten years down; 09:00 today is still ahead
    plan = plan_misfire(DAILY_NY, due, now, "skip", cap=1, list_cap=3)
    days = (datetime(2026, 3, 1) - datetime(2016, 3, 1)).days
    assert plan.missed_count == days and plan.missed_count_exact
    assert plan.missed[-1] == datetime(2026, 2, 28, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"policy": "sometimes"}, "unknown misfire policy"),
        ({"cap": 0}, "at least 1"),
        ({"grace": timedelta(seconds=-1)}, "must not be negative"),
    ],
)
def test_bad_arguments(kwargs, words):
    args = {"policy": "run_all", "cap": 3, **kwargs}
    with pytest.raises(ValueError, match=words):
        plan_misfire(HOURLY, T0, T0 + hours(1), **args)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        plan_misfire(HOURLY, T0.replace(tzinfo=None), T0, "skip", 1)
