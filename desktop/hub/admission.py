"""How many workers may be logging in at once, and when the others should come back (pure).

In a reconnect storm (a console restart with 10,000 workers) every worker connects within a
second or two.  A login costs the hub about a millisecond of CPU, so the last ones served first
come, first served wait longer than a worker waits for its welcome (WELCOME_TIMEOUT, 15 s); they
give up and come back to queue again, and on a slow or busy machine the hub spends its time on
logins nobody waits for any more.  So the logins in progress (accepted, not yet welcomed or
closed) are capped at what the hub can finish within TARGET_WAIT (a third of the worker's wait)
at the rate it has shown; measured here, a storm of 3,000 never reaches the cap, one of 10,000
on a slow machine does.  A connection over the cap is answered at its opening handshake, before any
WebSocket, hello or database work, with HTTP 503 and a Retry-After: an appointment.
Appointments are handed out one after the other at the rate the hub has been welcoming workers,
after the time it needs for the logins already in progress, so the refused workers come back
spread out, about when there is room for them, instead of all at once.

The cap counts at most PER_ADDRESS logins of one remote address: otherwise a peer with a few
dozen addresses could keep it full with connections that never say hello (each address may hold
24 until the hello deadline closes them) and send every real worker away.  A storm comes from
many hosts, one worker each, so it is counted in full; workers behind one NAT are bounded by the
per-address limits instead (handshakes.py, server.py).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

TARGET_WAIT = 5.0  # seconds a login may wait for its welcome: a third of WELCOME_TIMEOUT
MIN_CAP = 1000  # logins at once, whatever the measured rate
MIN_SAMPLES = 500  # welcomes in the window before the measured rate sets the cap
RATE_WINDOW = 5.0  # seconds of welcomes the rate is measured over
# The rate appointments are planned at, at the least (welcomes/s; a 2-core machine does about
# 700-1,500).  Planned on the high side on purpose: a worker sent back too soon is refused again
# at the cost of an HTTP answer and given a later appointment, one sent back too late leaves the
# hub idle.  The measured rate counts only above it: at the start of a storm the welcomes are
# still few (the first logins are in progress), and planning at that rate sent 2,000 workers
# of a 3,000-worker storm away for up to 40 s (measured).  Simulated in
# tests/hub/test_admission.py: a hub three times slower than this still finishes in its work's
# time.
FLOOR_RATE = 1000.0
MAX_RETRY_AFTER = 60  # seconds; the worker caps what it accepts at the same figure
PER_ADDRESS = 2  # logins of one address that count against the cap

K = TypeVar("K", bound=Hashable)


class Admission(Generic[K]):
    def __init__(self, limit: int | None = None, per_address: int = PER_ADDRESS) -> None:
        self.limit = limit  # a fixed cap (tests); None: TARGET_WAIT at the measured rate
        self.per_address = per_address
        self._in_progress: dict[K, str] = {}  # login -> its remote address
        self._by_address: dict[str, int] = {}
        self._counted = 0  # sum over addresses of min(their logins, per_address)
        self._welcomes: deque[float] = deque()  # when the last RATE_WINDOW's welcomes happened
        self._next_slot = 0.0  # the next free appointment (loop time)
        # the appointment each address waiting was given, in the order given (so in time order)
        self._appointments: dict[str, float] = {}
        self._pruned_at = 0.0
        self.refused = 0  # since start, for the log and tests

    @property
    def in_progress(self) -> int:
        return len(self._in_progress)

    def admit(self, key: K, address: str, now: float) -> int | None:
        """A new connection: None when it may log in now (it counts until ``done``), else the
        seconds after which it should come back (Retry-After)."""
        held = self._by_address.get(address, 0)
        if self._counted < self.cap(now) or held >= self.per_address:
            # under the cap, or this address already counts in full (its further logins cost
            # the cap nothing: the per-address limits bound them)
            self._in_progress[key] = address
            self._by_address[address] = held + 1
            if held < self.per_address:
                self._counted += 1
            return None
        self.refused += 1
        self._forget_appointments(now)
        slot = self._appointments.get(address)
        if slot is None:
            rate = self.rate(now)
            # the logins in progress first, then every appointment already given; never past
            # the longest wait one can be given (asked again and again, the slots would run away)
            slot = min(max(self._next_slot, now + self._counted / rate), now + MAX_RETRY_AFTER)
            self._next_slot = slot + 1.0 / rate
            # an address asking again before its time gets the same one, not the next free one:
            # one peer's retries cannot push everyone else's appointment back
            self._appointments[address] = slot
        return max(1, min(MAX_RETRY_AFTER, math.ceil(slot - now)))

    def _forget_appointments(self, now: float) -> None:
        """Drop the appointments that are due (the oldest first: they were given in order)."""
        while self._appointments:
            address, slot = next(iter(self._appointments.items()))
            if slot > now:
                return
            del self._appointments[address]

    def done(self, key: K, now: float, welcomed: bool) -> None:
        """The login ended (welcomed, refused or the connection closed); unknown keys and a
        second call are ignored."""
        address = self._in_progress.pop(key, None)
        if address is None:
            return
        held = self._by_address[address]
        if held <= self.per_address:
            self._counted -= 1
        if held == 1:
            del self._by_address[address]
        else:
            self._by_address[address] = held - 1
        if welcomed:
            self._welcomes.append(now)
            self._trim(now)

    def prune_due(self, now: float) -> bool:
        """Whether a look for logins whose connection closed unnoticed is due (once a second
        at most: it walks every login in progress)."""
        return now - self._pruned_at >= 1.0

    def prune(self, closed: Callable[[K], bool], now: float) -> int:
        """Release the logins for which ``closed(key)``; returns how many."""
        self._pruned_at = now
        gone = [key for key in self._in_progress if closed(key)]
        for key in gone:
            self.done(key, now, welcomed=False)
        return len(gone)

    def cap(self, now: float) -> int:
        """Logins that may be in progress at once (counted per address as in ``admit``)."""
        if self.limit is not None:
            return self.limit
        self._trim(now)
        if len(self._welcomes) < MIN_SAMPLES:
            # before the hub has shown its rate: the rate it is planned at
            return max(MIN_CAP, int(FLOOR_RATE * TARGET_WAIT))
        return max(MIN_CAP, int(self.measured(now) * TARGET_WAIT))

    def measured(self, now: float) -> float:
        """Welcomes per second over the last RATE_WINDOW (0 without any)."""
        self._trim(now)
        if not self._welcomes:
            return 0.0
        return len(self._welcomes) / max(now - self._welcomes[0], 1.0)

    def rate(self, now: float) -> float:
        """The rate appointments are planned at: the measured one, FLOOR_RATE at the least."""
        return max(FLOOR_RATE, self.measured(now))

    def _trim(self, now: float) -> None:
        while self._welcomes and self._welcomes[0] < now - RATE_WINDOW:
            self._welcomes.popleft()
