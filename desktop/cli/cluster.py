"""``python -m desktop [--db URL] cluster status``: every console on this database, leader or
standby, since when, its last heartbeat and the workers connected to it (docs/HA.md).

On PostgreSQL it reads the cluster tables (desktop/store/cluster.py); on SQLite there is no
cluster, and it shows the one console that runs on the file, if any.  Reads only.  No Qt here.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from desktop.cli.jobs import display_zone, format_time, print_table, store_command
from desktop.core.timeutil import utcnow
from desktop.service.cluster import ConsoleStatus, from_member, read_solo
from desktop.store import cluster
from desktop.store.db import is_sqlite
from desktop.store.models import database_proxy


def console_rows(consoles: list[ConsoleStatus], zone, now: datetime) -> list[list[str]]:
    rows = []
    for c in consoles:
        age = f" ({(now - c.last_heartbeat).total_seconds():.0f} s ago)" if c.last_heartbeat else ""
        rows.append(
            [
                c.host,
                str(c.pid),
                c.role,
                format_time(c.since, zone),
                format_time(c.last_heartbeat, zone) + age,
                c.hub_url,
                ", ".join(c.workers) or "-",
            ]
        )
    return rows


@store_command
def cmd_status(args: argparse.Namespace) -> int:
    if is_sqlite(database_proxy):
        consoles = read_solo()
        kind = "SQLite: one console, no cluster"
    else:
        consoles = [from_member(m) for m in cluster.members_if_any()]
        kind = "PostgreSQL cluster"
    if not consoles:
        print(f"{kind}; no console has run on this database")
        return 0
    print(kind)
    print_table(
        ["HOST", "PID", "ROLE", "SINCE", "LAST HEARTBEAT", "HUB", "WORKERS"],
        console_rows(consoles, display_zone(), utcnow()),
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="the consoles on this database (high availability)")
    sub = p.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    status = sub.add_parser(
        "status", help="each console: host, leader or standby, since when, heartbeat, workers"
    )
    status.set_defaults(func=cmd_status)
