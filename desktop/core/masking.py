"""Masking secret values in run output, as CI systems do: every occurrence becomes ``***``.

Output arrives in frames cut anywhere, so a secret can be split across two frames.  The
streaming form holds back the end of a frame while it could still be the start of a secret and
decides when the next frame (or the end of the run) comes.  Its state is a plain string, so the
caller can keep it with what it committed.

Pure: no I/O; tests/core/test_masking.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"


class Masker:
    """The secrets of one run."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if v}, key=len, reverse=True)
        # longest first: at one position the longest secret wins over a shorter one it starts with
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in self.values)) if self.values else None
        )
        self._longest = len(self.values[0]) if self.values else 0

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """TEXT with every secret replaced (a whole text: nothing held back)."""
        return self._pattern.sub(MASK, text) if self._pattern else text

    def feed(self, held: str, text: str) -> tuple[str, str]:
        """(what may be shown now, what to hold) for a frame TEXT following HELD."""
        if not self._pattern:
            return held + text, ""
        data = held + text
        cut = self._hold_from(data)
        return self.mask(data[:cut]), data[cut:]

    def flush(self, held: str) -> str:
        """The end of the stream: what was held, masked."""
        return self.mask(held)

    def _hold_from(self, data: str) -> int:
        """Where the held tail starts: the longest end of DATA that is the start of a secret
        (but not a whole one), and that no complete secret crosses."""
        n = len(data)
        if self._pattern is None:  # no secrets: nothing to hold (feed returns before this)
            return n
        spans = [(m.start(), m.end()) for m in self._pattern.finditer(data)]
        for p in range(max(0, n - self._longest + 1), n):
            tail = data[p:]
            if any(s < p < e for s, e in spans):
                continue
            if any(len(v) > len(tail) and v.startswith(tail) for v in self.values):
                return p
        return n
