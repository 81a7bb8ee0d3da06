"""The notification outbox.  Rows are written by :func:`enqueue_ended` inside the transaction
that stores a run's result (hub/commit.py, queries.transition_run), so a result is never
committed without its notifications nor the reverse.  The sender (desktop/notify) claims due
rows, sends off the database thread and marks each delivered or failing here.

Claim-then-send: a claim moves a row pending -> sending (a conditional UPDATE, so two consoles
sharing a database cannot both take it) and counts the attempt; delivered is written after the
receiver accepted.  A row left "sending" by a process that died is taken again after
STALE_CLAIM: that is the one at-least-once window (the receiver accepted, we died before our
commit), and each message carries a stable delivery id for receivers that deduplicate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from desktop.core import notify as n
from desktop.core import runs as states
from desktop.core.secretbox import SecretKeyError
from desktop.core.timeutil import from_naive_utc, to_naive_utc
from desktop.core.zones import is_zone
from desktop.store import channels as ch
from desktop.store.migrations import write_transaction
from desktop.store.models import (
    Channel,
    Job,
    NotifyRule,
    Outbox,
    Run,
    RunOutput,
    Setting,
    database_proxy,
)
from desktop.store.queries.common import _tuples
from desktop.store.queries.prepared import _by_ids
from desktop.store.records import RunRecord

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
STALE_CLAIM = timedelta(minutes=2)  # well above a send's timeouts (desktop/notify/transport.py)
ENDED_RAN = (states.SUCCEEDED, states.FAILED, states.TIMED_OUT, states.LOST, states.CANCELLED)


@dataclass(frozen=True)
class Delivery:
    """One claimed message, everything the sender needs, no database access left."""

    id: int
    channel: str
    kind: str
    config: dict
    secret: str
    event: str
    attempts: int
    facts: n.RunFacts


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    run_id: int
    job_name: str
    channel: str
    event: str
    state: str  # pending | sending | delivered | failed; "failing" is shown for retried pending
    attempts: int
    last_error: str
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    @property
    def shown_state(self) -> str:
        if self.state in (PENDING, SENDING) and self.attempts > 0 and self.last_error:
            return "failing"
        return self.state


def _previous_state(run: RunRecord) -> str | None:
    row = (
        Run.select(Run.state)
        .where((Run.job == run.job_id) & (Run.id < run.id) & Run.state.in_(ENDED_RAN))
        .order_by(Run.id.desc())
        .first()
    )
    return row.state if row else None


class _Rule(NamedTuple):
    job_id: int | None
    channel_id: int
    events: list[str]


# Rows this process's enqueue_ended wrote (counted before their transaction commits).  The
# sender looks at it to skip a pass when a run ended and nothing was enqueued (notify/sender.py).
_enqueued = 0


def enqueued() -> int:
    """How many outbox rows this process has enqueued for ended runs so far."""
    return _enqueued


def enqueue_ended(records: list[RunRecord], now: datetime) -> int:
    """Outbox rows for runs that just ended, per the job's rules and the default rules; call
    inside the transaction that stored the end.  A row already there (the same run, channel and
    event: a replay, or lost then the real result) is left alone.  Returns rows added."""
    ended = [r for r in records if r.state in states.TERMINAL]
    if not ended:
        return 0
    # read in every transaction that stores ends (a rule another process added counts at once),
    # so the statement is compiled once; a rule for every job comes once per IN chunk
    found = _by_ids(
        "notify_rules_for",
        lambda ids: NotifyRule.select(
            NotifyRule.id, NotifyRule.job, NotifyRule.channel, NotifyRule.events_json
        ).where(NotifyRule.job.is_null() | NotifyRule.job.in_(ids)),
        {r.job_id for r in ended},
    )
    if not found:
        return 0
    rules = [
        _Rule(row["job_id"], row["channel_id"], json.loads(row["events_json"]))
        for row in {row["id"]: row for row in found}.values()
    ]
    at = to_naive_utc(now)
    rows = []
    for run in ended:
        relevant = [r for r in rules if r.job_id in (None, run.job_id)]
        previous = None
        if run.state == states.SUCCEEDED:
            if not any(n.RECOVERED in r.events for r in relevant):
                continue  # a success tells only "recovered": no need to look back
            previous = _previous_state(run)  # a query per run: only when a rule wants it
        event = n.event_for(run.state, previous)
        if event is None:
            continue
        for channel_id in sorted({r.channel_id for r in relevant if event in r.events}):
            rows.append(
                {
                    "run": run.id,
                    "channel": channel_id,
                    "event": event,
                    "state": PENDING,
                    "next_attempt_at": at,
                    "created_at": at,
                }
            )
    if rows:
        global _enqueued
        _enqueued += len(rows)  # before the INSERT: a failing one only costs a wasted pass
        Outbox.insert_many(rows).on_conflict_ignore().execute()
    return len(rows)


def _zone() -> str:
    row = Setting.get_or_none(Setting.setting_key == "display_tz")
    name = row.setting_value if row else "Asia/Hong_Kong"
    return name if is_zone(name) else "UTC"


def _fmt(dt: datetime | None, zone: str) -> str:
    if dt is None:
        return ""
    return from_naive_utc(dt).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _tail(run_id: int, lines: int = n.OUTPUT_LINES) -> tuple[str, ...]:
    """The last lines of the stored output (masked by the secrets work before it is stored)."""
    chunks = [
        (stream, text)
        for stream, text in _tuples(
            RunOutput.select(RunOutput.stream, RunOutput.text)
            .where(RunOutput.run == run_id)
            .order_by(RunOutput.seq.desc())
            .limit(lines)
        )
    ]
    out: list[str] = []
    for stream, text in chunks:  # newest first
        for line in reversed(text.rstrip("\n").split("\n")):
            out.append(("[stderr] " if stream == "stderr" else "") + line[:500])
            if len(out) >= lines:
                return tuple(reversed(out))
    return tuple(reversed(out))


def run_facts(run_id: int, event: str) -> n.RunFacts | None:
    run = Run.get_or_none(Run.id == run_id)
    if run is None:
        return None
    job = Job.get_by_id(run.job_id)
    zone = _zone()
    return n.RunFacts(
        run_id=run.id,
        job=job.name,
        state=run.state,
        event=event,
        worker=run.worker_name or "",
        attempt=run.attempt,
        exit_code=run.exit_code,
        reason=run.reason or "",
        scheduled=_fmt(run.scheduled_at, zone),
        started=_fmt(run.started_at, zone),
        finished=_fmt(run.finished_at, zone),
        zone=zone,
        output=_tail(run.id),
        how_to_open=f"Open it in the console (job {job.name}, run {run.id}) or with: "
        f"python -m desktop runs show {run.id}",
    )


def test_facts() -> n.RunFacts:
    zone = _zone()
    return n.RunFacts(0, "", "", n.TEST, "", 0, None, "", "", "", "", zone, (), "")


def claim_due(now: datetime, limit: int = 20) -> list[Delivery]:
    """Take up to ``limit`` due rows (oldest first) for sending."""
    at = to_naive_utc(now)
    out = []
    with write_transaction(database_proxy):
        # a claim older than STALE_CLAIM belongs to a process that died mid-send
        Outbox.update(state=PENDING).where(
            (Outbox.state == SENDING) & (Outbox.claimed_at < at - STALE_CLAIM)
        ).execute()
        due = list(
            Outbox.select(Outbox, Channel)
            .join(Channel)
            .where((Outbox.state == PENDING) & (Outbox.next_attempt_at <= at))
            .order_by(Outbox.id)
            .limit(limit)
        )
        for row in due:
            taken = (
                Outbox.update(state=SENDING, claimed_at=at, attempts=Outbox.attempts + 1)
                .where((Outbox.id == row.id) & (Outbox.state == PENDING))
                .execute()
            )
            if not taken:
                continue
            facts = run_facts(row.run_id, row.event)
            if facts is None:
                continue
            c = row.channel
            try:
                secret = ch.unseal(c.secret, c.name)
            except SecretKeyError as exc:  # a lost key: this row fails with why, others go on
                mark_failed(row.id, f"cannot open the channel's credential: {exc}", now)
                continue
            out.append(
                Delivery(
                    row.id,
                    c.name,
                    c.kind,
                    json.loads(c.config_json),
                    secret,
                    row.event,
                    row.attempts + 1,
                    facts,
                )
            )
    return out


def next_due() -> datetime | None:
    value = (
        Outbox.select(Outbox.next_attempt_at)
        .where(Outbox.state == PENDING)
        .order_by(Outbox.next_attempt_at)
        .scalar()
    )
    return from_naive_utc(value) if value else None


def mark_delivered(outbox_id: int, now: datetime) -> None:
    with write_transaction(database_proxy):
        Outbox.update(state=DELIVERED, delivered_at=to_naive_utc(now), last_error="").where(
            (Outbox.id == outbox_id) & (Outbox.state == SENDING)
        ).execute()


def mark_failed(outbox_id: int, error: str, now: datetime, base_seconds: float = 30.0) -> str:
    """After a failed attempt: pending again after the backoff, or failed (given up)."""
    with write_transaction(database_proxy):
        row = Outbox.get_or_none(Outbox.id == outbox_id)
        if row is None or row.state != SENDING:
            return row.state if row else ""
        if n.gives_up(row.attempts):
            state, wait = FAILED, 0.0
        else:
            state, wait = PENDING, n.backoff_seconds(row.attempts, base_seconds)
        Outbox.update(
            state=state,
            last_error=error[:1000],
            next_attempt_at=to_naive_utc(now + timedelta(seconds=wait)),
        ).where(Outbox.id == outbox_id).execute()
        return state


def retry_now(outbox_id: int, now: datetime) -> None:
    """A failed (given up) or waiting row goes out at the next pass, with a fresh count."""
    with write_transaction(database_proxy):
        Outbox.update(state=PENDING, attempts=0, next_attempt_at=to_naive_utc(now)).where(
            (Outbox.id == outbox_id) & (Outbox.state.in_([PENDING, FAILED]))
        ).execute()


def list_outbox(run_id: int | None = None, limit: int = 50) -> list[OutboxRecord]:
    query = (
        Outbox.select(Outbox, Channel.name, Run.id, Job.name)
        .join(Channel)
        .switch(Outbox)
        .join(Run)
        .join(Job)
        .order_by(Outbox.id.desc())
        .limit(limit)
    )
    if run_id is not None:
        query = query.where(Outbox.run == run_id)
    return [
        OutboxRecord(
            o.id,
            o.run_id,
            o.run.job.name,
            o.channel.name,
            o.event,
            o.state,
            o.attempts,
            o.last_error,
            from_naive_utc(o.next_attempt_at) if o.next_attempt_at else None,
            from_naive_utc(o.delivered_at) if o.delivered_at else None,
        )
        for o in query
    ]


def counts_by_channel() -> dict[str, dict[str, int]]:
    """{channel: {state: count}} with "failing" apart from plain pending."""
    out: dict[str, dict[str, int]] = {}
    for name, state, attempts, err in _tuples(
        Outbox.select(Channel.name, Outbox.state, Outbox.attempts, Outbox.last_error).join(Channel)
    ):
        shown = "failing" if state in (PENDING, SENDING) and attempts and err else state
        out.setdefault(name, {}).setdefault(shown, 0)
        out[name][shown] += 1
    return out


def last_error(channel: str) -> str:
    row = (
        Outbox.select(Outbox.last_error)
        .join(Channel)
        .where((Channel.name == channel) & (Outbox.last_error != ""))
        .order_by(Outbox.id.desc())
        .first()
    )
    return row.last_error if row else ""
