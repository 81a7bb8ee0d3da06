"""The freezer acts after real full collections, on the loop, and thaws when told to."""

from __future__ import annotations

import asyncio
import gc

import pytest

from desktop.service.gcfreeze import Freezer

pytestmark = pytest.mark.asyncio


class Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_a_full_collection_freezes_its_survivors_and_a_thaw_frees_frozen_cycles():
    clock = [0.0]
    freezer = Freezer(asyncio.get_running_loop(), clock=lambda: clock[0])
    freezer.install()
    try:
        gc.unfreeze()
        kept = [Cycle() for _ in range(100)]
        gc.collect()  # a full collection: the callback queues the freeze on the loop
        await asyncio.sleep(0)
        assert freezer.freezes == 1 and gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()

        gc.collect(1)  # young collections are not the freezer's business
        await asyncio.sleep(0)
        assert freezer.freezes == 1

        # a frozen cycle that becomes garbage is not collected while frozen ...
        kept.clear()
        gc.collect()
        await asyncio.sleep(0)
        assert freezer.freezes == 2
        assert gc.get_freeze_count() >= frozen  # the 100 cycles are still held there

        # ... until the periodic thaw, after which a full collection frees them
        clock[0] = 600.0
        gc.collect()
        await asyncio.sleep(0)
        assert freezer.thaws == 1 and gc.get_freeze_count() == 0
        before = sum(1 for o in gc.get_objects() if isinstance(o, Cycle))
        gc.collect()
        after = sum(1 for o in gc.get_objects() if isinstance(o, Cycle))
        assert before >= 100 and after == 0
    finally:
        freezer.remove()
        gc.unfreeze()


async def test_a_removed_freezer_does_nothing():
    freezer = Freezer(asyncio.get_running_loop())
    freezer.install()
    freezer.remove()
    gc.unfreeze()
    gc.collect()
    await asyncio.sleep(0)
    assert freezer.freezes == 0 and gc.get_freeze_count() == 0


async def test_the_freezer_stands_aside_when_the_window_runs_the_collector():
    freezer = Freezer(asyncio.get_running_loop())
    freezer.install()
    gc.disable()  # as desktop/ui/gc_guard.py does
    try:
        gc.unfreeze()
        gc.collect()
        await asyncio.sleep(0)
        assert freezer.freezes == 0 and gc.get_freeze_count() == 0
    finally:
        gc.enable()
        freezer.remove()
        gc.unfreeze()
