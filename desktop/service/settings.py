"""Settings: read them all, change one.  The store checks each value with the same rule the CLI
uses (desktop.service.rules.check_setting) and raises ValidationError for a bad one."""

from __future__ import annotations

from desktop.store import queries
from desktop.store.executor import DbExecutor


class SettingsService:
    def __init__(self, db: DbExecutor, actor: str) -> None:
        self.db = db
        self.actor = actor  # the audit trail's "who"

    async def all(self) -> dict[str, str]:
        return await self.db.call(queries.all_settings)

    async def set(self, key: str, value: str) -> None:
        await self.db.call(queries.set_setting, key, value, self.actor)
