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


def test_a_storm_of_young_objects_is_frozen_while_its_samples_find_no_garbage():
    from desktop.core.gcpolicy import YoungPolicy

    young = YoungPolicy(storm_young=5000, sample_every=4, barren=0.01)
    assert young.choose(6000) == "collect"  # nothing known yet: collect and learn
    assert young.collected(6000, 10)  # 0.2 % freed: barren, freeze the survivors too
    assert [young.choose(6000) for _ in range(3)] == ["freeze"] * 3
    assert young.choose(6000) == "collect"  # one check in four samples again
    young.collected(6000, 0)
    assert young.choose(6000) == "freeze"


def test_garbage_in_the_sample_brings_the_collections_back():
    from desktop.core.gcpolicy import YoungPolicy

    young = YoungPolicy(storm_young=5000, sample_every=4, barren=0.01)
    young.collected(6000, 0)
    assert young.choose(6000) == "freeze"
    assert not young.collected(6000, 600)  # 10 % were cycles: not all long-lived
    assert [young.choose(6000) for _ in range(5)] == ["collect"] * 5


def test_a_quiet_period_is_collected_whatever_the_last_storm_found():
    from desktop.core.gcpolicy import YoungPolicy

    young = YoungPolicy(storm_young=5000, sample_every=4, barren=0.01)
    young.collected(6000, 0)
    assert young.choose(4999) == "collect"
    assert not young.collected(800, 0)  # a small collection says nothing about the next storm
    assert young.last_yield == 0.0 and young.choose(6000) == "freeze"
