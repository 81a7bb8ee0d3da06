"""Commit what workers reported, many connections at once, in ONE transaction (DB thread).

The server collects started/output/finished actions from every connection while the previous
batch is being written, then hands the whole lot to :func:`commit_batch`.  One transaction per
batch (not per message) is what makes 100,000 output lines a second possible.

Replays are harmless: output at or below a run's committed ``last_seq`` is dropped by the
store, and a started/finished whose seq is already committed changes nothing.  Either way the
result tells the server the committed seq to ack, so the worker can drop its spooled copy.
Reports for runs the store does not know (deleted, or another console's database) are acked
and dropped with a warning, or the worker would replay them forever.

Each report is checked against its run's committed row in the same transaction: only the worker
the run is assigned to may report on it (hub/ownership.py); anything else is refused, written
nowhere, and listed in ``CommitResult.refused`` for the server to answer.  One report the
database cannot take (a poisoned one) must not fail the reports of other workers in the batch:
:func:`commit_isolated` splits a batch that fails on its data until the bad report stands
alone, refuses it, and commits the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import peewee

from desktop.core import runs as states
from desktop.core.masking import Masker
from desktop.core.secretbox import SecretKeyError
from desktop.core.timeutil import utcnow
from desktop.hub.masks import RunMasks, StreamKey
from desktop.hub.ownership import report_verdict
from desktop.hub.session import StoreFinished, StoreOutput, StoreStarted
from desktop.store import ends, queries, scheduling
from desktop.store import secrets as job_secrets
from desktop.store.records import OutputChunk, RunRecord

log = logging.getLogger(__name__)

Item = tuple[str, StoreStarted | StoreOutput | StoreFinished]  # (worker name, action)


@dataclass(frozen=True)
class Refusal:
    """A report that was not stored and never will be: said to its worker (with an ack, so it
    drops its copy instead of replaying it forever) and logged.  Never shares the run's ack
    with other workers: a refused report must not move anybody else's ack."""

    worker: str
    run_id: int
    seq: int
    reason: str
    unstorable: bool = False  # the database refused it (not an ownership refusal)


@dataclass
class CommitResult:
    acked: dict[int, int] = field(default_factory=dict)  # run id -> committed seq to ack
    changed: list[RunRecord] = field(default_factory=list)  # runs whose state changed
    ended: list[RunRecord] = field(default_factory=list)  # ... of which reached an outcome
    new_output: list[OutputChunk] = field(default_factory=list)  # chunks actually stored
    refused: list[Refusal] = field(default_factory=list)  # reports not stored, with why
    unknown: set[int] = field(default_factory=set)  # run ids the store does not have
    # masking state to keep once this commit stands (hub/masks.py)
    mask_held: dict[StreamKey, tuple[str, int]] = field(default_factory=dict)
    mask_learned: dict[int, Masker] = field(default_factory=dict)
    chained: list[RunRecord] = field(default_factory=list)  # runs started by chains

    def merge(self, later: CommitResult) -> None:
        """Add the result of a later transaction (the halves of a split batch, in order)."""
        for run_id, seq in later.acked.items():
            _raise_ack(self.acked, run_id, seq)
        ids = {r.id for r in later.changed}
        self.changed = [r for r in self.changed if r.id not in ids] + later.changed
        self.ended = [r for r in self.ended if r.id not in ids] + later.ended
        self.new_output += later.new_output
        self.refused += later.refused
        self.unknown |= later.unknown
        self.mask_held.update(later.mask_held)
        self.mask_learned.update(later.mask_learned)
        self.chained += later.chained


# What one report's values can make the database refuse (a number out of the column's range,
# text the driver cannot encode): the report's fault, not the database's.  Anything else
# (locked, unreachable) fails the whole batch, which the workers replay later.
DATA_ERRORS = (peewee.DataError, peewee.IntegrityError, OverflowError, ValueError)


