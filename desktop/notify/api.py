"""The notification and chain calls of the Core facade (plain records in and out), apart so
the window's test double (tests/ui/storecore.py) offers exactly the same ones.  Needs ``db``
(DbExecutor), ``events``, ``clock`` and ``sender`` (None: a one-off sender for "Send test")."""

from __future__ import annotations

from typing import Any

from desktop.core.events import JobChanged
from desktop.store import chains, channels, outbox, queries
from desktop.store import links as links_store


class NotifyApi:
    db: Any
    events: Any
    clock: Any
    sender: Any = None

    async def list_channels(self) -> list:
        return await self.db.call(channels.list_channels)

    async def save_channel(
        self, name: str, kind: str, config: dict, secret: str | None = None
    ) -> Any:
        """Create or replace a channel; ChannelError (nothing stored) when the input is wrong."""
        record = await self.db.call(channels.save_channel, name, kind, config, secret)
        self.events.publish(JobChanged(0))
        return record

    async def remove_channel(self, name: str) -> None:
        await self.db.call(channels.remove_channel, name)
        self.events.publish(JobChanged(0))

    async def send_test(self, name: str) -> str | None:
        """Send a test message now; the reason it failed, or None."""
        if self.sender is not None:
            return await self.sender.send_test(name)
        from desktop.notify.sender import Sender

        sender = Sender(self.db)
        try:
            return await sender.send_test(name)
        finally:
            await sender.stop()

    async def channel_status(self) -> dict[str, dict[str, int]]:
        return await self.db.call(outbox.counts_by_channel)

    async def notifications(self, run_id: int | None = None, limit: int = 50) -> list:
        return await self.db.call(outbox.list_outbox, run_id, limit)

    async def retry_notification(self, outbox_id: int) -> None:
        await self.db.call(outbox.retry_now, outbox_id, self.clock())
        if self.sender is not None:
            self.sender.wake()

    async def rules(self, job_id: int | None) -> list[dict]:
        """A job's rules (None: the default rules for all jobs) as [{"channel", "on"}]."""
        return await self.db.call(channels.rules_spec, job_id)

    async def set_rules(self, job_id: int | None, rules: list[dict]) -> None:
        await self.db.call(channels.set_rules, job_id, rules)
        self.events.publish(JobChanged(job_id or 0))

    async def links_context(self, job_id: int | None) -> dict:
        """What the editor's "Notifications and chains" tab needs: channel names, job names,
        and the job's rules and chains (empty for a new job)."""
        names = [name for _, name in await self.db.call(queries.job_names)]
        found: dict[str, list[Any]] = {"notify": [], "chains": []}
        if job_id is not None:
            found = await self.db.call(links_store.job_links, job_id)
        return {
            "channels": [c.name for c in await self.list_channels()],
            "jobs": names,
            "rules": found["notify"],
            "chains": found["chains"],
        }

    async def chains(self, job_id: int) -> list[dict]:
        """A job's chains as [{"then", "on", "args"?}]."""
        return [r.spec() for r in await self.db.call(chains.list_chains, job_id)]

    async def set_chains(self, job_id: int, specs: list[dict]) -> None:
        """Replace a job's chains; ChainError (unknown job, cycle) leaves them as they were."""
        await self.db.call(chains.set_chains, job_id, specs, self.clock())
        self.events.publish(JobChanged(job_id))
