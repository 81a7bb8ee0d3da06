"""Retry backoff maths and the retry decision."""

import math

import pytest

from desktop.core import runs
from desktop.core.policies import jittered, retry_delay, should_retry


def test_exponential_backoff_capped():
    delays = [retry_delay(a, 60, 2.0, 3600) for a in range(1, 9)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_fixed_delay_with_factor_one():
    assert [retry_delay(a, 30, 1.0, 3600) for a in (1, 2, 50)] == [30, 30, 30]


def test_max_below_base_wins():
    assert retry_delay(1, 600, 2.0, 60) == 60


def test_zero_base_means_retry_at_once():
    assert retry_delay(7, 0, 3.0, 100) == 0


def test_huge_attempts_do_not_overflow():
    assert retry_delay(100_000, 1, 10.0, 86400) == 86400
    assert math.isclose(retry_delay(1025, 1e-300, 2.0, 1e300), 1e-300 * 2.0**1000 * 2.0**24)


def test_fractional_values():
    assert math.isclose(retry_delay(3, 1.5, 1.5, 100), 3.375)


@pytest.mark.parametrize(
    "args",
    [
        (0, 60, 2, 3600),
        (True, 60, 2, 3600),
        (1.0, 60, 2, 3600),
        (1, -1, 2, 3600),
        (1, 60, 0.5, 3600),
        (1, 60, float("nan"), 3600),
        (1, 60, 2, float("inf")),
        (1, 60, 2, -5),
    ],
)
def test_bad_arguments_are_refused(args):
    with pytest.raises(ValueError):
        retry_delay(*args)


def test_jitter_spreads_both_ways_and_never_goes_negative():
    assert jittered(100, 0.2, 0.0) == 80
    assert jittered(100, 0.2, 0.5) == 100
    assert math.isclose(jittered(100, 0.2, 0.999999), 120, rel_tol=1e-5)
    assert jittered(100, 1.0, 0.0) == 0
    with pytest.raises(ValueError):
        jittered(100, 1.5, 0.5)
    with pytest.raises(ValueError):
        jittered(100, 0.1, 1.0)


@pytest.mark.parametrize(
    ("outcome", "attempt", "max_retries", "expected"),
    [
        (runs.FAILED, 1, 2, True),
        (runs.TIMED_OUT, 2, 2, True),
        (runs.LOST, 3, 2, False),  # two retries used: attempts 2 and 3
        (runs.FAILED, 1, 0, False),  # retries off
        (runs.SUCCEEDED, 1, 5, False),
        (runs.CANCELLED, 1, 5, False),  # stopped on purpose
    ],
)
def test_should_retry(outcome, attempt, max_retries, expected):
    assert should_retry(outcome, attempt, max_retries) is expected
