"""``python -m desktop [--db URL] workers list|add|set|revoke|enable|disable|fingerprint``.

Tags and slots are the console's decision (a worker's hello never sets them): ``add`` takes
them, ``set NAME --tags a,b --slots N`` changes them later; a running console applies the change
to a connected worker within about a second.

``add`` prints the token once (only its hash is stored) or writes a ready worker.ini with
``--write-ini PATH`` (pinned to the hub's certificate when the hub has TLS).  ``fingerprint``
prints the ``cert_sha256`` line for a worker.ini.  A running console notices revocations and
disables within about a second (change marker) and disconnects the worker at once.  No Qt here.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

from desktop.cli import UserError
from desktop.cli.jobs import actor, display_zone, format_time, print_table, store_command
from desktop.core.timeutil import utcnow
from desktop.store import queries as q
from desktop.store.errors import NotFound, ValidationError
from worker import tls


def _slots(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000")
    return value


def _tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _reachable(url: str) -> str:
    """A hub bound to every address names this host instead (a worker elsewhere cannot dial
    0.0.0.0)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname in ("0.0.0.0", "::"):
        return url.replace(parts.netloc, f"{socket.gethostname()}:{parts.port}", 1)
    return url


def running_hub_urls(now: datetime | None = None) -> list[str]:
    """Where the consoles running on this database listen now, the leader first: a console
    started with --port (or --host) listens where the settings do not say."""
    from desktop.service.cluster import from_member, read_solo
    from desktop.store import cluster
    from desktop.store.db import is_sqlite
    from desktop.store.models import database_proxy

    now = now or utcnow()
    if is_sqlite(database_proxy):
        consoles = read_solo(now)
    else:
        recent = now - timedelta(seconds=30)
        consoles = [
            from_member(m)
            for m in cluster.members_if_any()
            if m.heartbeat_at is not None and m.heartbeat_at >= recent
        ]
    live = [c for c in consoles if c.role in ("leader", "standby") and c.hub_url]
    live.sort(key=lambda c: c.role != "leader")
    return [_reachable(c.hub_url) for c in live]


def hub_url_from_settings() -> str:
    """The hub address(es) for a new worker.ini: the running consoles' own (several, for a
    worker that follows the leader, docs/HA.md), else what the settings say."""
    running = running_hub_urls()
    if running:
        return ", ".join(running)
    host = q.get_setting("hub_host") or "127.0.0.1"
    port = q.get_setting("hub_port") or "8000"
    scheme = "wss" if q.get_setting("hub_tls_cert") else "ws"
    return _reachable(f"{scheme}://{host}:{port}/ws/heartbeat")


@store_command
def cmd_list(args: argparse.Namespace) -> int:
    zone = display_zone()
    workers = q.list_workers()
    if not workers:
        print("no workers; add one with `workers add NAME`")
        return 0
    rows = []
    for w in workers:
        state = "revoked" if w.revoked else ("enabled" if w.enabled else "disabled")
        rows.append(
            [
                w.name,
                state,
                ",".join(w.tags) or "-",
                str(w.slots),
                w.host or "-",
                w.version or "-",
                format_time(w.last_seen_at, zone),
            ]
        )
    print_table(["NAME", "STATE", "TAGS", "SLOTS", "HOST", "VERSION", "LAST SEEN"], rows)
    return 0


def cert_fingerprint(cert: str) -> str:
    """SHA-256 of the hub's certificate file, or a UserError saying what to fix."""
    try:
        return tls.pem_fingerprint(cert)
    except OSError as exc:
        raise UserError(
            f"cannot read the certificate {cert}: {exc.strerror or exc}; check the path "
            "(setting hub_tls_cert)"
        ) from None
    except ValueError as exc:
        raise UserError(f"{exc}; give the certificate file, not its key") from None


def _pin_lines(fingerprint: str) -> str:
    return (
        "; The console's certificate (hub_tls_cert). When it is renewed, put the new value from\n"
        "; `python -m desktop workers fingerprint` here, or use ca_file instead.\n"
        f"cert_sha256 = {tls.display(fingerprint)}\n"
    )


