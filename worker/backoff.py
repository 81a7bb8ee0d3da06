"""Reconnect delays: jittered exponential backoff, capped, reset after a good connection."""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self, first: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        """Full jitter between half and all of the exponential step, so a fleet of workers that
        lost the hub together does not reconnect in lockstep."""
        step = min(self.cap, self.first * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)  # keep 2**attempt small
        return self.rng.uniform(step / 2, step)

    def reset(self) -> None:
        self.attempt = 0
