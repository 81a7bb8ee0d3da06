"""Slow down repeated failed logins from one address (pure; time is passed in).

Each failure doubles the wait before the next answer from that address (0.25 s, 0.5 s, ... up
to ``max_delay``); past ``block_after`` failures within ``window`` seconds the address is
refused outright until the window passes.  A success clears the address.  Guessing a 256-bit
token is hopeless anyway; this keeps a misconfigured worker fleet from hammering the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AuthThrottle:
    base_delay: float = 0.25
    max_delay: float = 5.0
    block_after: int = 20
    window: float = 300.0
    max_addresses: int = 10_000
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(address, []) if now - t < self.window]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times

    def delay(self, address: str, now: float) -> float:
        """Seconds to wait before answering a login from ``address``."""
        n = len(self._recent(address, now))
        if n == 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (n - 1))

    def blocked(self, address: str, now: float) -> bool:
        return len(self._recent(address, now)) >= self.block_after

    def failed(self, address: str, now: float) -> None:
        if len(self._failures) >= self.max_addresses and address not in self._failures:
            # memory stays bounded under a spray of addresses: forget the stalest one
            oldest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[oldest]
        self._recent(address, now)
        self._failures.setdefault(address, []).append(now)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
