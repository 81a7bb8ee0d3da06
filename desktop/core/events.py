"""The event stream from the core to whoever listens (the Qt UI, tests, the CLI notifier).

The core publishes plain dataclasses; it knows nothing of Qt.  The UI bridges them to signals in
desktop/ui.  Subscribers are called synchronously on the asyncio loop thread and must be quick;
an exception in one subscriber is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobChanged:
    job_id: int
    deleted: bool = False


@dataclass(frozen=True)
class RunChanged:
    run_id: int
    job_id: int
    state: str


@dataclass(frozen=True)
class OutputAppended:
    run_id: int
    seq: int
    stream: str
    text: str


@dataclass(frozen=True)
class WorkerChanged:
    name: str
    online: bool


Event = JobChanged | RunChanged | OutputAppended | WorkerChanged
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it again."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", callback, event)
