"""Run Python's cycle collector on the GUI thread only.

The database executor's thread (and the Core's own thread, desktop/service/corethread.py)
allocates a lot; if the collector ran there, it could free a Qt object caught in a reference
cycle (a dialog and a lambda that names it) from the wrong thread, and Qt crashes on that (seen
here as a segfault in the DB thread).  So automatic collection is switched off and a timer on the
GUI thread collects instead, generation by generation, as the thresholds say (the usual recipe
for Python Qt applications), with Python's own rule for full collections
(desktop/core/gcpolicy.py).

What survives a full collection is frozen (gcpolicy.FreezePolicy, as the headless console's
desktop/service/gcfreeze.py does): with thousands of connected workers, a million long-lived
objects, each full collection otherwise scanned them all with the window stopped.  During a
reconnect storm the young objects (the new connections' state) are frozen unscanned while the
collections find no garbage in them (gcpolicy.YoungPolicy): each collection holds the
interpreter lock, so the Core's thread, busy welcoming the workers, stopped with the window.
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QObject, QTimer

from desktop.core.gcpolicy import FreezePolicy, YoungPolicy, collect_level

INTERVAL_MS = 100  # often enough that each collection has little to scan


class MainThreadGC(QObject):
    def __init__(
        self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS, clock=time.monotonic
    ) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.was_enabled = gc.isenabled()
        gc.disable()
        self.clock = clock
        self.policy = FreezePolicy(clock())
        self.young = YoungPolicy()
        self.young_freezes = 0  # young generations frozen unscanned (a storm)
        self.freezes = 0
        self.thaws = 0
        self.long_lived = len(gc.get_objects(2))  # after the last full collection
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        counts = gc.get_count()
        if counts[0] <= self.threshold[0]:
            return
        if self.young.choose(counts[0]) == "freeze":
            gc.freeze()  # every generation: what a full collection would scan next is frozen
            self.young_freezes += 1
            self.long_lived = 0
            return
        # generation 2's size is read only when a full collection is in question (a list of
        # every object there: a few ms for a million, against a scan of them all)
        full = counts[1] > self.threshold[1] and counts[2] > self.threshold[2]
        size = len(gc.get_objects(2)) if full else 0
        level = collect_level(counts, self.threshold, size, self.long_lived)
        if level is None:
            return
        # A thaw comes before its full collection, which then scans everything: thawed after
        # it, the storm's next young freeze re-froze what was thawed before any collection saw
        # it, and the cycles frozen in a storm that never ends were never freed.
        if level == 2 and self.policy.after_full(self.clock()) == "thaw":
            gc.unfreeze()
            self.thaws += 1
        freed = gc.collect(level)
        barren = self.young.collected(counts[0], freed)
        if level == 2:
            self._after_full()
        elif barren:  # a storm's long-lived objects: not to be scanned again by generation 1
            gc.freeze()
            self.young_freezes += 1
            self.long_lived = 0

    def _after_full(self) -> None:
        # what survived the full collection (everything, right after a thaw) is frozen
        gc.freeze()
        self.freezes += 1
        self.long_lived = len(gc.get_objects(2))  # empty: later full ones scan only newcomers

    def settle(self) -> None:
        """After start-up (10,000 job rows, the widgets): collect the young generations (what
        the window's load made) and freeze what is left, so later collections skip these
        long-lived objects instead of scanning them for 50-80 ms in the middle of a flood
        (measured).  Not a full collection: the Core has been listening meanwhile, and under a
        reconnect storm a full one scanned its connections too, 0.2-2 s with the lock held
        (5,000 workers); cycles among the older objects wait for the first thaw."""
        gc.collect(1)
        gc.freeze()
        self.long_lived = len(gc.get_objects(2))

    def stop(self) -> None:
        self.timer.stop()
        gc.unfreeze()
        gc.collect()
        if self.was_enabled:
            gc.enable()
