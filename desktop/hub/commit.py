"""Commit what workers reported, many connections at once, in ONE transaction (DB thread).

The server collects started/output/finished actions from every connection while the previous
batch is being written, then hands the whole lot to :func:`commit_batch`.  One transaction per
batch (not per message) is what makes 100,000 output lines a second possible.

Replays are harmless: output at or below a run's committed ``last_seq`` is dropped by the
store, and a started/finished whose seq is already committed changes nothing.  Either way the
result tells the server the committed seq to ack, so the worker can drop its spooled copy.
Reports for runs the store does not know (deleted, or another console's database) are acked
and dropped with a warning, or the worker would replay them forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from desktop.core import runs as states
from desktop.core.timeutil import utcnow
from desktop.hub.session import StoreFinished, StoreOutput, StoreStarted
from desktop.store import queries
from desktop.store.errors import NotFound
from desktop.store.migrations import write_transaction
from desktop.store.models import database_proxy
from desktop.store.records import OutputChunk, RunRecord

log = logging.getLogger(__name__)

Item = tuple[str, StoreStarted | StoreOutput | StoreFinished]  # (worker name, action)


@dataclass
class CommitResult:
    acked: dict[int, int] = field(default_factory=dict)  # run id -> committed seq to ack
    changed: list[RunRecord] = field(default_factory=list)  # runs whose state changed
    ended: list[RunRecord] = field(default_factory=list)  # ... of which reached an outcome
    new_output: list[OutputChunk] = field(default_factory=list)  # chunks actually stored


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


def commit_batch(items: list[Item]) -> CommitResult:
    result = CommitResult()
    started = [(w, a) for w, a in items if isinstance(a, StoreStarted)]
    outputs = [a for _, a in items if isinstance(a, StoreOutput)]
    finished = [(w, a) for w, a in items if isinstance(a, StoreFinished)]
    with write_transaction(database_proxy):
        for worker, a in started:
            _started(worker, a, result)
        if outputs:
            _outputs(outputs, result)
        for worker, a in finished:
            _finished(worker, a, result)
    return result


def _started(worker: str, a: StoreStarted, result: CommitResult) -> None:
    try:
        record = queries.transition_run(
            a.run_id, states.RUNNING, seq=a.seq, worker_name=worker, **_when("started_at", a.at)
        )
    except NotFound:
        log.warning("worker %s started unknown run %s; acked and ignored", worker, a.run_id)
        _raise_ack(result.acked, a.run_id, a.seq)
        return
    except states.TransitionError:
        # a replay, or a run that was already decided (cancelled, lost): keep the seq moving
        _raise_ack(result.acked, a.run_id, queries.advance_seq(a.run_id, a.seq))
        return
    result.changed.append(record)
    _raise_ack(result.acked, a.run_id, record.last_seq)


def _outputs(outputs: list[StoreOutput], result: CommitResult) -> None:
    chunks = [OutputChunk(a.run_id, a.seq, a.stream, a.text, _ts(a.at)) for a in outputs]
    before: dict[int, int] = {}
    for run_id in {c.run_id for c in chunks}:
        record = queries.get_run(run_id)
        if record is not None:
            before[run_id] = record.last_seq
    committed = queries.append_output(chunks)
    for chunk in chunks:
        if chunk.run_id not in committed:
            _raise_ack(result.acked, chunk.run_id, chunk.seq)  # unknown run: let it go
            continue
        _raise_ack(result.acked, chunk.run_id, committed[chunk.run_id])
        if chunk.seq > before.get(chunk.run_id, 0):
            result.new_output.append(chunk)


def _finished(worker: str, a: StoreFinished, result: CommitResult) -> None:
    record = queries.get_run(a.run_id)
    if record is None:
        log.warning("worker %s finished unknown run %s; acked and ignored", worker, a.run_id)
        _raise_ack(result.acked, a.run_id, a.seq)
        return
    if record.last_seq >= a.seq:
        _raise_ack(result.acked, a.run_id, record.last_seq)  # a replay
        return
    try:
        record = queries.transition_run(
            a.run_id,
            a.outcome,
            seq=a.seq,
            exit_code=a.exit_code,
            reason=a.reason,
            worker_name=worker,
            **_when("finished_at", a.at),
        )
    except states.TransitionError:
        log.info(
            "run %s: %s reported %s but the run is already %s; kept",
            a.run_id,
            worker,
            a.outcome,
            record.state,
        )
        _raise_ack(result.acked, a.run_id, queries.advance_seq(a.run_id, a.seq))
        return
    result.changed.append(record)
    result.ended.append(record)
    _raise_ack(result.acked, a.run_id, record.last_seq)
