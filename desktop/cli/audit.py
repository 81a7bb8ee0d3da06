"""``python -m desktop audit list [--since] [--kind job|worker|setting] [--name] [--json]``.

Newest first; times in the display zone (``--json`` gives ISO 8601 UTC).  Who: the OS user and
host for the window and the CLI.  Secrets appear as added/changed/removed, never values.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta

from desktop.cli import UserError
from desktop.cli.jobs import display_zone, format_time, print_table, store_command
from desktop.core.timeutil import utcnow
from desktop.store import audit

_AGO = re.compile(r"^(\d+)([mhd])$")


def parse_since(text: str, zone) -> datetime:
    """'30m', '12h', '7d' (ago), or a date/time in the display zone ('2026-12-01 08:00')."""
    m = _AGO.match(text.strip())
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return utcnow() - timedelta(**{unit: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"--since {text!r}: use 30m, 12h, 7d or a date such as 2026-12-01 or "
            "'2026-12-01 08:00' (display zone)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


@store_command
def cmd_list(args: argparse.Namespace) -> int:
    zone = display_zone()
    since = parse_since(args.since, zone) if args.since else None
    events = audit.list_events(since=since, kind=args.kind, name=args.name, limit=args.limit)
    if args.json:
        rows = [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "who": e.actor,
                "action": e.action,
                "kind": e.entity_kind,
                "name": e.entity_name,
                "detail": e.detail,
            }
            for e in events
        ]
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    if not events:
        print("no audit entries match")
        return 0
    print_table(
        ["WHEN", "WHO", "WHAT", "KIND", "NAME", "CHANGE"],
        [
            [format_time(e.at, zone), e.actor, e.action, e.entity_kind, e.entity_name, e.detail]
            for e in events
        ],
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("audit", help="read the audit trail")
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    s = sub.add_parser("list", help="audit entries, newest first")
    s.add_argument("--since", help="30m, 12h, 7d, or a date/time in the display zone")
    s.add_argument("--kind", choices=audit.KINDS)
    s.add_argument("--name", help="only entries whose name contains this")
    s.add_argument("--json", action="store_true", help="JSON instead of a table")
    s.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    s.set_defaults(func=cmd_list)
