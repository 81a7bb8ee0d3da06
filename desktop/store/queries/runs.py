"""Runs: one occurrence of a job, created by the scheduler, moved through the run model
(desktop.core.runs) by the scheduler and the hub."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import peewee

from desktop.core import runs as run_states
from desktop.core.policies import RETRYABLE
from desktop.store.errors import JobDeletedMeanwhile, NotFound
from desktop.store.models import Job, Run, Setting, database_proxy
from desktop.store.queries.common import (
    _aware,
    _dt,
    _dt_set,
    _is_sqlite,
    _joined,
    _naive,
    _now,
    _raw_dicts,
    _read,
    _tuples,
    _write,
)
from desktop.store.queries.jobs import _job_exists
from desktop.store.queries.prepared import (
    _bind,
    _by_id,
    _by_ids,
    _compile,
    _execute_each,
    _execute_many,
    _insert_returning,
    _inserted_id,
    _prepared,
    _rows,
    returning_supported,
)
from desktop.store.records import ActiveRun, RunRecord

RUN_FIELDS = ("worker_name", "exit_code", "reason", "dispatched_at", "started_at", "finished_at")

INSERT_BATCH = 500  # rows per INSERT: well under every database's parameter limit


def _run_query():
    return Run.select(Run, Job.name.alias("job_name")).join(Job)


def _run_from_dict(row: dict[str, Any]) -> RunRecord:
    args = row["args_json"]
    return RunRecord(
        id=row["id"],
        job_id=row["job"],
        job_name=row["job_name"],
        scheduled_at=_aware(row["scheduled_at"]),
        attempt=row["attempt"],
        trigger=row["trigger_kind"],
        state=row["state"],
        worker_name=row["worker_name"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        args=tuple(json.loads(args)) if args is not None else None,
        not_before=_aware(row["not_before"]),
        created_at=_aware(row["created_at"]),
        dispatched_at=_aware(row["dispatched_at"]),
        started_at=_aware(row["started_at"]),
        finished_at=_aware(row["finished_at"]),
        last_seq=row["last_seq"],
        output_bytes=row["output_bytes"],
        output_truncated=bool(row["output_truncated"]),
    )


_RUN_TIMES = (
    "scheduled_at",
    "not_before",
    "created_at",
    "dispatched_at",
    "started_at",
    "finished_at",
)


def _run_from_raw(row: dict[str, Any]) -> RunRecord:
    """A raw driver row of _run_query() -> RunRecord, without peewee's per-field conversion."""
    row["job"] = row.pop(Run.job.column_name)
    for name in _RUN_TIMES:
        value = row[name]
        if isinstance(value, str):  # SQLite hands back text; PostgreSQL datetimes
            row[name] = datetime.fromisoformat(value)
    return _run_from_dict(row)


def _fetch_run(run_id: int) -> RunRecord | None:
    rows = _by_id("run", lambda i: _run_query().where(Run.id == i), run_id)
    return _run_from_raw(rows[0]) if rows else None


def create_run(
    job_id: int,
    scheduled_at: datetime,
    attempt: int = 1,
    trigger: str = run_states.SCHEDULE,
    state: str = run_states.QUEUED,
    args: Sequence[str] | None = None,
    not_before: datetime | None = None,
    reason: str = "",
) -> RunRecord | None:
    """Record one occurrence.  Returns None when (job, scheduled_at, attempt) already exists:
    the unique index, not a prior SELECT, is the guard, so two writers cannot both win."""
    if state not in run_states.ALL_STATES:
        raise ValueError(f"unknown run state {state!r}")
    if trigger not in run_states.TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    now = _now()
    try:
        with _write():
            if not _job_exists(job_id):
                raise NotFound(f"job {job_id} does not exist (deleted?)")
            values = {
                "job": job_id,
                "scheduled_at": _naive(scheduled_at),
                "attempt": attempt,
                "trigger_kind": trigger,
                "state": state,
                "reason": reason[:1000],
                "args_json": json.dumps(list(args), ensure_ascii=False)
                if args is not None
                else None,
                "not_before": _naive(not_before),
                "created_at": now,
                "finished_at": now if state in run_states.TERMINAL else None,
            }
            names = tuple(values)
            cursor = _prepared(
                ("insert_run",),
                lambda *p: Run.insert(dict(zip(names, p))),
                list(values.values()),
            )
            return _fetch_run(_inserted_id(cursor))
    except peewee.IntegrityError:
        return None


