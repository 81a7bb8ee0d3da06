"""Store operations the scheduler and the CLI need beyond queries/: the console's liveness
mark and requests from the CLI to the running console.

How `run NAME` and `runs cancel ID` reach a running console: the console writes the setting
``console.alive_at`` (an ISO time, no audit, no change bump) every 15 seconds.  The CLI refuses
with a clear error when it is older than ALIVE_MAX_AGE.  Otherwise it writes its request and
bumps the change counter and nudges the console (desktop/poke.py), which then reads the
counter at once (and every 30 s anyway):
- run: a queued manual run row (the scheduler dispatches queued rows anyway);
- cancel of a queued run: done directly (no worker involved);
- cancel of a dispatched/running run: a ``cancel_request.<run id>`` setting that the console
  takes (reads and deletes) and turns into a cancel message to the worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from desktop.core import runs as states
from desktop.core.timeutil import to_naive_utc, utcnow
from desktop.store.errors import NotFound
from desktop.store.migrations import joined_transaction, write_transaction
from desktop.store.models import ChangeCounter, Run, Setting, database_proxy
from desktop.store.queries.common import _tuples
from desktop.store.records import RunRecord

ALIVE_KEY = "console.alive_at"
POKE_KEY = "console.poke_port"  # where the running console listens for nudges (desktop/poke.py)
# the key a nudge is signed with: whoever can read the database may nudge, nobody else
POKE_SECRET_KEY = "console.poke_key"
# every 15 s: each mark wakes an idle console's database thread (benchmarks: idle wake-ups)
ALIVE_EVERY = timedelta(seconds=15)
ALIVE_MAX_AGE = timedelta(seconds=45)
CANCEL_PREFIX = "cancel_request."


def transaction():
    """One write transaction around several queries (they nest as savepoints), so the
    scheduler can batch without importing peewee."""
    return write_transaction(database_proxy)


def joined():
    """The caller's transaction when one is open (no savepoint: a failure fails it all), else
    a new write transaction."""
    return joined_transaction(database_proxy)


def bump() -> None:
    ChangeCounter.update(counter_value=ChangeCounter.counter_value + 1).where(
        ChangeCounter.id == 1
    ).execute()


def _put(key: str, value: str) -> None:
    if not Setting.update(setting_value=value).where(Setting.setting_key == key).execute():
        Setting.insert(setting_key=key, setting_value=value).on_conflict_ignore().execute()


def mark_alive(now: datetime, poke_port: int | None = None, poke_key: str | None = None) -> None:
    with write_transaction(database_proxy):
        _put(ALIVE_KEY, now.isoformat())
        if poke_port is not None:
            _put(POKE_KEY, str(poke_port))
        if poke_key is not None:
            _put(POKE_SECRET_KEY, poke_key)


def clear_alive() -> None:
    with write_transaction(database_proxy):
        Setting.delete().where(
            Setting.setting_key.in_([ALIVE_KEY, POKE_KEY, POKE_SECRET_KEY])
        ).execute()


def poke_target() -> tuple[int, str] | None:
    """Where a running console listens for nudges and the key to sign them, if it is alive."""
    if not console_alive():
        return None
    rows = {
        r.setting_key: r.setting_value
        for r in Setting.select().where(Setting.setting_key.in_([POKE_KEY, POKE_SECRET_KEY]))
    }
    try:
        return int(rows[POKE_KEY]), rows[POKE_SECRET_KEY]
    except (KeyError, ValueError):
        return None


def console_alive(now: datetime | None = None) -> bool:
    now = now or utcnow()
    row = Setting.get_or_none(Setting.setting_key == ALIVE_KEY)
    if row is None:
        return False
    try:
        seen = datetime.fromisoformat(row.setting_value)
    except ValueError:
        return False
    return now - seen <= ALIVE_MAX_AGE


def request_cancel(run_id: int) -> str:
    """From the CLI.  Returns what happened: "cancelled" (it was queued) or "requested"."""
    from desktop.store import queries

    with write_transaction(database_proxy):
        run = Run.get_or_none(Run.id == run_id)
        if run is None:
            raise NotFound(f"there is no run {run_id}")
        if run.state == states.QUEUED:
            queries.transition_run(run_id, states.CANCELLED, reason="cancelled from the CLI")
            bump()
            return "cancelled"
        if run.state not in states.ACTIVE:
            raise states.TransitionError(f"run {run_id} already ended ({run.state})")
        _put(f"{CANCEL_PREFIX}{run_id}", utcnow().isoformat())
        bump()
        return "requested"


def take_cancel_requests() -> list[int]:
    """The console's side: the run ids asked to cancel, removed from the store."""
    with write_transaction(database_proxy):
        keys = [
            k
            for (k,) in _tuples(
                Setting.select(Setting.setting_key).where(
                    Setting.setting_key.startswith(CANCEL_PREFIX)
                )
            )
        ]
        if keys:
            Setting.delete().where(Setting.setting_key.in_(keys)).execute()
    out = []
    for key in keys:
        try:
            out.append(int(key[len(CANCEL_PREFIX) :]))
        except ValueError:
            continue
    return out


# --- bulk run updates for the hub and scheduler (many runs per transaction) --------------------


def run_states(run_ids) -> dict[int, tuple[str, int]]:
    """{run id: (state, last_seq)} for the runs that exist, in one query per 500 ids."""
    from desktop.store import queries

    return {rid: (state, last_seq) for rid, state, last_seq in queries.states_of_runs(run_ids)}


def fetch_runs(run_ids) -> list[RunRecord]:
    """Run records for many ids (missing ones left out), in id order."""
    from desktop.store import queries

    return queries.runs_by_ids(run_ids)


def update_runs(updates: list[tuple[int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """Write columns of many runs (run id, columns); the caller checked each transition
    (desktop.core.runs) against the state it read in the same transaction.  Datetimes may be
    aware (stored naive UTC).  One statement per set of columns, executed for every run that
    writes those columns (on PostgreSQL all in shared round trips).  Later columns for the same
    run override earlier ones, as if applied in order (each update writes absolute values).
    Returns {run id: the columns written}."""
    from desktop.store import queries

    merged: dict[int, dict[str, Any]] = {}
    for run_id, cols in updates:
        merged.setdefault(run_id, {}).update(cols)
    groups: dict[tuple[str, ...], list[tuple]] = {}
    for run_id, cols in merged.items():
        names = tuple(sorted(cols))
        values = [to_naive_utc(v) if isinstance(v, datetime) else v for v in map(cols.get, names)]
        groups.setdefault(names, []).append((*values, run_id))
    queries.update_many_runs(groups)
    return merged


def dispatch_runs(choices: list[tuple[int, str]], now: datetime) -> list[RunRecord]:
    """queued -> dispatched for many (run id, worker) pairs in one transaction; runs no longer
    queued (cancelled meanwhile) are left alone and out of the result."""
    from desktop.store import queries

    with joined_transaction(database_proxy):  # the pass's own, when it has one
        wanted = dict(choices)
        moved = queries.dispatch_returning(choices, now)
        if moved is None:  # no UPDATE ... RETURNING: written, then read back
            queries.mark_dispatched(choices, now)
            moved = fetch_runs(wanted)
        return [
            r
            for r in sorted(moved, key=lambda r: r.id)
            if r.state == states.DISPATCHED
            and r.worker_name == wanted[r.id]
            and r.dispatched_at == now
        ]
