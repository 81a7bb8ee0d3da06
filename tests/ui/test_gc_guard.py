"""The GUI thread's collector (desktop/ui/gc_guard.py): full collections by Python's rule, and
what survives one is frozen, then thawed once every THAW_EVERY so frozen cycles are freed."""

from __future__ import annotations

import gc
import weakref

from desktop.core.gcpolicy import THAW_EVERY
from desktop.ui.gc_guard import MainThreadGC


class Cycle:
    def __init__(self) -> None:
        self.me = self


def due_for_full(guard: MainThreadGC) -> None:
    """Make the counters say a full collection is due (automatic collection is off)."""
    guard.threshold = (0, 0, 0)
    due_for_full.older = [Cycle() for _ in range(10)]  # newcomers to generation 2
    gc.collect(1)  # a generation-1 collection counted (the generation-2 trigger)
    gc.collect(0)  # a generation-0 one (the generation-1 trigger)
    due_for_full.keep = Cycle()  # and an allocation since (the generation-0 trigger)


def test_a_full_collection_freezes_its_survivors_and_a_later_one_thaws_them():
    now = [0.0]
    guard = MainThreadGC(interval_ms=10**6, clock=lambda: now[0])
    try:
        gc.unfreeze()
        keep = [Cycle() for _ in range(1000)]
        guard.long_lived = 0
        due_for_full(guard)
        guard.check()
        assert guard.freezes == 1 and gc.get_freeze_count() >= 1000
        # nothing left to scan: the next full collections only see what came since
        assert guard.long_lived == len(gc.get_objects(2))

        garbage = Cycle()  # a cycle frozen below, then dropped: only a thaw can free it
        dropped = weakref.ref(garbage)
        due_for_full(guard)
        guard.check()
        frozen = gc.get_freeze_count()
        del garbage
        due_for_full(guard)
        guard.check()
        assert dropped() is not None  # frozen: full collections do not scan it
        now[0] = THAW_EVERY + 1
        due_for_full(guard)
        guard.check()
        # the thaw comes first: that full collection scans everything, then freezes again
        assert guard.thaws == 1 and dropped() is None
        assert guard.freezes == 4 and 0 < gc.get_freeze_count() < frozen + 100
        assert keep[0].me is keep[0]
    finally:
        guard.stop()


class Node:
    """A young container object that is not garbage (a connection's state, say)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


def test_a_storm_of_long_lived_young_objects_is_frozen_without_a_scan():
    guard = MainThreadGC(interval_ms=10**6)
    collections: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    try:
        gc.unfreeze()
        gc.collect()
        gc.callbacks.append(seen)
        alive: list[list[Node]] = []
        for _ in range(3):  # three checks' worth of survivors, as connections arrive
            alive.append([Node(i) for i in range(20_000)])
            guard.check()
        # the first check collects (and finds nothing: freezes the survivors), the next ones
        # freeze at once
        assert collections == [0]
        assert guard.young_freezes == 3
        frozen = gc.get_freeze_count()
        assert frozen >= 40_000
        # cycles come back: the sample every SAMPLE_EVERY checks sees them and collects again
        for _ in range(guard.young.sample_every):
            garbage = [Cycle() for _ in range(10_000)]
            del garbage
            guard.check()
        assert collections.count(0) + collections.count(1) >= 2
        assert guard.young.last_yield is not None and guard.young.last_yield > 0.1
        young_freezes = guard.young_freezes
        garbage = [Cycle() for _ in range(10_000)]
        del garbage
        guard.check()
        assert guard.young_freezes == young_freezes  # collected, not frozen
        assert len(alive) == 3
    finally:
        gc.callbacks.remove(seen)
        guard.stop()


def test_a_quiet_console_is_collected_as_before():
    guard = MainThreadGC(interval_ms=10**6)
    try:
        gc.unfreeze()
        gc.collect()
        guard.young.collected(10_000, 0)  # the last storm's sample was barren
        garbage = [Cycle() for _ in range(1000)]  # few young objects: not a storm
        del garbage
        before = gc.get_freeze_count()
        guard.check()
        assert guard.young_freezes == 0 and gc.get_freeze_count() == before
    finally:
        guard.stop()


def test_a_cycle_frozen_in_a_storm_is_freed_by_the_thaw_while_the_storm_goes_on():
    # A worker's connection frozen during a storm, closed later: its cycles wait for the thaw.
    # The thaw must not be undone by the storm's next young freeze before anything scanned
    # what was thawed (a console under endless reconnects would never free them).
    now = [0.0]
    guard = MainThreadGC(interval_ms=10**6, clock=lambda: now[0])
    threshold = guard.threshold
    try:
        gc.unfreeze()
        gc.collect()
        garbage = Cycle()
        dropped = weakref.ref(garbage)
        alive: list[list[Node]] = [[Node(i) for i in range(20_000)]]
        guard.check()  # barren: the storm's survivors (the cycle too) are frozen
        assert guard.young_freezes == 1 and gc.get_freeze_count() >= 20_000
        del garbage  # the connection closed
        for step in range(1, 4):  # three thaws, the storm never stopping
            now[0] = step * (THAW_EVERY + 1)
            due_for_full(guard)
            guard.check()
            assert guard.thaws == step
            guard.threshold = threshold
            for _ in range(3):
                alive.append([Node(i) for i in range(20_000)])
                guard.check()
        assert dropped() is None
    finally:
        guard.stop()
