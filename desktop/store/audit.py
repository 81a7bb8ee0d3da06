"""Reading the audit trail, and its retention (``audit_retention_days``, its own setting).

Rows are written by the store functions that make each change, in the same transaction
(queries._audit, secrets._audit).  What is read here is plain records, newest first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from desktop.core.timeutil import from_naive_utc, to_naive_utc
from desktop.store.errors import ValidationError
from desktop.store.models import AuditEvent, Setting, database_proxy
from desktop.store.queries.common import _tuples
from desktop.store.records import AuditRecord
from desktop.store.settings import DEFAULTS

KINDS = ("job", "worker", "setting")
RETENTION_KEY = "audit_retention_days"
PRUNE_BATCH = 1000


def list_events(
    *,
    since: datetime | None = None,
    kind: str | None = None,
    name: str | None = None,
    limit: int = 1000,
) -> list[AuditRecord]:
    """Newest first.  SINCE: aware datetime; KIND: job | worker | setting; NAME: the entity's
    name contains it (case-insensitive)."""
    if kind is not None and kind not in KINDS:
        raise ValidationError({"kind": f"must be one of {', '.join(KINDS)}"})
    query = AuditEvent.select()
    if since is not None:
        query = query.where(AuditEvent.at >= to_naive_utc(since))
    if kind:
        query = query.where(AuditEvent.entity_kind == kind)
    if name:
        query = query.where(AuditEvent.entity_name.contains(name))
    with database_proxy.atomic():
        rows = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        return [
            AuditRecord(
                e.id,
                from_naive_utc(e.at),
                e.actor,
                e.action,
                e.entity_kind,
                e.entity_name,
                e.detail,
            )
            for e in rows
        ]


def retention_days() -> int:
    row = Setting.get_or_none(Setting.setting_key == RETENTION_KEY)
    return int(row.setting_value if row else DEFAULTS[RETENTION_KEY])


def prune(now: datetime, days: int | None = None) -> int:
    """Delete audit rows older than DAYS (None: the setting; 0 keeps everything), in batches."""
    days = retention_days() if days is None else days
    if days <= 0:
        return 0
    cutoff = to_naive_utc(now) - timedelta(days=days)
    deleted = 0
    while True:
        with database_proxy.atomic():
            ids = [
                i
                for (i,) in _tuples(
                    AuditEvent.select(AuditEvent.id)
                    .where(AuditEvent.at < cutoff)
                    .limit(PRUNE_BATCH)
                )
            ]
            if not ids:
                return deleted
            deleted += AuditEvent.delete().where(AuditEvent.id.in_(ids)).execute()
