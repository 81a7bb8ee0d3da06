"""Which secret values to mask in each run's output, and what each stream holds back.

The scheduler tells the hub a run's values when it builds the dispatch (``remember``); after a
console restart they are read from the store the first time the run's output arrives
(``commit._outputs`` asks ``missing``).  Masking happens in the commit, before the output is
stored and before it is published to the live log pane.

The held-back text of a stream (the end of a frame that could be the start of a secret,
desktop/core/masking.py) changes only when a commit succeeds: a batch that is rolled back and
retried (commit_isolated) must feed the same text again from the same state.  What is held
when the console stops is lost (at most the longest secret's length less one character, and
only when a frame ended with the start of a secret): README, "Secrets".

Called from the event loop (remember, forget) and the database thread (the commit): a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from desktop.core.masking import Masker

StreamKey = tuple[int, str]  # (run id, "stdout" | "stderr")


class RunMasks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._maskers: dict[int, Masker] = {}
        self._held: dict[StreamKey, tuple[str, int]] = {}  # -> (held text, seq of last chunk)

    def remember(self, run_id: int, values: Iterable[str]) -> None:
        with self._lock:
            self._maskers[run_id] = Masker(values)

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._maskers.pop(run_id, None)
            for key in [k for k in self._held if k[0] == run_id]:
                del self._held[key]

    def missing(self, run_ids: Iterable[int]) -> list[int]:
        with self._lock:
            return [r for r in set(run_ids) if r not in self._maskers]

    def masker(self, run_id: int) -> Masker:
        with self._lock:
            return self._maskers.get(run_id) or Masker(())

    def held(self, key: StreamKey) -> tuple[str, int]:
        with self._lock:
            return self._held.get(key, ("", 0))

    def held_of_run(self, run_id: int) -> dict[StreamKey, tuple[str, int]]:
        with self._lock:
            return {k: v for k, v in self._held.items() if k[0] == run_id}

    def apply(self, held: dict[StreamKey, tuple[str, int]], learned: dict[int, Masker]) -> None:
        """After a commit: the new held texts, and maskers read from the store."""
        with self._lock:
            for run_id, masker in learned.items():
                self._maskers.setdefault(run_id, masker)
            for key, value in held.items():
                if value[0]:
                    self._held[key] = value
                else:
                    self._held.pop(key, None)
