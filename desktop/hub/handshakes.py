"""How many TCP connections one address may have in the WebSocket opening handshake (the HTTP
upgrade), before the hub's own per-address limit on connections waiting for a welcome applies.

Without it a peer without a token could open connections and send the upgrade request a byte
at a time (slow-loris): each is held for websockets' ``open_timeout`` (10 s), and enough of them
use up the console's file descriptors, so workers and even the database cannot be opened.  At
the limit the *oldest* handshaking connection of that address is dropped, not the new one: an
address is shared (a NAT), a real worker completes its upgrade in one round trip, and refusing
newcomers would let the holder of the old ones lock it out.  Pure bookkeeping: the server calls
it from the connection's ``connection_made``/``connection_lost`` and when the handler starts.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

MAX_HANDSHAKING = 16  # per remote address

C = TypeVar("C", bound=Hashable)


class HandshakeGate(Generic[C]):
    def __init__(self, limit: int = MAX_HANDSHAKING) -> None:
        self.limit = limit
        self._by_address: dict[str, dict[C, None]] = {}  # insertion ordered: oldest first
        self._address: dict[C, str] = {}

    def opened(self, address: str, conn: C) -> C | None:
        """A new TCP connection; returns the connection to drop to make room, if any."""
        waiting = self._by_address.setdefault(address, {})
        waiting[conn] = None
        self._address[conn] = address
        if len(waiting) <= self.limit:
            return None
        oldest = next(iter(waiting))
        self.done(oldest)
        return oldest

    def done(self, conn: C) -> None:
        """Upgraded (the hub's limits take over) or closed; unknown connections are ignored."""
        address = self._address.pop(conn, None)
        if address is None:
            return
        waiting = self._by_address[address]
        waiting.pop(conn, None)
        if not waiting:
            del self._by_address[address]

    def handshaking(self, address: str) -> int:
        return len(self._by_address.get(address, ()))
