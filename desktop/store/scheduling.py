"""Store operations the scheduler and the CLI need beyond queries.py: the console's liveness
mark and requests from the CLI to the running console.

How `run NAME` and `runs cancel ID` reach a running console: the console writes the setting
``console.alive_at`` (an ISO time, no audit, no change bump) every few seconds.  The CLI refuses
with a clear error when it is older than ALIVE_MAX_AGE.  Otherwise it writes its request and
bumps the change counter; the console polls the counter about once a second, so it reacts
within ~1 s:
- run: a queued manual run row (the scheduler dispatches queued rows anyway);
- cancel of a queued run: done directly (no worker involved);
- cancel of a dispatched/running run: a ``cancel_request.<run id>`` setting that the console
  takes (reads and deletes) and turns into a cancel message to the worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from desktop.core import runs as states
from desktop.core.timeutil import utcnow
from desktop.store.errors import NotFound
from desktop.store.migrations import write_transaction
from desktop.store.models import ChangeCounter, Run, Setting, database_proxy

ALIVE_KEY = "console.alive_at"
ALIVE_EVERY = timedelta(seconds=5)
ALIVE_MAX_AGE = timedelta(seconds=20)
CANCEL_PREFIX = "cancel_request."


def bump() -> None:
    ChangeCounter.update(counter_value=ChangeCounter.counter_value + 1).where(
        ChangeCounter.id == 1
    ).execute()


def _put(key: str, value: str) -> None:
    if not Setting.update(setting_value=value).where(Setting.setting_key == key).execute():
        Setting.insert(setting_key=key, setting_value=value).on_conflict_ignore().execute()


def mark_alive(now: datetime) -> None:
    with write_transaction(database_proxy):
        _put(ALIVE_KEY, now.isoformat())


def clear_alive() -> None:
    with write_transaction(database_proxy):
        Setting.delete().where(Setting.setting_key == ALIVE_KEY).execute()


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
            for (k,) in Setting.select(Setting.setting_key)
            .where(Setting.setting_key.startswith(CANCEL_PREFIX))
            .tuples()
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
