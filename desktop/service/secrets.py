"""Job secrets and the audit trail, as the window needs them: names and records, never a value
except through :meth:`SecretService.reveal` (an explicit action, itself audited)."""

from __future__ import annotations

from datetime import datetime

from desktop.core.events import EventBus, JobChanged
from desktop.core.secretbox import SecretKeyError
from desktop.store import audit, secretkey
from desktop.store import secrets as job_secrets
from desktop.store.executor import DbExecutor
from desktop.store.records import AuditRecord, SecretRecord


class SecretService:
    def __init__(self, db: DbExecutor, events: EventBus, actor: str) -> None:
        self.db = db
        self.events = events
        self.actor = actor  # the audit trail's "who"

    async def names(self, job_id: int) -> list[SecretRecord]:
        return await self.db.call(job_secrets.list_secrets, job_id)

    async def save(self, job_id: int, changes: dict[str, str | None]) -> list[str]:
        """Set (value) or remove (None) secrets, all or nothing: ValidationError for bad names
        or values, SecretKeyError when the key is missing or wrong.  Returns warnings."""
        warnings = await self.db.call(job_secrets.apply_changes, job_id, changes, self.actor)
        self.events.publish(JobChanged(job_id))
        return warnings

    async def reveal(self, job_id: int, name: str) -> str:
        return await self.db.call(job_secrets.reveal, job_id, name, self.actor)

    async def audit_events(
        self,
        *,
        since: datetime | None = None,
        kind: str | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        return await self.db.call(audit.list_events, since=since, kind=kind, name=name, limit=limit)

    async def key_place(self) -> str:
        """Where the secrets key is kept, for Settings ('OS keyring (...)' or 'key file ...')."""

        def where() -> str:
            try:
                return secretkey.place().describe()
            except SecretKeyError as exc:
                return f"unavailable: {exc}"

        return await self.db.call(where)
