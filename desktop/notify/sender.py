"""The sender: an asyncio service that drains the outbox (desktop/store/outbox.py).

It never blocks the scheduler: claims and marks go through the database thread like every
store call (short transactions), and the network calls run in this service's own small thread
pool with timeouts.  It wakes when a run's end (RunChanged) enqueued notifications, when a
retry is due, when Core notices another process's change, and every POLL_SECONDS."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from desktop.core import runs as states
from desktop.core.events import EventBus, RunChanged
from desktop.core.notify import short_error
from desktop.core.timeutil import utcnow
from desktop.notify import transport
from desktop.store import channels, outbox
from desktop.store.executor import DbExecutor

log = logging.getLogger(__name__)

# A fallback only: Core wakes the sender when another process changed the store; an idle
# console's database thread must not be woken often (benchmarks: idle wake-ups).
POLL_SECONDS = 300.0
STOP_GRACE = 5.0  # a send under way this long at stop is left claimed (taken again later)


class Sender:
    def __init__(
        self,
        db: DbExecutor,
        events: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
        *,
        retry_base_seconds: float = 30.0,
        timeout: float = transport.TIMEOUT_SECONDS,
        threads: int = 4,
    ) -> None:
        self.db = db
        self.events = events
        self.clock = clock
        self.retry_base_seconds = retry_base_seconds
        self.timeout = timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="jobtrigger-notify"
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False
        # outbox.enqueued() when the last pass began: a run's end wakes the sender only if
        # rows were enqueued since (at 1,000 runs/s and no rules, a pass per commit was two
        # queries for nothing)
        self._seen = -1

    async def start(self) -> None:
        if self.events is not None:
            self._unsubscribe = self.events.subscribe(self._on_event)
        self._task = asyncio.create_task(self._loop(), name="notify-sender")

    async def stop(self) -> None:
        """Let sends under way finish and be marked (up to STOP_GRACE), claim nothing more.  A
        send still hanging then stays claimed and is taken again later (at-least-once)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            await asyncio.wait([self._task], timeout=STOP_GRACE)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def _on_event(self, event) -> None:
        # The rows of an end are enqueued in the transaction that stores it, on the one
        # database thread, before the event is published: counted by then.  A pass that began
        # before they were committed still sees them, its claim runs after that transaction on
        # the same thread.  Rows another process enqueued never came with an event of ours:
        # Core wakes the sender when it notices other processes' changes.
        ended = isinstance(event, RunChanged) and states.is_terminal(event.state)
        if ended and outbox.enqueued() != self._seen:
            self.wake()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._seen = outbox.enqueued()
            try:
                await self.pass_once()
                due = await self.db.call(outbox.next_due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifications: a pass failed; trying again later")
                due = None
            if self._stopping:
                return
            wait = POLL_SECONDS
            if due is not None:
                wait = min(wait, max(0.0, (due - self.clock()).total_seconds()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def pass_once(self) -> int:
        """Send everything due now; returns how many were tried."""
        tried = 0
        while not self._stopping:
            batch = await self.db.call(outbox.claim_due, self.clock())
            if not batch:
                return tried
            tried += len(batch)
            await asyncio.gather(*(self._deliver(d) for d in batch))
        return tried

    async def _deliver(self, d: outbox.Delivery) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._pool,
            transport.send,
            d.kind,
            d.config,
            d.secret,
            d.facts,
            f"{d.id}",
            self.timeout,
        )
        try:
            await future
            error = None
        except transport.DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # our bug: still recorded, the row retries
            log.exception("notification %s to %s", d.id, d.channel)
            error = short_error(exc)
        if error is None:
            await self.db.call(outbox.mark_delivered, d.id, self.clock())
            log.info(
                "notification %s (%s, run %s) delivered to %s",
                d.id,
                d.event,
                d.facts.run_id,
                d.channel,
            )
            return
        state = await self.db.call(
            outbox.mark_failed, d.id, error, self.clock(), self.retry_base_seconds
        )
        log.warning(
            "notification %s to %s failed (attempt %s, now %s): %s",
            d.id,
            d.channel,
            d.attempts,
            state,
            error,
        )

    async def send_test(self, name: str) -> str | None:
        """Send a test message on a channel now (not through the outbox); the error or None."""
        record = await self.db.call(channels.get_channel, name)
        if record is None:
            return f"there is no channel {name!r}"
        secret = await self.db.call(channels.channel_secret, record.id)
        facts = await self.db.call(outbox.test_facts)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._pool,
                transport.send,
                record.kind,
                record.config,
                secret,
                facts,
                "test",
                self.timeout,
            )
        except transport.DeliveryError as exc:
            return str(exc)
        return None
