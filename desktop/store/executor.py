"""All database work of the console goes through ONE thread that owns the connection.

The asyncio loop (Qt's, through qasync) only awaits futures: it never waits on a lock or a disk.
One thread also means one connection (``asyncio.to_thread`` opened ten) and a natural queue of
transactions.  Functions run here must return plain data (records.py), never lazy queries.

    ex = DbExecutor(url)           # starts opening + migrating at once, in the thread
    await ex.start()               # raises StoreError (locked, corrupt, too new, unreachable)
    job = await ex.call(queries.get_job, 3)
    await ex.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

from desktop.store.db import BUSY_TIMEOUT_SECONDS, is_sqlite, open_store, store_errors
from desktop.store.errors import DatabaseUnreachable

log = logging.getLogger(__name__)

T = TypeVar("T")


class DbExecutor:
    def __init__(self, url: str | None = None, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS):
        self.url = url
        self.db: peewee.Database | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jobtrigger-db"
        )
        self._closed = False
        # Queued first, so every later call runs after the database is open.
        self._opened = self._pool.submit(self._open, busy_timeout)

    def _open(self, busy_timeout: float) -> None:
        self.db = open_store(self.url, busy_timeout=busy_timeout)

    async def start(self) -> None:
        """Wait until the database is open and migrated; raises its StoreError if not."""
        await asyncio.wrap_future(self._opened)

    def _run(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        self._opened.result()  # re-raises the open error for every call after a failed open
        assert self.db is not None
        try:
            with store_errors(self.db):
                return fn(*args, **kwargs)
        except DatabaseUnreachable:
            # Drop the dead connection; peewee reconnects on the next call.
            if not self.db.is_closed():
                try:
                    self.db.close()
                except peewee.PeeweeException:
                    log.debug("closing a broken connection failed", exc_info=True)
            raise

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the database thread and return its result."""
        if self._closed:
            raise RuntimeError("DbExecutor is closed")
        future = self._pool.submit(self._run, fn, args, kwargs)
        return await asyncio.wrap_future(future)

    def call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """For code without a loop (tests, scripts): same thread, blocks the caller."""
        return self._pool.submit(self._run, fn, args, kwargs).result()

    def _close_db(self) -> None:
        if self.db is not None and not self.db.is_closed():
            if is_sqlite(self.db) and self.db.database != ":memory:":
                # Fold the WAL back into the file so a copied .db file is complete.
                try:
                    self.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                except peewee.PeeweeException:
                    log.debug("WAL checkpoint at close failed", exc_info=True)
            self.db.close()

    async def close(self) -> None:
        """Finish queued work, close the connection, stop the thread."""
        if self._closed:
            return
        self._closed = True
        await asyncio.wrap_future(self._pool.submit(self._close_db))
        # The thread is idle now: joining it takes microseconds.
        self._pool.shutdown(wait=True)

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.submit(self._close_db).result()
        self._pool.shutdown(wait=True)
