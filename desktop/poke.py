"""A nudge from the CLI to a running console on the same machine: "look for changes now".

The console listens for UDP datagrams on 127.0.0.1 (a port of its own choosing, kept in the
store with its alive mark); the CLI sends one after a command changed the store.  Without it the
console would have to poll the store every second, which alone woke an idle console 5 times a
second; with it the poll is a 30 s fallback (a CLI on another machine, sharing a server
database, is noticed that way).

Any local process can send to a UDP port, so a nudge carries proof that its sender can read the
database: an HMAC-SHA256, under a random key the console stores next to the port at start, over
the send time and a random nonce.  The console checks the proof before doing anything, refuses
a time more than ``WINDOW`` seconds off (stale or captured datagrams) and a nonce it has already
seen (replays inside the window), and acts on at most one nudge per ``MIN_INTERVAL`` (a valid
nudge that comes sooner is deferred, never lost).  Those checks are pure (time is passed in).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAGIC = b"jtpoke1"
WINDOW = 10.0  # seconds a nudge's time may differ from the console's clock
MIN_INTERVAL = 0.1  # seconds between two nudges the console acts on
_STAMP = struct.Struct("!d16s")  # send time (Unix seconds), nonce
_MAC_BYTES = 32
SIZE = len(MAGIC) + _STAMP.size + _MAC_BYTES
MAX_NONCES = 4096  # replay memory; a full table refuses new nudges until entries expire


def new_key() -> str:
    """A fresh key, hex; the console stores it in the database's settings."""
    return secrets.token_hex(32)


def _mac(key: str, body: bytes) -> bytes:
    return hmac.new(bytes.fromhex(key), body, hashlib.sha256).digest()


def make(key: str, now: float, nonce: bytes | None = None) -> bytes:
    body = MAGIC + _STAMP.pack(now, nonce if nonce is not None else os.urandom(16))
    return body + _mac(key, body)


class Verifier:
    """Accepts each genuine, fresh nudge once (pure: ``now`` is passed in)."""

    def __init__(self, key: str, window: float = WINDOW, max_nonces: int = MAX_NONCES) -> None:
        self.key = key
        self.window = window
        self.max_nonces = max_nonces
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # nonce -> its send time

    def check(self, data: bytes, now: float) -> str | None:
        """None when the nudge is genuine and new; else why it is refused."""
        if len(data) != SIZE or not data.startswith(MAGIC):
            return "not a nudge"
        body, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, _mac(self.key, body)):
            return "bad proof"
        sent, nonce = _STAMP.unpack(body[len(MAGIC) :])
        if not abs(now - sent) <= self.window:  # also refuses NaN
            return "stale"
        while self._seen and next(iter(self._seen.values())) < now - 2 * self.window:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return "replayed"
        if len(self._seen) >= self.max_nonces:
            return "too many nudges"
        self._seen[nonce] = max(sent, next(reversed(self._seen.values()), sent))
        return None


class Pacer:
    """At most one action per ``interval``; returns how long to defer one (pure)."""

    def __init__(self, interval: float = MIN_INTERVAL) -> None:
        self.interval = interval
        self._last = float("-inf")

    def wait(self, now: float) -> float:
        due = self._last + self.interval
        if now >= due:
            self._last = now
            return 0.0
        self._last = due
        return due - now


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, on_poke: Callable[[], None], key: str) -> None:
        self.on_poke = on_poke
        self.verifier = Verifier(key)
        self.pacer = Pacer()
        self.refused = 0
        self._deferred: asyncio.TimerHandle | None = None
        self._warned_at = float("-inf")

    def datagram_received(self, data: bytes, addr) -> None:
        why = self.verifier.check(data, time.time())
        if why is not None:
            self.refused += 1
            now = time.monotonic()
            if now - self._warned_at >= 60:  # one line a minute, however many arrive
                self._warned_at = now
                log.warning(
                    "ignored a nudge datagram from %s: %s (%d refused so far)",
                    addr,
                    why,
                    self.refused,
                )
            return
        if self._deferred is not None:
            return  # one is already on its way
        delay = self.pacer.wait(time.monotonic())
        if delay:
            self._deferred = asyncio.get_running_loop().call_later(delay, self._fire)
        else:
            self.on_poke()

    def _fire(self) -> None:
        self._deferred = None
        self.on_poke()

    def connection_lost(self, exc) -> None:
        if self._deferred is not None:
            self._deferred.cancel()


async def listen(on_poke: Callable[[], None], key: str) -> tuple[asyncio.DatagramTransport, int]:
    """Listen on 127.0.0.1, a free port; returns the transport (close it) and the port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Listener(on_poke, key), local_addr=(HOST, 0)
    )
    return transport, transport.get_extra_info("sockname")[1]


def send(port: int, key: str) -> None:
    """Best effort: a console that is gone or never listened is simply not nudged."""
    try:
        datagram = make(key, time.time())
    except ValueError:  # not a key this console wrote
        log.warning("the console's nudge key in the database is damaged; not nudging")
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, (HOST, port))
