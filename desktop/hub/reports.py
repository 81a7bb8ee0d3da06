"""Reports from all connections, committed in shared batches on the database thread
(commit.py) and only then acked: one transaction for whatever arrived while the last one was
written.  Counts each connection's uncommitted reports for back-pressure (server.py stops
reading a connection at ``max_pending``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from desktop.hub.commit import CommitResult, Item, commit_isolated
from desktop.hub.connection import Conn
from desktop.hub.masks import RunMasks
from desktop.store.errors import StoreError
from desktop.store.executor import DbExecutor

log = logging.getLogger(__name__)

# Reports of one connection waiting for (or in) a commit; past this the hub stops reading from
# it until the database caught up.  Bounds memory per connection; an honest worker just waits.
MAX_PENDING = 5000

Batch = list[tuple[Conn, Item]]


class ReportQueue:
    def __init__(
        self,
        db: DbExecutor,
        committed: Callable[[Batch, CommitResult], None],
        refused: Callable[[Conn], Awaitable[None]],
        masks: RunMasks,
    ) -> None:
        """``committed(batch, result)`` answers a stored batch; ``refused(conn)`` ends a
        connection whose reports could not be stored."""
        self.db = db
        self.committed = committed
        self.refused = refused
        self.masks = masks  # secret values masked out of output before it is stored
        self.max_pending = MAX_PENDING
        self._pending: Batch = []
        self._work = asyncio.Event()

    def __len__(self) -> int:
        """Reports received and waiting for the next commit (not the one being written)."""
        return len(self._pending)

    def add(self, conn: Conn, item: Item) -> None:
        conn.pending += 1
        self._pending.append((conn, item))
        self._work.set()

    async def run(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                result = await self.db.call(
                    commit_isolated, [item for _, item in batch], self.masks
                )
            except Exception as exc:
                # Nothing acked: the workers keep their copies.  Drop their connections so they
                # replay after reconnecting instead of waiting for acks that will never come.
                if isinstance(exc, StoreError):
                    log.error("cannot store worker reports: %s", exc)
                else:
                    log.exception("storing worker reports failed")
                refused = {c for c, _ in batch}
                for conn in refused:
                    conn.reports_refused = True
                # reports that came in behind the failed ones wait for the replay too
                behind = [(c, item) for c, item in self._pending if c in refused]
                self._pending = [(c, item) for c, item in self._pending if c not in refused]
                self._drained(batch + behind)
                for conn in refused:
                    await self.refused(conn)
                continue
            self._drained(batch)
            self.committed(batch, result)

    def _drained(self, batch: Batch) -> None:
        for conn, _ in batch:
            conn.pending -= 1
            if conn.pending < self.max_pending:
                conn.drained.set()