@store_command
def cmd_add(args: argparse.Namespace) -> int:
    from desktop.localworker import write_ini

    ini: Path | None = args.write_ini
    if ini is not None and ini.exists():
        raise UserError(f"{ini} already exists; choose another path or remove it first")
    url = args.server_url or hub_url_from_settings()
    hub_cert = q.get_setting("hub_tls_cert")
    # Computed before the worker is added, so an unreadable certificate changes nothing.
    pin = cert_fingerprint(hub_cert) if ini and hub_cert and url.startswith("wss://") else None
    record, token = q.add_worker(args.name, args.tags, args.slots, actor=actor())
    if ini is None:
        print(f"worker {record.name} added. Its token (shown only this once):")
        print(token)
        print("Put it in the worker's worker.ini as `token = ...`, or use --write-ini next time.")
        return 0
    try:
        write_ini(
            ini,
            server_url=url,
            name=record.name,
            token=token,
            tags=record.tags,
            slots=record.slots,
        )
        if pin:
            # write_ini writes the [worker] section only, so appended keys land in it.
            with open(ini, "a", encoding="utf-8") as f:
                f.write(_pin_lines(pin))
    except OSError as exc:
        q.revoke_worker(record.name, actor=actor())
        raise UserError(
            f"cannot write {ini}: {exc.strerror}; the new worker was revoked again, add it "
            "under another name or fix the path"
        ) from None
    pinned = " pinned to the console's certificate" if pin else ""
    print(
        f"worker {record.name} added; {ini} written (server_url {url}{pinned}). Copy it next to "
        "the worker program with a scripts folder and start the worker."
    )
    return 0


@store_command
def cmd_set(args: argparse.Namespace) -> int:
    if args.tags is None and args.slots is None:
        raise UserError(
            "nothing to change: give --tags a,b (--tags '' clears them) and/or --slots N"
        )
    try:
        record = q.set_worker_config(args.name, args.tags, args.slots, actor=actor())
    except NotFound as exc:
        raise UserError(f"{exc}; `workers list` shows the names") from None
    except ValidationError as exc:
        raise UserError(str(exc)) from None
    tags = ",".join(record.tags) or "none"
    print(f"worker {record.name}: tags {tags}, slots {record.slots}")
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    if args.cert is None:
        return _fingerprint_from_settings(args)
    print(f"cert_sha256 = {tls.display(cert_fingerprint(str(args.cert)))}")
    return 0


@store_command
def _fingerprint_from_settings(args: argparse.Namespace) -> int:
    cert = q.get_setting("hub_tls_cert")
    if not cert:
        raise UserError(
            "the console has no TLS certificate (setting hub_tls_cert is empty): set "
            "hub_tls_cert and hub_tls_key first, or name a PEM file"
        )
    print(f"cert_sha256 = {tls.display(cert_fingerprint(cert))}")
    return 0


def _named(func):
    @store_command
    def wrapper(args: argparse.Namespace) -> int:
        try:
            func(args.name)
        except NotFound as exc:
            raise UserError(f"{exc}; `workers list` shows the names") from None
        return 0

    return wrapper


@_named
def cmd_revoke(name: str) -> None:
    q.revoke_worker(name, actor=actor())
    print(f"worker {name} revoked: its token no longer works; a running console disconnects it")


@_named
def cmd_enable(name: str) -> None:
    q.set_worker_enabled(name, True, actor=actor())
    print(f"worker {name} enabled")


@_named
def cmd_disable(name: str) -> None:
    q.set_worker_enabled(name, False, actor=actor())
    print(f"worker {name} disabled: a running console disconnects it")


def register(subparsers) -> None:
    workers = subparsers.add_parser(
        "workers", help="list, add, set, revoke, enable, disable workers"
    )
    sub = workers.add_subparsers(dest="workers_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="registered workers")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("add", help="register a worker and print its token once")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--tags", type=_tags, default=[], help="comma separated tags, e.g. win,sql")
    p.add_argument("--slots", type=_slots, default=1, help="runs at the same time (default 1)")
    p.add_argument("--write-ini", type=Path, metavar="PATH", help="write a ready worker.ini")
    p.add_argument(
        "--server-url", metavar="URL", help="hub address for the ini (default from settings)"
    )
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("set", help="change a worker's tags and/or slots")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--tags", type=_tags, default=None, help="comma separated tags ('' removes all); replaces"
    )
    p.add_argument("--slots", type=_slots, default=None, help="runs at the same time")
    p.set_defaults(func=cmd_set)

    p = sub.add_parser(
        "fingerprint",
        help="print the cert_sha256 line that pins the hub's TLS certificate in a worker.ini",
    )
    p.add_argument(
        "cert", metavar="PEM", type=Path, nargs="?", help="certificate (default: hub_tls_cert)"
    )
    p.set_defaults(func=cmd_fingerprint)

    for action, func, text in (
        ("revoke", cmd_revoke, "its token stops working; a running console disconnects it"),
        ("enable", cmd_enable, "allow it to connect again"),
        ("disable", cmd_disable, "refuse it until enabled (the token stays)"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(func=func)
