"""The GUI thread collector's choice of generation (desktop/core/gcpolicy.py)."""

from __future__ import annotations

from desktop.core.gcpolicy import collect_level

T = (700, 10, 10)


def test_below_the_first_threshold_nothing_is_collected():
    assert collect_level((700, 0, 0), T, 0, 0) is None


def test_young_generations_follow_the_thresholds():
    assert collect_level((701, 3, 0), T, 0, 0) == 0
    assert collect_level((701, 11, 3), T, 0, 0) == 1


def test_a_full_collection_waits_until_generation_2_grew_by_a_quarter():
    # a million long-lived objects (5,000 connected workers): 100,000 new ones are not enough
    assert collect_level((701, 11, 11), T, 1_100_000, 1_000_000) == 1
    assert collect_level((701, 11, 11), T, 1_250_000, 1_000_000) == 1
    assert collect_level((701, 11, 11), T, 1_250_001, 1_000_000) == 2


def test_a_small_heap_is_collected_fully_as_before():
    assert collect_level((701, 11, 11), T, 5, 0) == 2
    assert collect_level((701, 11, 11), T, 130, 100) == 2


def test_freeze_after_each_full_collection_and_thaw_now_and_then():
    from desktop.core.gcpolicy import FreezePolicy

    policy = FreezePolicy(now=1000.0, thaw_every=3600.0)
    assert policy.after_full(1001.0) == "freeze"
    assert policy.after_full(4599.0) == "freeze"
    assert policy.after_full(4600.0) == "thaw"  # the frozen cycles get their collection
    assert policy.after_full(4601.0) == "freeze"
    assert policy.after_full(8199.0) == "freeze"
    assert policy.after_full(8200.0) == "thaw"
