"""Slow down failed logins without ever turning the slow-down on the worker it protects (pure;
time is passed in).

Failures are counted twice: per source address (one noisy host) and per worker name (many hosts
guessing one name).  The counts never stop a check: every ``hello`` has its token checked, and a
correct token is welcomed at once whatever either count says, so nobody can lock a worker out by
sending wrong tokens in its name or from its address (NAT, a shared host).  What a count does is
hold the *refusal*: a failure is answered only after ``refusal_delay`` (0.25 s, 0.5 s, ... up to
``max_delay``, from the larger of the two counts), and past ``block_after`` recent failures the
refusal says ``too_many_failures`` instead of why, so a guesser learns nothing more (not even
whether the name exists).  A 256-bit token cannot be guessed at any rate a hub can answer; the
throttle's job is to make a guessing or misconfigured fleet cheap to serve and quiet in the log.

Refusals are logged as warnings at most ``warnings_per_minute`` times a minute, however many
arrive (a misconfigured worker retrying each minute is always seen; a flood is summed up, the
rest goes to debug).

Memory is bounded: each table keeps at most ``max_keys`` keys (the one that failed longest ago
is forgotten first) and at most ``block_after`` times per key, so cycling addresses or names
costs the hub a fixed amount.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field


class _Counts:
    """Recent failure times per key, least recently failed first."""

    def __init__(self, max_keys: int, keep: int) -> None:
        self.max_keys = max_keys
        self.keep = keep
        self.times: OrderedDict[str, deque[float]] = OrderedDict()

    def recent(self, key: str, now: float, window: float) -> int:
        times = self.times.get(key)
        if times is None:
            return 0
        while times and now - times[0] >= window:
            times.popleft()
        if not times:
            del self.times[key]
            return 0
        return len(times)

    def add(self, key: str, now: float) -> None:
        times = self.times.get(key)
        if times is None:
            if len(self.times) >= self.max_keys:
                self.times.popitem(last=False)
            times = self.times[key] = deque(maxlen=self.keep)
        else:
            self.times.move_to_end(key)
        times.append(now)

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class AuthThrottle:
    base_delay: float = 0.25
    max_delay: float = 5.0
    block_after: int = 20
    window: float = 300.0
    max_keys: int = 10_000
    warnings_per_minute: int = 10
    _by_address: _Counts = field(init=False, repr=False)
    _by_name: _Counts = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_address = _Counts(self.max_keys, self.block_after)
        self._by_name = _Counts(self.max_keys, self.block_after)
        self._minute_start = float("-inf")
        self._warned = 0
        self._held_back = 0

    def failures(self, address: str, name: str, now: float) -> int:
        """Recent failures that concern this login: the larger of its address's and name's."""
        return max(
            self._by_address.recent(address, now, self.window),
            self._by_name.recent(name, now, self.window),
        )

    def refusal_delay(self, address: str, name: str, now: float) -> float:
        """Seconds to hold the refusal of a failed login (a correct one is never held)."""
        n = self.failures(address, name, now)
        if n == 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (n - 1))

    def blocked(self, address: str, name: str, now: float) -> bool:
        """True when a failed login is refused as ``too_many_failures`` rather than why."""
        return self.failures(address, name, now) >= self.block_after

    def failed(self, address: str, name: str, now: float) -> int:
        """Count a failure; returns the login's recent failures including this one."""
        self._by_address.add(address, now)
        self._by_name.add(name, now)
        return self.failures(address, name, now)

    def warn(self, now: float) -> tuple[bool, int]:
        """Whether to log this refusal as a warning, and how many refusals were not warned
        about since the last one that was."""
        if now - self._minute_start >= 60.0:
            self._minute_start, self._warned = now, 0
        if self._warned < self.warnings_per_minute:
            self._warned += 1
            held_back, self._held_back = self._held_back, 0
            return True, held_back
        self._held_back += 1
        return False, 0

    def sizes(self) -> tuple[int, int]:
        """Keys held (addresses, names): for tests and diagnostics."""
        return len(self._by_address), len(self._by_name)
