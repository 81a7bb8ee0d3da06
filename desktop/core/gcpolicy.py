"""Which generation the GUI thread's collector (desktop/ui/gc_guard.py) collects now (pure).

Python's own automatic collection does a full (generation 2) collection only when the objects
that reached generation 2 since the last full one are more than a quarter of those it held after
it (CPython's gcmodule.c, ``long_lived_pending > long_lived_total / 4``): a full collection
scans every tracked object, so without that rule a program holding many long-lived objects pays
a long pause again and again for nothing.  The guard replaced the automatic collection and
collected generation 2 every tenth generation-1 collection, without the rule: with 5,000
connected workers (a million objects or so) each full collection held the Qt thread for
hundreds of milliseconds, several times a second during a reconnect storm.
"""

from __future__ import annotations


def collect_level(
    counts: tuple[int, int, int],
    threshold: tuple[int, int, int],
    generation2: int,
    long_lived: int,
) -> int | None:
    """The generation to collect (None: nothing yet).  ``counts`` and ``threshold`` are
    gc.get_count() and gc.get_threshold(); ``generation2`` the objects now in generation 2 and
    ``long_lived`` those it held after the last full collection (only read when a full
    collection is in question)."""
    if counts[0] <= threshold[0]:
        return None
    if counts[1] <= threshold[1]:
        return 0
    if counts[2] <= threshold[2]:
        return 1
    pending = generation2 - long_lived
    return 2 if pending > long_lived // 4 else 1


THAW_EVERY = 600.0  # seconds between full collections that scan the frozen objects too


class FreezePolicy:
    """What to do after each full collection (pure; time is passed in).

    A console holding 10,000 connections holds a million or so long-lived objects, and every
    full collection scanned them all: 340-650 ms with the loop stopped, every 15 s or so under
    10,000 workers' heartbeats (measured; it was the dispatch's p99 at 10,000 workers).  What
    survives a full collection is frozen (``gc.freeze``: later collections skip it), so the next
    full ones scan only what came since.  The price: a reference cycle among frozen objects
    that becomes garbage (a connection closed later) is not freed until they are thawed, so once
    every THAW_EVERY the objects are thawed and the next full collection scans everything."""

    def __init__(self, now: float, thaw_every: float = THAW_EVERY) -> None:
        self.thaw_every = thaw_every
        self.thawed_at = now

    def after_full(self, now: float) -> str:
        """``"freeze"`` or ``"thaw"``."""
        if now - self.thawed_at >= self.thaw_every:
            self.thawed_at = now
            return "thaw"
        return "freeze"


STORM_YOUNG = 2_000  # young objects per check (100 ms) from which the young policy may freeze
SAMPLE_EVERY = 10  # in a storm, one check in this many still collects: is it still barren?
BARREN = 0.01  # a collection freeing less than this share of what it scanned found nothing


class YoungPolicy:
    """Collect the young generation, or freeze it unscanned (pure).

    Measured during a 5,000-worker reconnect storm (tests/benchmarks/storm_gui.py): 100-170
    young collections and 9-13 generation-1 collections on the GUI thread, 4-7 s in all with
    the interpreter lock held (the Core's thread stopped meanwhile), and every one of them
    freed nothing: what the storm allocates is the connections' state, alive until they close.
    Scanning it again and again finds no garbage, so while young objects arrive by the
    thousand and the last sample found none, they are frozen as they are (``gc.freeze``: no
    scan; the frozen are skipped by later collections) and only one check in SAMPLE_EVERY
    collects, to notice when garbage comes back (and, if it found none, freezes what it
    scanned).  Quiet periods (few young objects) are collected as always.  A cycle frozen this
    way and dropped later waits for the next thaw (FreezePolicy), like the survivors of a full
    collection."""

    def __init__(
        self,
        storm_young: int = STORM_YOUNG,
        sample_every: int = SAMPLE_EVERY,
        barren: float = BARREN,
    ) -> None:
        self.storm_young = storm_young
        self.sample_every = sample_every
        self.barren = barren
        self.last_yield: float | None = None  # share freed by the last large collection
        self.since_sample = 0

    def choose(self, young: int) -> str:
        """``"collect"`` or ``"freeze"`` for ``young`` objects (gc.get_count()[0])."""
        if young < self.storm_young:
            return "collect"
        if self.last_yield is None or self.last_yield >= self.barren:
            return "collect"
        if self.since_sample + 1 >= self.sample_every:
            return "collect"
        self.since_sample += 1
        return "freeze"

    def collected(self, young: int, freed: int) -> bool:
        """A collection of ``young`` objects freed ``freed`` (what gc.collect returned).  True
        when it was a storm's and found (almost) nothing: freeze its survivors too, or the
        next generation-1 collections scan them again (up to 500 ms each, measured)."""
        if young < self.storm_young:
            return False  # a small sample says little; a quiet period collects anyway
        self.last_yield = freed / young
        self.since_sample = 0
        return self.last_yield < self.barren
