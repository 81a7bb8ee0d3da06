"""Freeze what survives each full garbage collection (desktop/core/gcpolicy.FreezePolicy).

A collection can run on any thread (the database thread allocates a lot), and gc callbacks run
in the middle of it, so the callback only notes that a full collection ended and the freeze
itself runs on the event loop.  For the headless console (and any Core on a plain loop): under
the window, automatic collection is off and the GUI thread's collector (desktop/ui/gc_guard.py)
is in charge, so the freezer stands aside.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from desktop.core.gcpolicy import FreezePolicy


class Freezer:
    def __init__(self, loop: asyncio.AbstractEventLoop, clock=time.monotonic) -> None:
        self.loop = loop
        self.clock = clock
        self.policy = FreezePolicy(clock())
        self.freezes = 0
        self.thaws = 0
        self._queued = False
        self._own = False  # our own collection right after a freeze: not another "after"

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def remove(self) -> None:
        """Stop; what was frozen goes back to the collector (a stopped Core in a process that
        goes on, as in tests, leaves no frozen garbage behind)."""
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self.freezes:
            gc.unfreeze()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info.get("generation") != 2 or self._queued or self._own:
            return
        if not gc.isenabled():
            # the window's own collector is in charge (desktop/ui/gc_guard.py): it counts
            # generation 2 itself, and a freeze behind its back would stop its full collections
            return
        self._queued = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do
            self.loop.call_soon_threadsafe(self.after_full)

    def after_full(self) -> None:
        self._queued = False
        if self.policy.after_full(self.clock()) == "thaw":
            gc.unfreeze()  # the next full collection scans (and frees) everything once
            self.thaws += 1
        else:
            gc.freeze()
            self.freezes += 1
            # Python times the next full collection by what generation 2 held after the last
            # one (a quarter more).  That was before the freeze: everything.  A collection of
            # the now empty generation costs nothing and makes that figure small, so the next
            # full collections come sooner, each scanning only what arrived since.
            self._own = True
            try:
                gc.collect(2)
            finally:
                self._own = False
