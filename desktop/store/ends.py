"""What a run's end sets off, written in the transaction that stores the end: its
notifications (outbox.py) and the runs its chains start (chains.py)."""

from __future__ import annotations

from desktop.core.timeutil import utcnow
from desktop.store import chains, outbox
from desktop.store.records import RunRecord


def after_ended(records: list[RunRecord]) -> list[RunRecord]:
    """Enqueue notifications and fire chains; returns the chained runs created."""
    if not records:
        return []
    now = utcnow()
    outbox.enqueue_ended(records, now)
    return chains.fire_ended(records, now)
