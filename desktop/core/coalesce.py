"""When to run a refresh that many events ask for: at most one at a time, at most one start per
``min_interval`` seconds, and never one lost (pure; time is passed in).

A reconnect storm brings thousands of "worker online" events a second.  Re-reading the worker
table for each frame of them (every 30 ms) queued full reads behind one another on the one
database thread, ahead of the logins themselves, and rebuilt the table on the Qt thread each
time.  With this gate a quiet console still reacts to a lone event at once (the first request
after a quiet spell runs without delay); a burst gets one refresh now and one per
``min_interval`` while it lasts; and a request that arrives while a refresh runs gets a refresh
after it (the running one may have read the state before that change).
"""

from __future__ import annotations


class Coalescer:
    def __init__(self, min_interval: float) -> None:
        self.min_interval = min_interval
        self.scheduled = False  # a run is planned (its timer is pending)
        self.running = False
        self.dirty = False  # asked for since the last run started
        self.last_start = float("-inf")

    def _delay(self, now: float) -> float:
        return max(0.0, self.last_start + self.min_interval - now)

    def request(self, now: float) -> float | None:
        """Something changed: seconds until the caller should run, or None when a run is
        already planned or running (it will be followed by one that sees this change)."""
        self.dirty = True
        if self.scheduled or self.running:
            return None
        self.scheduled = True
        return self._delay(now)

    def start(self, now: float) -> None:
        """The planned run starts: what was asked for until now is what it reads."""
        self.scheduled = False
        self.running = True
        self.dirty = False
        self.last_start = now

    def cancel(self) -> None:
        """The planned run was dropped (nothing to refresh yet): the next request plans one."""
        self.scheduled = False

    def finish(self, now: float) -> float | None:
        """The run ended (done or failed): seconds until the next one when something was asked
        for meanwhile, else None."""
        self.running = False
        if not self.dirty:
            return None
        self.scheduled = True
        return self._delay(now)
