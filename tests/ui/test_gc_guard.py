"""The GUI thread's collector (desktop/ui/gc_guard.py): full collections by Python's rule, and
what survives one is frozen, then thawed once every THAW_EVERY so frozen cycles are freed."""

from __future__ import annotations

import gc

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
        due_for_full(guard)
        guard.check()
        frozen = gc.get_freeze_count()
        del garbage
        now[0] = THAW_EVERY + 1
        due_for_full(guard)
        guard.check()
        assert guard.thaws == 1 and gc.get_freeze_count() == 0
        # the full collection after the thaw scans everything (and freezes again)
        due_for_full(guard)
        guard.check()
        assert guard.freezes == 3 and 0 < gc.get_freeze_count() < frozen + 100
        assert keep[0].me is keep[0]
    finally:
        guard.stop()