def create_manual_runs(
    requests: Sequence[tuple[int, datetime, Sequence[str] | None, str]], trigger: str
) -> list[RunRecord | NotFound | None] | None:
    """Queued first attempts for many (job id, occurrence, args, reason) at once: one read of
    the jobs and one multi-row INSERT ... RETURNING, where create_run costs five statements per
    run (savepoint, job check, insert, release, read): on PostgreSQL each is a round trip.  The
    records are built from what was written (test_runs checks they equal what get_run reads).
    A request whose job is gone gets its NotFound, one whose occurrence is already taken (the
    unique index) None: the caller records it with create_run, which bumps it.  Returns None
    where the database has no INSERT ... RETURNING (nothing written).  Raises
    JobDeletedMeanwhile when a job was deleted between the read and the INSERT: the caller's
    transaction is spoilt and must be undone and done again."""
    if trigger not in run_states.TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    if not returning_supported():
        return None
    now = _now()
    with _joined():  # the group commit's transaction: the INSERT has its savepoint below
        names = {
            r["id"]: r["name"]
            for r in _by_ids(
                "job_names",
                lambda ids: Job.select(Job.id, Job.name).where(Job.id.in_(ids)),
                (job_id for job_id, *_ in requests),
            )
        }
        rows = [
            (
                job_id,
                _naive(at),
                1,
                trigger,
                run_states.QUEUED,
                reason[:1000],
                json.dumps(list(args), ensure_ascii=False) if args is not None else None,
                now,
                0,
                0,
                False,
            )
            for job_id, at, args, reason in requests
            if job_id in names
        ]
        # a taken occurrence is skipped, not an error (no savepoint needed to go on)
        try:
            returned = _insert_returning(
                Run,
                _NEW_RUN_FIELDS,
                rows,
                ("id", Run.job.column_name, "scheduled_at"),
                on_conflict_skip=True,
            )
        except peewee.IntegrityError as exc:
            # the foreign key: a job deleted since the read above (PostgreSQL: by another
            # connection) fails the whole INSERT, and on PostgreSQL the transaction with it;
            # the caller undoes it and asks again, the jobs read anew (no savepoint on the
            # path every group takes: two round trips each)
            raise JobDeletedMeanwhile(
                "a job was deleted while its runs were being recorded"
            ) from exc
    # (job, occurrence) is unique (the index): it says which id each row got
    ids = {(job_id, _db_time(at)): run_id for run_id, job_id, at in returned}
    out: list[RunRecord | NotFound | None] = []
    made = iter(rows)
    created = _aware(now)
    for job_id, *_ in requests:
        if job_id not in names:
            out.append(NotFound(f"job {job_id} does not exist (deleted?)"))
            continue
        row = next(made)
        run_id = ids.get((job_id, row[1]))
        if run_id is None:
            out.append(None)  # its occurrence was taken
            continue
        args_json = row[6]
        out.append(
            RunRecord(
                id=run_id,
                job_id=job_id,
                job_name=names[job_id],
                scheduled_at=_aware(row[1]),
                attempt=1,
                trigger=trigger,
                state=run_states.QUEUED,
                worker_name=None,
                exit_code=None,
                reason=row[5],
                args=tuple(json.loads(args_json)) if args_json is not None else None,
                not_before=None,
                created_at=created,
                dispatched_at=None,
                started_at=None,
                finished_at=None,
                last_seq=0,
                output_bytes=0,
                output_truncated=False,
            )
        )
    return out


