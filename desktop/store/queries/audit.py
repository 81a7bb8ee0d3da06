"""The audit log, newest first (events are written by the change they describe: common._audit)."""

from __future__ import annotations

from desktop.store.models import AuditEvent
from desktop.store.queries.common import _aware, _read
from desktop.store.records import AuditRecord


def list_audit(limit: int = 100) -> list[AuditRecord]:
    with _read():
        query = AuditEvent.select().order_by(AuditEvent.id.desc()).limit(limit)
        return [
            AuditRecord(
                e.id, _aware(e.at), e.actor, e.action, e.entity_kind, e.entity_name, e.detail
            )
            for e in query
        ]
