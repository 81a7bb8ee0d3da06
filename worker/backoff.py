"""Reconnect delays: jittered exponential backoff, capped, reset after a good connection."""

from __future__ import annotations

import random
import re


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

    def busy_delay(self, exc: BaseException) -> float | None:
        """The wait a busy console asked for, or None when ``exc`` is not that answer.

        In a reconnect storm the console caps the workers logging in at once and answers the
        others' opening handshake with HTTP 503 and a Retry-After in seconds: an appointment,
        spread over the time it needs for those ahead (desktop/hub/admission.py).  Keeping it,
        plus up to a second so those given the same second do not come back in lockstep, beats
        the backoff, which would bring them back sooner, to be refused again.  A console cannot
        hold a worker away longer than BUSY_MAX with it (it could simply not answer)."""
        response = getattr(exc, "response", None)  # websockets' InvalidStatus
        if getattr(response, "status_code", None) != 503:
            return None
        raw = str(response.headers.get("Retry-After", "")).strip()  # type: ignore[union-attr]
        # ASCII digits only: headers are read as Latin-1, and "²" passes str.isdigit() but
        # not float(); an exception here would end the worker's connection loop
        if not re.fullmatch(r"[0-9]{1,6}", raw):
            return None  # an HTTP date or garbage: the usual backoff
        return min(BUSY_MAX, max(1.0, float(raw))) + self.rng.random()


BUSY_MAX = 60.0  # seconds, the most a console's Retry-After is believed
