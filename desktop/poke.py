"""A nudge from the CLI to a running console on the same machine: "look for changes now".

The console listens for UDP datagrams on 127.0.0.1 (a port of its own choosing, kept in the
store with its alive mark); the CLI sends one after a command changed the store.  A datagram
carries nothing but the nudge, so a stray or forged one costs one cheap change-marker read and
cannot change anything.  Without it the console would have to poll the store every second,
which alone woke an idle console 5 times a second; with it the poll is a 30 s fallback (a CLI
on another machine, sharing a server database, is noticed that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

HOST = "127.0.0.1"
MESSAGE = b"jobtrigger: changed"


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, on_poke: Callable[[], None]) -> None:
        self.on_poke = on_poke

    def datagram_received(self, data: bytes, addr) -> None:
        self.on_poke()


async def listen(on_poke: Callable[[], None]) -> tuple[asyncio.DatagramTransport, int]:
    """Listen on 127.0.0.1, a free port; returns the transport (close it) and the port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Listener(on_poke), local_addr=(HOST, 0)
    )
    return transport, transport.get_extra_info("sockname")[1]


def send(port: int) -> None:
    """Best effort: a console that is gone or never listened is simply not nudged."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(MESSAGE, (HOST, port))
