"""Pace outgoing messages: at most ``rate`` per second, as a sliding one-second window.

The hub closes a worker that sends more than 2,000 messages in one second (a flood guard).  Live
output never gets near that (50 ms batches), but replaying a long spool after an outage would,
and the worker would then be refused, reconnect, replay, and be refused again forever.  Sending
at half the hub's limit leaves room for heartbeats and keeps replay steady.  Pure: time is
passed in.
"""

from __future__ import annotations

from collections import deque

DEFAULT_RATE = 1000


class RateLimit:
    def __init__(self, rate: int = DEFAULT_RATE) -> None:
        self.rate = rate
        self._sent: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next message may go (0 when it may go now)."""
        while self._sent and self._sent[0] <= now - 1.0:
            self._sent.popleft()
        if len(self._sent) < self.rate:
            return 0.0
        return self._sent[0] + 1.0 - now

    def sent(self, now: float) -> None:
        self._sent.append(now)
