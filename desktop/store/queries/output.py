"""Output: what a run printed, stored in seq order up to the per-run cap."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from desktop.store import settings as settings_mod
from desktop.store.models import Run, RunOutput, Setting
from desktop.store.queries.common import _aware, _joined, _naive, _now, _read, _tuples
from desktop.store.queries.prepared import _by_ids, _insert_rows
from desktop.store.queries.runs import update_runs
from desktop.store.records import OutputChunk

log = logging.getLogger(__name__)


def _output_cap(value: str | None) -> int:
    """The setting's stored text (None: not set) -> the per-run cap in bytes."""
    try:
        if value is not None:
            return int(value)
    except ValueError:
        pass
    return int(settings_mod.DEFAULTS["output_cap_bytes"])


def _state_query(ids: list):
    """The runs' output bookkeeping, and the cap setting with each row: read in every commit
    that stores output (another console may change the setting), one round trip for both."""
    cap = Setting.select(Setting.setting_value).where(Setting.setting_key == "output_cap_bytes")
    return Run.select(
        Run.id, Run.last_seq, Run.output_bytes, Run.output_truncated, cap.alias("cap")
    ).where(Run.id.in_(ids))


def truncation_marker(cap: int) -> str:
    return (
        f"[output truncated: this run passed the output limit of {cap:,} bytes "
        "(setting output_cap_bytes); later output was not stored]\n"
    )


def append_output(
    chunks: Iterable[OutputChunk],
    known: tuple[dict[int, tuple[int, int, bool]], str | None] | None = None,
    run_writes: list[tuple[int, dict[str, Any]]] | None = None,
) -> dict[int, int]:
    """Store output of many runs in ONE transaction.  Chunks with seq <= the run's committed
    last_seq are replays and dropped.  Past the per-run cap text is not stored: one marker chunk
    is, and output_truncated is set; seqs still advance so the hub can ack.  Unknown run ids are
    logged and skipped.  Returns {run_id: committed last_seq} for every known run given.

    For the hub's commit, which has read the runs already (queries.runs_for_reports, locked):
    ``known`` is ({run id: (last_seq, output_bytes, output_truncated)} as its transaction has
    them, the output_cap_bytes setting's text) and replaces this function's read; with
    ``run_writes`` the runs' new bookkeeping is appended there as (run id, columns) for the
    caller to write with its other columns of the same runs (one UPDATE per run, not two)."""
    by_run: dict[int, list[OutputChunk]] = defaultdict(list)
    for chunk in chunks:
        by_run[chunk.run_id].append(chunk)
    if not by_run:
        return {}
    now = _now()
    result: dict[int, int] = {}
    with _joined():  # the hub's commit: no savepoint of its own
        state: dict[int, tuple[int, int, bool]] = {}
        cap = 0  # read with the runs: only needed when one of them is known
        if known is not None:
            state, cap_text = known
            cap = _output_cap(cap_text)
        for row in _by_ids("output_state", _state_query, by_run) if known is None else ():
            state[row["id"]] = (row["last_seq"], row["output_bytes"], bool(row["output_truncated"]))
            cap = _output_cap(row["cap"])
        rows: list[tuple] = []
        updates: list[tuple] = []
        for rid, run_chunks in by_run.items():
            if rid not in state:
                log.warning("output for unknown run %s dropped (%d chunks)", rid, len(run_chunks))
                continue
            last_seq, nbytes, truncated = state[rid]
            start_seq, start_bytes, start_trunc = last_seq, nbytes, truncated
            for chunk in sorted(run_chunks, key=lambda c: c.seq):
                if chunk.seq <= last_seq:
                    continue  # a replay of something already committed
                last_seq = chunk.seq
                if truncated:
                    continue
                size = len(chunk.text.encode("utf-8", "replace"))
                at = _naive(chunk.at) or now
                if nbytes + size > cap:
                    truncated = True
                    rows.append((rid, chunk.seq, "stderr", truncation_marker(cap), at))
                    continue
                nbytes += size
                rows.append((rid, chunk.seq, chunk.stream, chunk.text, at))
            if (last_seq, nbytes, truncated) != (start_seq, start_bytes, start_trunc):
                updates.append((last_seq, nbytes, truncated, rid))
            result[rid] = last_seq
        if run_writes is None:
            update_runs(("last_seq", "output_bytes", "output_truncated"), updates)
        else:
            run_writes += [
                (rid, {"last_seq": seq, "output_bytes": nbytes, "output_truncated": truncated})
                for seq, nbytes, truncated, rid in updates
            ]
        _insert_rows(
            RunOutput,
            [RunOutput.run, RunOutput.seq, RunOutput.stream, RunOutput.text, RunOutput.at],
            rows,
        )
    return result


def append_to_chunk(run_id: int, seq: int, text: str) -> None:
    """Add TEXT to the end of one stored chunk (masking releases text it held back when a run
    ends, hub/commit.py).  In the caller's transaction."""
    RunOutput.update(text=RunOutput.text.concat(text)).where(
        (RunOutput.run == run_id) & (RunOutput.seq == seq)
    ).execute()


def read_output(run_id: int, after_seq: int = 0, limit: int | None = None) -> list[OutputChunk]:
    """A run's stored output in seq order, after ``after_seq`` (to follow a live run)."""
    with _read():
        query = (
            RunOutput.select(RunOutput.seq, RunOutput.stream, RunOutput.text, RunOutput.at)
            .where((RunOutput.run == run_id) & (RunOutput.seq > after_seq))
            .order_by(RunOutput.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [
            OutputChunk(run_id, seq, stream, text, _aware(at))
            for seq, stream, text, at in _tuples(query)
        ]