def commit_isolated(
    items: list[Item], masks: RunMasks | None = None, overlay: dict | None = None
) -> CommitResult:
    """:func:`commit_batch`, except that a report the database refuses is refused on its own:
    the batch is split in halves until the bad report stands alone (about 2*log2(n) extra
    transactions per bad report), and everything else is committed in order."""
    try:
        return commit_batch(items, masks, overlay)
    except DATA_ERRORS as exc:
        if len(items) == 1:
            worker, a = items[0]
            what = type(a).__name__.removeprefix("Store").lower()
            log.warning(
                "worker %s: %s of run %s seq %s not stored: %s", worker, what, a.run_id, a.seq, exc
            )
            result = CommitResult()
            reason = f"{what} could not be stored ({type(exc).__name__}: {exc})"[:500]
            result.refused.append(Refusal(worker, a.run_id, a.seq, reason, unstorable=True))
            return result
    mid = len(items) // 2
    result = commit_isolated(items[:mid], masks, overlay)
    # the second half goes on from the masking state the first half committed
    later = {**(overlay or {}), **result.mask_held}
    result.merge(commit_isolated(items[mid:], masks, later))
    return result


def _ts(at: float | None) -> datetime | None:
    if at is None:
        return None
    try:
        return datetime.fromtimestamp(at, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None  # a worker with a broken clock: the store uses now


def _when(name: str, at: float | None) -> dict[str, datetime]:
    """The worker's timestamp when it has a usable one, else now."""
    return {name: _ts(at) or utcnow()}


def _raise_ack(acked: dict[int, int], run_id: int, seq: int) -> None:
    if seq > acked.get(run_id, 0):
        acked[run_id] = seq


def commit_batch(
    items: list[Item], masks: RunMasks | None = None, overlay: dict | None = None
) -> CommitResult:
    """Everything in one transaction: the runs' states are read once, each report is checked
    against the run model (desktop.core.runs) in order, and only what changes is written.
    With MASKS, secret values in output are replaced before it is stored (hub/masks.py)."""
    result = CommitResult()
    held = _Held(masks, overlay, result)
    with scheduling.transaction():
        # the runs' whole rows, locked: the checks, the output bookkeeping and the records of
        # the runs that changed all come from this read (no read-back after writing)
        rows = queries.runs_for_reports(a.run_id for _, a in items)
        owners = {rid: (r["state"], r["last_seq"], r["worker_name"]) for rid, r in rows.items()}
        items = _owned(items, owners, result)
        started = [(w, a) for w, a in items if isinstance(a, StoreStarted)]
        outputs = [a for _, a in items if isinstance(a, StoreOutput)]
        finished = [(w, a) for w, a in items if isinstance(a, StoreFinished)]
        current = {rid: (state, seq) for rid, (state, seq, _) in owners.items()}
        changed: set[int] = set()
        ended: set[int] = set()
        # Decided per phase, in the messages' order, on ``current`` (each phase moves it on):
        # output must see its run's started seq, and a finished comes after the output it
        # follows.  Written together at the end, one UPDATE per run: the phases' columns are
        # merged in that order, each writing absolute values over the one before.
        writes: list[tuple[int, dict[str, Any]]] = []
        for worker, a in started:
            update = _started(worker, a, current, changed, result)
            if update is not None:
                writes.append(update)
        if outputs:
            _outputs(outputs, current, result, held, rows, writes)
        updates: list[Update] = []
        for worker, end in finished:
            updates.append(_finished(worker, end, current, changed, ended, result))
        held.mask_reasons(updates)
        held.flush_ended(ended)
        written = scheduling.update_runs(writes + [u for u in updates if u is not None])
        records = [queries.record_after_writes(rows[rid], written[rid]) for rid in sorted(changed)]
        # notifications and chains commit with the result, or not at all
        result.chained = ends.after_ended([r for r in records if r.id in ended])
    result.changed = records
    result.ended = [r for r in records if r.id in ended]
    return result


Update = tuple[int, dict] | None  # (run id, columns to write), None: nothing to write


def _owned(items: list[Item], owners, result: CommitResult) -> list[Item]:
    """The items whose worker owns their run (or whose run is unknown: acked and dropped
    later); the others go to ``result.refused``."""
    kept = []
    for worker, a in items:
        row = owners.get(a.run_id)
        if row is not None:
            what = type(a).__name__.removeprefix("Store").lower()
            problem = report_verdict(what, worker, row[2], row[0])
            if problem:
                log.warning("worker %s: run %s: %s", worker, a.run_id, problem)
                result.refused.append(
                    Refusal(worker, a.run_id, a.seq, f"run {a.run_id}: {problem}")
                )
                continue
        kept.append((worker, a))
    return kept


def _current_state(worker, what: str, a, current, result: CommitResult) -> str | None:
    """The run's committed state when this started/finished report is new; None (and the ack
    to send settled) for a run the store does not know or a replay."""
    if a.run_id not in current:
        log.warning("worker %s %s unknown run %s; acked and ignored", worker, what, a.run_id)
        result.unknown.add(a.run_id)
        _raise_ack(result.acked, a.run_id, a.seq)
        return None
    state, last_seq = current[a.run_id]
    if a.seq <= last_seq:
        _raise_ack(result.acked, a.run_id, last_seq)  # a replay
        return None
    return state


def _settle(a, state: str, cols: dict, current, result: CommitResult) -> Update:
    current[a.run_id] = (state, a.seq)
    _raise_ack(result.acked, a.run_id, a.seq)
    return a.run_id, cols


def _started(worker, a: StoreStarted, current, changed: set, result: CommitResult) -> Update:
    state = _current_state(worker, "started", a, current, result)
    if state is None:
        return None
    if states.can_transition(state, states.RUNNING):
        cols = {"state": states.RUNNING, "worker_name": worker, "last_seq": a.seq}
        cols.update(_when("started_at", a.at))
        state = states.RUNNING
        changed.add(a.run_id)
    else:
        cols = {"last_seq": a.seq}  # already decided (cancelled, lost): keep the seq moving
    return _settle(a, state, cols, current, result)


class _Held:
    """The masking state one commit works on: maskers and held texts, read from the hub's
    RunMasks (or the store after a restart), changed only in the commit's result."""

    def __init__(self, masks: RunMasks | None, overlay: dict | None, result: CommitResult):
        self.masks = masks
        self.overlay = overlay or {}
        self.result = result

    def masker(self, run_id: int) -> Masker:
        learned = self.result.mask_learned.get(run_id)
        if learned is not None:
            return learned
        assert self.masks is not None  # callers mask only when the hub gave masks
        return self.masks.masker(run_id)

    def learn(self, run_ids: set[int]) -> None:
        """Runs dispatched before this console started: their secrets come from the store."""
        assert self.masks is not None  # callers learn only when the hub gave masks
        missing = self.masks.missing(run_ids)
        if not missing:
            return
        try:
            values = job_secrets.values_for_runs(missing)
        except SecretKeyError as exc:
            # nothing to mask with: the output is kept, and the admin told why
            log.error("cannot mask secrets in the output of runs %s: %s", sorted(missing), exc)
            values = {}
        for run_id in missing:
            self.result.mask_learned[run_id] = Masker(values.get(run_id, ()))

    def get(self, key: StreamKey) -> tuple[str, int]:
        for source in (self.result.mask_held, self.overlay):
            if key in source:
                return source[key]
        assert self.masks is not None  # callers mask only when the hub gave masks
        return self.masks.held(key)

    def mask(self, a: StoreOutput, text: str) -> str:
        masker = self.masker(a.run_id)
        if not masker:
            return text
        key = (a.run_id, a.stream)
        shown, rest = masker.feed(self.get(key)[0], text)
        self.result.mask_held[key] = (rest, a.seq)
        return shown

    def mask_reasons(self, updates: list[Update]) -> None:
        """A worker's reason (an error text) is output too: secrets in it are masked."""
        if self.masks is None:
            return
        with_reason = [u for u in updates if u is not None and u[1].get("reason")]
        self.learn({run_id for run_id, _ in with_reason})
        for run_id, cols in with_reason:
            cols["reason"] = self.masker(run_id).mask(cols["reason"])

    def flush_ended(self, ended: set[int]) -> None:
        """A run that ended shows what its streams still held: appended to each stream's last
        stored chunk (it cannot be a secret any more: no more output comes)."""
        if self.masks is None:
            return
        for run_id in ended:
            keys = set(self.masks.held_of_run(run_id))
            keys |= {k for k in (*self.overlay, *self.result.mask_held) if k[0] == run_id}
            for key in keys:
                text, seq = self.get(key)
                if text:
                    rest = self.masker(run_id).flush(text)
                    queries.append_to_chunk(run_id, seq, rest)
                self.result.mask_held[key] = ("", seq)


def _outputs(
    outputs: list[StoreOutput],
    current,
    result: CommitResult,
    held: _Held,
    rows: dict[int, dict[str, Any]],
    writes: list[tuple[int, dict[str, Any]]],
) -> None:
    """Store the output (its runs' new bookkeeping goes to WRITES, for the commit to write)."""
    # NUL cannot be stored in a PostgreSQL text column (nor by every driver): kept visible
    fresh = [a for a in outputs if a.run_id in current]
    if held.masks is not None:
        held.learn({a.run_id for a in fresh})
    last = {rid: seq for rid, (_, seq) in current.items()}
    texts: dict[int, str] = {}
    for a in sorted(fresh, key=lambda a: (a.run_id, a.seq)):
        if a.seq <= last[a.run_id]:
            continue  # a replay: the store drops it, the masking state must not see it twice
        last[a.run_id] = a.seq
        text = a.text.replace("\x00", "\ufffd")
        texts[id(a)] = held.mask(a, text) if held.masks is not None else text
    chunks = [
        OutputChunk(
            a.run_id, a.seq, a.stream, texts.get(id(a), a.text.replace("\x00", "\ufffd")), _ts(a.at)
        )
        for a in outputs
    ]
    # the runs' bookkeeping as read with them, and the seqs this commit has taken since
    known = {
        rid: (seq, rows[rid]["output_bytes"], bool(rows[rid]["output_truncated"]))
        for rid, (_, seq) in current.items()
    }
    cap = next(iter(rows.values()))["cap"] if rows else None
    committed = queries.append_output(chunks, (known, cap), writes)
    for chunk in chunks:
        if chunk.run_id not in committed:
            _raise_ack(result.acked, chunk.run_id, chunk.seq)  # unknown run: let it go
            result.unknown.add(chunk.run_id)
            continue
        _raise_ack(result.acked, chunk.run_id, committed[chunk.run_id])
        if chunk.run_id in current and chunk.seq > current[chunk.run_id][1]:
            result.new_output.append(chunk)
    for run_id, seq in committed.items():
        if run_id in current:
            current[run_id] = (current[run_id][0], max(seq, current[run_id][1]))


def _finished(worker, a: StoreFinished, current, changed: set, ended: set, result) -> Update:
    state = _current_state(worker, "finished", a, current, result)
    if state is None:
        return None
    if states.can_transition(state, a.outcome):
        cols = {
            "state": a.outcome,
            "exit_code": a.exit_code,
            "reason": (a.reason or "")[:1000].replace("\x00", "\ufffd"),
            "worker_name": worker,
            "last_seq": a.seq,
        }
        cols.update(_when("finished_at", a.at))
        state = a.outcome
        changed.add(a.run_id)
        ended.add(a.run_id)
    else:
        log.info(
            "run %s: %s reported %s but the run is already %s; kept",
            a.run_id,
            worker,
            a.outcome,
            state,
        )
        cols = {"last_seq": a.seq}
    return _settle(a, state, cols, current, result)