def _db_time(value: datetime | str) -> datetime:
    """A time column as the driver hands it back (SQLite: text) -> naive UTC datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


_NEW_RUN_FIELDS = (
    Run.job,
    Run.scheduled_at,
    Run.attempt,
    Run.trigger_kind,
    Run.state,
    Run.reason,
    Run.args_json,
    Run.created_at,
    Run.last_seq,  # the defaults peewee would fill in: this INSERT is built by hand
    Run.output_bytes,
    Run.output_truncated,
)


def record_missed(job_id: int, scheduled_ats: Iterable[datetime], reason: str = "") -> int:
    """Record occurrences that did not run (state "missed"); existing ones are left alone.
    Returns how many rows were added."""
    wanted = sorted({_naive(t) for t in scheduled_ats})
    if not wanted:
        return 0
    now = _now()
    added = 0
    with _write():
        if not _job_exists(job_id):
            raise NotFound(f"job {job_id} does not exist (deleted?)")
        for start in range(0, len(wanted), INSERT_BATCH):
            batch = wanted[start : start + INSERT_BATCH]
            have = {
                t
                for (t,) in _tuples(
                    Run.select(Run.scheduled_at).where(
                        (Run.job == job_id) & (Run.attempt == 1) & Run.scheduled_at.in_(batch)
                    )
                )
            }
            rows = [
                {
                    "job": job_id,
                    "scheduled_at": t,
                    "attempt": 1,
                    "trigger_kind": run_states.SCHEDULE,
                    "state": run_states.MISSED,
                    "reason": reason[:1000],
                    "created_at": now,
                    "finished_at": now,
                }
                for t in batch
                if t not in have
            ]
            if rows:
                Run.insert_many(rows).on_conflict_ignore().execute()
                added += len(rows)
        if added:
            # one "missed" notification per job and firing (the latest), not one per occurrence
            latest = (
                Run.select(Run.id)
                .where((Run.job == job_id) & (Run.attempt == 1) & (Run.scheduled_at == wanted[-1]))
                .scalar()
            )
            missed = _fetch_run(latest) if latest else None
            if missed is not None and missed.state == run_states.MISSED:
                from desktop.store import ends

                ends.after_ended([missed])
    return added


def transition_run(run_id: int, new_state: str, **fields: Any) -> RunRecord:
    """Move a run to ``new_state`` if the run model allows it (checked against the committed
    state inside the same transaction, so a late or stale writer cannot overwrite a result).
    ``fields``: worker_name, exit_code, reason, dispatched_at, started_at, finished_at, and
    ``seq`` (raises last_seq to it: the started/finished message's seq).  A terminal state
    without finished_at gets now."""
    unknown = set(fields) - set(RUN_FIELDS) - {"seq", "not_before"}
    if unknown:
        raise TypeError(f"transition_run got unknown fields {sorted(unknown)}")
    with _write():
        query = Run.select().where(Run.id == run_id)
        if not _is_sqlite():
            query = query.for_update()
        run = query.first()
        if run is None:
            raise NotFound(f"run {run_id} does not exist (pruned or deleted?)")
        run_states.check_transition(run.state, new_state)
        cols: dict[str, Any] = {"state": new_state}
        for key, value in fields.items():
            if key == "seq":
                if value is not None and value > run.last_seq:
                    cols["last_seq"] = value
            elif key.endswith("_at") or key == "not_before":
                cols[key] = _naive(value)
            elif key == "reason":
                cols[key] = (value or "")[:1000]
            else:
                cols[key] = value
        if new_state in run_states.TERMINAL and "finished_at" not in fields:
            cols["finished_at"] = _now()
        Run.update(**cols).where(Run.id == run_id).execute()
        record = _fetch_run(run_id)
        if record is None:  # cannot happen: the row is locked by this transaction
            raise NotFound(f"run {run_id} does not exist (pruned or deleted?)")
        if new_state in run_states.TERMINAL:
            from desktop.store import ends  # notifications and chains, same transaction

            ends.after_ended([record])
        return record


def advance_seq(run_id: int, seq: int) -> int:
    """Raise a run's last_seq to ``seq`` (for messages that are not output, when no state
    change goes with them).  Returns the committed last_seq; unknown run -> NotFound."""
    with _write():
        Run.update(last_seq=seq).where((Run.id == run_id) & (Run.last_seq < seq)).execute()
        value = Run.select(Run.last_seq).where(Run.id == run_id).scalar()
        if value is None:
            raise NotFound(f"run {run_id} does not exist (pruned or deleted?)")
        return int(value)


def get_run(run_id: int) -> RunRecord | None:
    with _read():
        return _fetch_run(run_id)


def list_runs(
    job_id: int | None = None, limit: int = 50, before_id: int | None = None
) -> list[RunRecord]:
    """Newest first, ``limit`` at a time; pass the last id seen as ``before_id`` for the next
    page.  Keyset paging on the (job, id) index: page 1,000 costs what page 1 costs."""
    with _read():
        query = _run_query()
        if job_id is not None:
            query = query.where(Run.job == job_id)
        if before_id is not None:
            query = query.where(Run.id < before_id)
        query = query.order_by(Run.id.desc()).limit(max(1, int(limit)))
        return [_run_from_dict(r) for r in query.dicts()]


def count_runs(job_id: int | None = None, state: str | None = None) -> int:
    query = Run.select()
    if job_id is not None:
        query = query.where(Run.job == job_id)
    if state is not None:
        query = query.where(Run.state == state)
    return query.count()


def active_runs() -> list[RunRecord]:
    """Runs still queued, dispatched or running, oldest first."""
    with _read():
        cursor = _prepared(
            ("active_runs",),
            lambda: _run_query().where(Run.state.in_(run_states.ACTIVE)).order_by(Run.id),
            [],
        )
        return [_run_from_raw(r) for r in _rows(cursor)]


def states_of_runs(run_ids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(id, state, last_seq) of the runs that exist among ``run_ids``."""
    rows = _by_ids(
        "run_states",
        lambda ids: Run.select(Run.id, Run.state, Run.last_seq).where(Run.id.in_(ids)),
        run_ids,
    )
    return [(r["id"], r["state"], r["last_seq"]) for r in rows]


