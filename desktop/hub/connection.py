"""One worker connection as the hub keeps it: its session, what it owns, what it has pending."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection

from desktop.hub import session as s

MAX_OWNED = 4 * s.MAX_RUN_IDS  # runs dispatched to one connection that the hub remembers


@dataclass(eq=False)  # identity: connections are kept in sets
class Conn:
    ws: ServerConnection
    session: s.Session
    remote: str
    name: str | None = None
    closing: bool = False
    # set when a commit of its reports failed: nothing more from this connection may be stored,
    # or a later report would commit past the failed ones and the replay would be dropped as old
    reports_refused: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # runs dispatched to this connection, or claimed in its hello and assigned to it in the
    # store (insertion ordered, capped): only these may be kept alive by its heartbeats
    owned: dict[int, None] = field(default_factory=dict)
    pending: int = 0  # reports queued for or in a commit
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    unstorable: int = 0
    failed_login: bool = False  # its token was wrong; the refusal is being held (throttle)

    def own(self, run_ids: Iterable[int]) -> None:
        for run_id in run_ids:
            self.owned.pop(run_id, None)
            self.owned[run_id] = None
        while len(self.owned) > MAX_OWNED:
            del self.owned[next(iter(self.owned))]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task that ends with the connection."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def remote_of(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if addr else "?"
