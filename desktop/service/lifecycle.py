"""The running parts of a console and their order: the one-console lock, the database thread,
the hub, the scheduler and the notification sender.  Services read `hub`, `scheduler` and
`sender` from here (None before start)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta

from desktop.core.events import EventBus
from desktop.hub.server import Hub
from desktop.notify.sender import Sender
from desktop.scheduler.service import Scheduler
from desktop.store import queries, scheduling
from desktop.store.db import resolve_url
from desktop.store.executor import DbExecutor
from desktop.store.leader import NoLock, StoreLock, lock_for

log = logging.getLogger(__name__)


def ssl_context_from(settings: dict[str, str]) -> ssl.SSLContext | None:
    """TLS for the hub when the settings name a certificate and key (PEM files)."""
    cert, key = settings.get("hub_tls_cert", ""), settings.get("hub_tls_key", "")
    if not cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key or None)
    return context


class Stack:
    def __init__(
        self,
        db_url: str | None,
        host: str,
        port: int,
        db: DbExecutor,
        events: EventBus,
        clock: Callable[[], datetime],
    ) -> None:
        self.db_url = db_url
        self.host = host
        self.port = port
        self.db = db
        self.events = events
        self.clock = clock
        self.hub: Hub | None = None
        self.scheduler: Scheduler | None = None
        self.sender: Sender | None = None
        self._lock: StoreLock = NoLock()

    @property
    def hub_url(self) -> str:
        return (
            self.hub.url if self.hub is not None else f"ws://{self.host}:{self.port}/ws/heartbeat"
        )

    def lock(self) -> None:
        """First, before anything is written: a second console must change nothing (not even
        the first one's alive mark) and leave with ConsoleRunning (desktop/store/leader.py)."""
        lock = lock_for(resolve_url(self.db_url))
        lock.acquire()
        self._lock = lock

    async def open(self) -> None:
        """The database thread, then the hub listening; the scheduler is built, not started
        (the caller first loads the known workers)."""
        await self.db.start()
        settings = await self.db.call(queries.all_settings)
        interval = float(settings.get("heartbeat_interval", "10"))
        grace = timedelta(seconds=int(settings.get("lost_grace_seconds", "60")))
        self.hub = Hub(
            self.db,
            self.events,
            host=self.host,
            port=self.port,
            ssl_context=ssl_context_from(settings),
            heartbeat_interval=interval,
            clock=self.clock,
        )
        self.scheduler = Scheduler(self.db, self.hub, self.events, self.clock, lost_grace=grace)
        self.hub.listener = self.scheduler
        await self.hub.start()
        # notifications go out in the background, never in the scheduler's way (desktop/notify)
        self.sender = Sender(
            self.db,
            self.events,
            self.clock,
            retry_base_seconds=float(settings.get("notify_retry_base_seconds", "30")),
        )
        await self.sender.start()

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.stop()  # sends under way finish and are marked first
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.hub is not None:
            await self.hub.stop()
        try:
            await self.db.call(scheduling.clear_alive)
        except Exception:
            log.debug("could not clear the alive mark", exc_info=True)
        await self.db.close()
        self._lock.release()