def run_owners(run_ids: Iterable[int]) -> dict[int, tuple[str, int, str | None]]:
    """{id: (state, last_seq, worker_name)} of the runs that exist among ``run_ids``: what the
    hub checks a worker's reports and claims against (desktop.hub.ownership)."""
    rows = _by_ids(
        "run_owners",
        lambda ids: Run.select(Run.id, Run.state, Run.last_seq, Run.worker_name).where(
            Run.id.in_(ids)
        ),
        run_ids,
    )
    return {r["id"]: (r["state"], r["last_seq"], r["worker_name"]) for r in rows}


def _report_query(ids: list):
    # the output cap rides along: the commit stores output with these rows (another console
    # may change the setting, so it is read in every commit, as append_output does)
    cap = Setting.select(Setting.setting_value).where(Setting.setting_key == "output_cap_bytes")
    query = Run.select(Run, Job.name.alias("job_name"), cap.alias("cap")).join(Job)
    query = query.where(Run.id.in_(ids))
    # the commit builds the committed records from these rows and what it writes: no other
    # transaction may change them in between (SQLite's write transaction already holds the
    # whole database; the job's row is not locked, only read)
    return query if _is_sqlite() else query.for_update(of=Run)


def runs_for_reports(run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """{id: raw row} of the runs that exist among ``run_ids``, for the hub's commit: every
    column of _run_query() plus ``cap`` (the output_cap_bytes setting's text, None when not
    set), locked until the caller's transaction ends where the database locks rows.  Its
    ownership checks, output bookkeeping and the records of the runs it changed
    (:func:`record_after_writes`) all come from this one read: no read-back after writing."""
    rows = _by_ids("runs_for_reports", _report_query, run_ids)
    return {r["id"]: r for r in rows}


def record_after_writes(row: dict[str, Any], cols: dict[str, Any]) -> RunRecord:
    """The record a read of the run would give once ``cols`` are written to the run whose raw
    row (as :func:`runs_for_reports` read it, locked) is ``row``: values are turned into what
    the database hands back (times naive UTC, then aware)."""
    raw = dict(row)
    raw.pop("cap", None)
    for name, value in cols.items():
        raw[name] = _naive(value) if isinstance(value, datetime) else value
    return _run_from_raw(raw)


def active_run_states() -> list[ActiveRun]:
    """The scheduler's narrow view of the runs still queued, dispatched or running, oldest
    first."""
    with _read():
        cursor = _prepared(
            ("active_run_states",),
            lambda: (
                Run.select(
                    Run.id,
                    Run.job,
                    Run.state,
                    Run.worker_name,
                    Run.created_at,
                    Run.not_before,
                    Run.dispatched_at,
                )
                .where(Run.state.in_(run_states.ACTIVE))
                .order_by(Run.id)
            ),
            [],
        )
        return [
            ActiveRun(rid, job, state, worker, _dt_set(created), _dt(not_before), _dt(dispatched))
            for rid, job, state, worker, created, not_before, dispatched in cursor
        ]


def runs_owed_a_retry(since: datetime, limit: int = 500) -> list[RunRecord]:
    """Runs that ended since ``since`` in an outcome worth another attempt, with attempts left
    under their job's policy, and no next attempt recorded: the retries a scheduler that
    stopped (crash, stop, lost lead) before its next pass did not plan.  Only runs that ended
    after their job was last changed, of enabled jobs.  Oldest first, at most
    ``limit``.  ONE query: the state index finds the candidates, the unique (job, occurrence,
    attempt) index answers "has a next attempt" (the same index that makes planning it twice
    a no-op)."""
    following = Run.alias("following")
    next_attempt = following.select(following.id).where(
        (following.job == Run.job)
        & (following.scheduled_at == Run.scheduled_at)
        & (following.attempt == Run.attempt + 1)
    )
    with _read():
        query = (
            _run_query()
            .where(
                Run.state.in_(sorted(RETRYABLE))
                & (Run.finished_at >= _naive(since))
                # under the job's current settings: raising max_retries (or any edit) after a
                # run ended does not bring back a week of old failures; a disabled job neither
                & (Run.finished_at >= Job.updated_at)
                & (Job.enabled == True)  # noqa: E712 (SQL, not Python)
                & (Run.attempt >= 1)
                & (Run.attempt <= Job.max_retries)
                & ~peewee.fn.EXISTS(next_attempt)
            )
            .order_by(Run.id)
            .limit(max(1, int(limit)))
        )
        return [_run_from_raw(r) for r in _raw_dicts(query)]


def runs_by_ids(run_ids: Iterable[int]) -> list[RunRecord]:
    """Run records for many ids (missing ones left out), in id order."""
    rows = _by_ids("runs_by_ids", lambda ids: _run_query().where(Run.id.in_(ids)), run_ids)
    return sorted((_run_from_raw(r) for r in rows), key=lambda r: r.id)


def mark_dispatched(choices: Sequence[tuple[int, str]], when: datetime) -> None:
    """queued -> dispatched for many (run id, worker) pairs; runs no longer queued (cancelled
    meanwhile) are left alone.  One statement, executed for each pair."""
    if not choices:
        return
    sql, slots = _compile(
        ("mark_dispatched",),
        lambda state, worker, at, rid: Run.update(
            {Run.state: state, Run.worker_name: worker, Run.dispatched_at: at}
        ).where((Run.id == rid) & (Run.state == run_states.QUEUED)),
        4,
    )
    at = _naive(when)
    rows = [_bind(slots, (run_states.DISPATCHED, worker, at, rid)) for rid, worker in choices]
    _execute_many(sql, rows)


DISPATCH_BATCH = 400  # (run, worker) pairs per UPDATE: 2 parameters each, under every limit


def dispatch_returning(
    choices: Sequence[tuple[int, str]], when: datetime
) -> list[RunRecord] | None:
    """:func:`mark_dispatched`, and the records of the runs it moved (in no promised order):
    ONE ``UPDATE ... FROM (VALUES ...) RETURNING`` per DISPATCH_BATCH pairs where
    mark_dispatched executes its statement per pair and the caller read the runs back (two
    round trips on PostgreSQL, and on SQLite a second query's rows to build).  Each record is
    what a read of the run gives right after (its job's name read in the same statement).
    None where the database has no UPDATE ... FROM with RETURNING (nothing written)."""
    if not choices:
        return []
    if not returning_supported():
        return None
    database = database_proxy.obj
    left, right = database.quote
    run = f"{left}{Run._meta.table_name}{right}"
    job = f"{left}{Job._meta.table_name}{right}"

    def col(table: str, name: str) -> str:
        return f"{table}.{left}{name}{right}"

    back = ", ".join(col(run, f.column_name) for f in Run._meta.sorted_fields)
    job_name = (
        f"(SELECT {col(job, Job.name.column_name)} FROM {job} "
        f"WHERE {col(job, 'id')} = {col(run, Run.job.column_name)}) AS job_name"
    )
    mark = database.param
    at = _naive(when)
    out: list[RunRecord] = []
    for start in range(0, len(choices), DISPATCH_BATCH):
        batch = choices[start : start + DISPATCH_BATCH]
        # VALUES columns are column1, column2 on both SQLite and PostgreSQL
        sql = (
            f"UPDATE {run} SET {left}state{right} = {mark}, {left}worker_name{right} = v.column2, "
            f"{left}dispatched_at{right} = {mark} FROM (VALUES "
            + ", ".join([f"({mark}, {mark})"] * len(batch))
            + f") AS v WHERE {col(run, 'id')} = v.column1 AND {col(run, 'state')} = {mark} "
            f"RETURNING {back}, {job_name}"
        )
        params: list[Any] = [run_states.DISPATCHED, at]
        for run_id, worker in batch:
            params += [run_id, worker]
        params.append(run_states.QUEUED)
        out += [_run_from_raw(row) for row in _rows(database.execute_sql(sql, params))]
    return out


def update_runs(columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """``UPDATE run SET columns... WHERE id = ?`` for many rows of (values..., run id), one
    statement executed many times: the hub writes a batch of reports this way."""
    update_many_runs({columns: rows})


def update_many_runs(groups: Mapping[tuple[str, ...], Sequence[Sequence[Any]]]) -> None:
    """:func:`update_runs` for several sets of columns, in order; on PostgreSQL all of them
    share round trips (a commit of reports writes started runs and ended ones: one trip)."""
    statements = []
    for columns, rows in groups.items():
        if not rows:
            continue
        sql, slots = _compile(
            ("update_run", columns),
            lambda *p, c=columns: Run.update(dict(zip(c, p[:-1]))).where(Run.id == p[-1]),
            len(columns) + 1,
        )
        statements.append((sql, [_bind(slots, row) for row in rows]))
    _execute_each(statements)
