"""Leadership among consoles sharing one PostgreSQL database: a lease row with a fencing token.

Two tables, created on first use (PostgreSQL only; SQLite keeps the single-console file lock
of leader.py):

- ``jt_cluster_lease``: ONE row.  ``holder`` is the leading console's member id, ``epoch`` the
  fencing token (bumped at every change of hands), ``expires_at`` the end of the lease in the
  DATABASE's clock, so the consoles' clocks never matter.  The leader renews it every tick; a
  standby takes it only once it has expired.
- ``jt_cluster_member``: one row per console (host, pid, hub address, role, since when, last
  heartbeat, workers connected), for ``cluster status`` and the status bar.

Fencing: every transaction that fires or dispatches calls :func:`fence` first (firing.py).  It
locks the lease row FOR SHARE and checks that this console still holds an unexpired lease with
its epoch; otherwise :class:`NotLeader` rolls the transaction back.  A standby taking over has to
UPDATE that row, so it waits for a fencing transaction in flight to commit, and then sees its
runs: an old leader that comes back (stopped process, cut network) fires nothing.

The lease is ticked on a thread and connection of its own (desktop/service/cluster.py), so a
firing transaction that waits for a row lock cannot cost the lead; the database thread reads
the outcome from a :class:`Fence` bound to it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import peewee

from desktop.store.db import store_errors
from desktop.store.errors import StoreError
from desktop.store.models import database_proxy
from desktop.store.queries.common import change_marker

T = TypeVar("T")

LEASE_SECONDS = 5.0  # a leader that stops renewing is replaced this long after its last renewal
TICK_SECONDS = 1.0  # every console renews / checks the lease this often
FORGET_MEMBERS_AFTER = "1 hour"  # a console that stopped heartbeating drops out of the status

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jt_cluster_lease (
        id INTEGER PRIMARY KEY,
        epoch BIGINT NOT NULL,
        holder VARCHAR(64) NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL)""",
    """INSERT INTO jt_cluster_lease (id, epoch, holder, expires_at)
        VALUES (1, 0, '', now()) ON CONFLICT (id) DO NOTHING""",
    """CREATE TABLE IF NOT EXISTS jt_cluster_member (
        member_id VARCHAR(64) PRIMARY KEY,
        host VARCHAR(255) NOT NULL,
        pid INTEGER NOT NULL,
        hub_url VARCHAR(500) NOT NULL,
        role VARCHAR(10) NOT NULL,
        since TIMESTAMPTZ NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL,
        workers_json TEXT NOT NULL DEFAULT '[]')""",
)


class NotLeader(StoreError):
    """This console does not hold the lease: it must not fire or dispatch."""


@dataclass(frozen=True)
class Member:
    member_id: str
    host: str
    pid: int
    hub_url: str
    role: str  # leader | standby | stopped
    since: datetime
    heartbeat_at: datetime
    workers: tuple[str, ...]


@dataclass(frozen=True)
class LeaseState:
    leading: bool
    epoch: int
    leader: Member | None  # the console holding an unexpired lease (None: nobody right now)
    # the store's change marker (queries.change_marker), read in the tick's transaction: the
    # leader reads other consoles' edits only when it moved, not on every tick
    marker: int = -1


class Fence:
    """What fence() checks, shared between the lease thread (which sets it after every tick)
    and the database thread (which reads it in every firing transaction).  ``token`` is None
    for a standby; a plain attribute swap, so no lock is needed."""

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.token: int | None = None


_local = threading.local()


def bind_fence(holder: Fence | None) -> None:
    """Run on a Core's database thread once: fence() there checks this holder.  Never bound
    (SQLite, the CLI): no cluster, fence() is off."""
    _local.fence = holder


def fence() -> None:
    """Raise NotLeader unless this console holds the lease now; call inside the transaction
    that fires or dispatches (the FOR SHARE lock lasts until it commits)."""
    holder: Fence | None = getattr(_local, "fence", None)
    if holder is None:
        return
    epoch = holder.token
    if epoch is None:
        raise NotLeader("this console is a standby; the leader fires and dispatches")
    row = database_proxy.execute_sql(
        "SELECT 1 FROM jt_cluster_lease WHERE id = 1 AND holder = %s AND epoch = %s "
        "AND expires_at > clock_timestamp() FOR SHARE",
        (holder.member_id, epoch),
    ).fetchone()
    if row is None:
        raise NotLeader(f"this console lost the lead (epoch {epoch} is over); it stands by")


def ensure_schema() -> None:
    with database_proxy.atomic():
        for statement in SCHEMA:
            database_proxy.execute_sql(statement)


