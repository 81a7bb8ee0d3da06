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

import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from websockets.asyncio.server import ServerConnection

from desktop.hub import session as s

if TYPE_CHECKING:
    from desktop.hub.connection import Conn

log = logging.getLogger(__name__)

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


def evictable(waiting: list[Conn]) -> Conn | None:
    """Which of an address's connections waiting for their welcome gives way to a new one:
    a failed login whose refusal is being held (it is refused anyway) before one that has not
    said hello, the oldest first; never one whose hello is being checked (a real worker)."""
    failed = [c for c in waiting if c.failed_login]
    silent = [c for c in waiting if not c.failed_login and c.session.state == s.AWAIT_HELLO]
    candidates = failed or silent
    return min(candidates, key=lambda c: c.session.opened) if candidates else None


def gated(
    gate: HandshakeGate[Any], lost: Callable[[ServerConnection], None] = lambda _c: None
) -> type[ServerConnection]:
    """websockets' connection, counted per address while its opening handshake runs; ``lost``
    hears of every connection that closed (also one that never finished its handshake)."""

    class GatedConnection(ServerConnection):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            dropped = gate.opened(str(peer[0]) if peer else "?", self)
            if dropped is not None:
                log.debug("dropped a connection still in its opening handshake to make room")
                dropped.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            gate.done(self)
            lost(self)
            super().connection_lost(exc)

    return GatedConnection
