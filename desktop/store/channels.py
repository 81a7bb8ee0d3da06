"""Channels and notification rules in the store.  Credentials (SMTP password, webhook HMAC key)
live in their own column, sealed with the secrets key (:func:`seal` / :func:`unseal`, the same
encryption as job secrets; `secrets rotate-key` re-seals them).  Plain records out, never
peewee rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from desktop.core import notify as n
from desktop.core.timeutil import to_naive_utc, utcnow
from desktop.store import secretkey
from desktop.store.errors import NotFound
from desktop.store.migrations import write_transaction
from desktop.store.models import ChangeCounter, Channel, Job, NotifyRule, database_proxy


def _context(name: str) -> str:
    # A channel is found and replaced by its name (never renamed): the name binds the value.
    return f"channel-secret:{name}"


def seal(value: str, name: str) -> str:
    """What is stored for a credential: sealed with the secrets key (desktop/store/secretkey.py);
    no credential is stored as ""."""
    return secretkey.seal(value, _context(name)) if value else ""


def unseal(stored: str, name: str) -> str:
    """The credential back from what :func:`seal` stored (SecretKeyError: wrong or lost key)."""
    return secretkey.open_sealed(stored, _context(name)) if stored else ""


secretkey.register_column(Channel, Channel.secret, lambda row: _context(row.name))


@dataclass(frozen=True)
class ChannelRecord:
    id: int
    name: str
    kind: str
    config: dict
    has_secret: bool
    description: str


@dataclass(frozen=True)
class RuleRecord:
    id: int
    job_id: int | None  # None: the default rule for all jobs
    job_name: str | None
    channel: str
    events: tuple[str, ...]


def _bump() -> None:
    ChangeCounter.update(counter_value=ChangeCounter.counter_value + 1).where(
        ChangeCounter.id == 1
    ).execute()


def _record(c: Channel) -> ChannelRecord:
    config = json.loads(c.config_json or "{}")
    return ChannelRecord(
        c.id, c.name, c.kind, config, bool(c.secret), n.describe_channel(c.kind, config)
    )


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or any(ch.isspace() and ch != " " for ch in name):
        raise n.ChannelError("name: 1 to 100 characters, no tabs or line breaks")
    return name


def save_channel(name: str, kind: str, config: dict, secret: str | None = None) -> ChannelRecord:
    """Create or replace a channel (by name).  ``secret`` None keeps the stored one.  Bad input
    raises ChannelError and stores nothing."""
    name = _check_name(name)
    with write_transaction(database_proxy):
        row = Channel.get_or_none(Channel.name == name)
        kept = unseal(row.secret, name) if row is not None and row.kind == kind else ""
        value = kept if secret is None else secret
        clean = n.validate_channel(kind, config, value)
        now = to_naive_utc(utcnow())
        if row is None:
            row = Channel.create(
                name=name,
                kind=kind,
                config_json=json.dumps(clean, sort_keys=True),
                secret=seal(value, name),
                created_at=now,
                updated_at=now,
            )
        else:
            Channel.update(
                kind=kind,
                config_json=json.dumps(clean, sort_keys=True),
                secret=seal(value, name),
                updated_at=now,
            ).where(Channel.id == row.id).execute()
            row = Channel.get_by_id(row.id)
        _bump()
        return _record(row)


def list_channels() -> list[ChannelRecord]:
    return [_record(c) for c in Channel.select().order_by(Channel.name)]


def get_channel(name: str) -> ChannelRecord | None:
    row = Channel.get_or_none(Channel.name == name)
    return _record(row) if row else None


def channel_secret(channel_id: int) -> str:
    row = Channel.get_or_none(Channel.id == channel_id)
    return unseal(row.secret, row.name) if row else ""


def remove_channel(name: str) -> None:
    """Its rules and undelivered messages go with it."""
    with write_transaction(database_proxy):
        if not Channel.delete().where(Channel.name == name).execute():
            raise NotFound(f"there is no channel {name!r}")
        _bump()


# --- rules ---------------------------------------------------------------------------------


def _rule(r: NotifyRule, names: dict[int, str], jobs: dict[int, str]) -> RuleRecord:
    job_id = r.job_id
    return RuleRecord(
        r.id,
        job_id,
        jobs.get(job_id) if job_id else None,
        names[r.channel_id],
        tuple(json.loads(r.events_json or "[]")),
    )


def list_rules(job_id: int | None = None, *, all_jobs: bool = False) -> list[RuleRecord]:
    """The rules of one job (``job_id``), the default rules (None), or every rule."""
    query = NotifyRule.select()
    if not all_jobs:
        query = query.where(
            NotifyRule.job.is_null() if job_id is None else NotifyRule.job == job_id
        )
    rows = list(query.order_by(NotifyRule.id))
    names = {c.id: c.name for c in Channel.select(Channel.id, Channel.name)}
    job_ids = {r.job_id for r in rows if r.job_id}
    jobs = {j.id: j.name for j in Job.select(Job.id, Job.name).where(Job.id.in_(job_ids))}
    return [_rule(r, names, jobs) for r in rows]


def check_rules(rules: list[dict]) -> list[tuple[int, list[str]]]:
    """[{"channel": name, "on": [events]}] -> [(channel id, events)]; ChannelError if wrong."""
    ids = {c.name: c.id for c in Channel.select(Channel.id, Channel.name)}
    out = []
    seen = set()
    for rule in rules:
        if not isinstance(rule, dict):
            raise n.ChannelError('a rule is {"channel": NAME, "on": [EVENTS]}')
        name = rule.get("channel")
        if name not in ids:
            raise n.ChannelError(f"rule: there is no channel {name!r} (add it first)")
        if name in seen:
            raise n.ChannelError(f"rule: channel {name!r} is named twice")
        seen.add(name)
        out.append((ids[name], n.parse_events(rule.get("on") or [])))
    return out


def set_rules(job_id: int | None, rules: list[dict]) -> list[RuleRecord]:
    """Replace the rules of a job (None: the default rules)."""
    with write_transaction(database_proxy):
        clean = check_rules(rules)
        if job_id is not None and not Job.select().where(Job.id == job_id).exists():
            raise NotFound(f"job {job_id} does not exist")
        where = NotifyRule.job.is_null() if job_id is None else NotifyRule.job == job_id
        NotifyRule.delete().where(where).execute()
        for channel_id, events in clean:
            NotifyRule.create(job=job_id, channel=channel_id, events_json=json.dumps(events))
        _bump()
        return list_rules(job_id)


def rules_spec(job_id: int | None) -> list[dict[str, Any]]:
    """The rules as export/import and the editor write them."""
    return [{"channel": r.channel, "on": list(r.events)} for r in list_rules(job_id)]