def tick(
    member_id: str,
    host: str,
    pid: int,
    hub_url: str,
    workers: list[str],
    lease_seconds: float = LEASE_SECONDS,
) -> LeaseState:
    """Renew the lease (leader) or take it once expired (standby), and record this console's
    heartbeat, in one transaction."""
    with database_proxy.atomic():
        won = database_proxy.execute_sql(
            "UPDATE jt_cluster_lease SET "
            "epoch = CASE WHEN holder = %s AND expires_at > clock_timestamp() "
            "  THEN epoch ELSE epoch + 1 END, "
            "holder = %s, expires_at = clock_timestamp() + make_interval(secs => %s) "
            "WHERE id = 1 AND (holder = %s OR expires_at <= clock_timestamp()) "
            "RETURNING epoch",
            (member_id, member_id, lease_seconds, member_id),
        ).fetchone()
        role = "leader" if won else "standby"
        database_proxy.execute_sql(
            "INSERT INTO jt_cluster_member AS m "
            "(member_id, host, pid, hub_url, role, since, heartbeat_at, workers_json) "
            "VALUES (%s, %s, %s, %s, %s, now(), now(), %s) "
            "ON CONFLICT (member_id) DO UPDATE SET role = EXCLUDED.role, "
            "since = CASE WHEN m.role = EXCLUDED.role THEN m.since ELSE now() END, "
            "heartbeat_at = now(), workers_json = EXCLUDED.workers_json, "
            "hub_url = EXCLUDED.hub_url",
            (member_id, host, pid, hub_url, role, json.dumps(sorted(workers))),
        )
        database_proxy.execute_sql(
            "DELETE FROM jt_cluster_member WHERE heartbeat_at < now() - interval "
            f"'{FORGET_MEMBERS_AFTER}'"
        )
        leader = current_leader()
        marker = change_marker()
    return LeaseState(bool(won), won[0] if won else 0, leader, marker)


def current_leader() -> Member | None:
    rows = database_proxy.execute_sql(
        "SELECT m.member_id, m.host, m.pid, m.hub_url, m.role, m.since, m.heartbeat_at, "
        "m.workers_json FROM jt_cluster_lease l JOIN jt_cluster_member m "
        "ON m.member_id = l.holder WHERE l.id = 1 AND l.expires_at > clock_timestamp()"
    ).fetchall()
    return _member(rows[0]) if rows else None


def members() -> list[Member]:
    """Every console known to the cluster, the leader first."""
    # the role as it is NOW: a console killed while leading still says "leader" in its row
    rows = database_proxy.execute_sql(
        "SELECT * FROM (SELECT m.member_id, m.host, m.pid, m.hub_url, "
        "CASE WHEN m.member_id = l.holder AND l.expires_at > clock_timestamp() THEN 'leader' "
        "  WHEN m.role = 'stopped' THEN 'stopped' "
        "  WHEN m.heartbeat_at < clock_timestamp() - make_interval(secs => %s) THEN 'gone' "
        "  ELSE 'standby' END AS now_role, "
        "m.since, m.heartbeat_at, m.workers_json "
        "FROM jt_cluster_member m CROSS JOIN jt_cluster_lease l WHERE l.id = 1) AS c "
        "ORDER BY now_role <> 'leader', now_role <> 'standby', host, pid",
        (LEASE_SECONDS,),
    ).fetchall()
    return [_member(r) for r in rows]


def lease() -> tuple[int, str, datetime, datetime]:
    """(epoch, holder, expires_at, database now) as stored."""
    return database_proxy.execute_sql(
        "SELECT epoch, holder, expires_at, clock_timestamp() FROM jt_cluster_lease WHERE id = 1"
    ).fetchone()


def resign(member_id: str) -> None:
    """A console that stops: hand the lease over at once (the standby takes it at its next
    tick, not after the lease time) and mark itself stopped."""
    with database_proxy.atomic():
        database_proxy.execute_sql(
            "UPDATE jt_cluster_lease SET expires_at = clock_timestamp() WHERE holder = %s",
            (member_id,),
        )
        database_proxy.execute_sql(
            "UPDATE jt_cluster_member SET role = 'stopped', since = now(), workers_json = '[]' "
            "WHERE member_id = %s",
            (member_id,),
        )


def _member(row) -> Member:
    try:
        workers = tuple(json.loads(row[7] or "[]"))
    except ValueError:
        workers = ()
    return Member(row[0], row[1], row[2], row[3], row[4], row[5], row[6], workers)


# --- SQLite: no cluster, one console's status kept in the settings table ------------------------


def put_setting(key: str, text: str) -> None:
    from desktop.store.models import Setting

    Setting.insert(setting_key=key, setting_value=text).on_conflict(
        conflict_target=[Setting.setting_key], update={Setting.setting_value: text}
    ).execute()


def get_setting(key: str) -> str | None:
    from desktop.store.models import Setting

    row = Setting.get_or_none(Setting.setting_key == key)
    return row.setting_value if row is not None else None


def delete_setting(key: str) -> None:
    from desktop.store.models import Setting

    Setting.delete().where(Setting.setting_key == key).execute()


def members_if_any() -> list[Member]:
    """members(), or [] when no console ever ran in cluster mode on this database (no table:
    a read-only command must not create one)."""
    row = database_proxy.execute_sql("SELECT to_regclass('jt_cluster_member')").fetchone()
    return members() if row and row[0] else []


def run_guarded(fn: Callable[[], T]) -> T:
    """``fn()`` on the lease's own thread, store errors made StoreError; a broken connection is
    closed so that the next call reconnects (peewee keeps one connection per thread)."""
    with store_errors(database_proxy):
        try:
            return fn()
        except (peewee.OperationalError, peewee.InterfaceError):
            close_connection()
            raise


def close_connection() -> None:
    with contextlib.suppress(peewee.PeeweeException):
        if not database_proxy.is_closed():
            database_proxy.close()
