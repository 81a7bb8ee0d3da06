"""``python -m desktop [--db URL] channels list|add|test|remove|log``: where notifications go.

Passwords and webhook keys are never taken on the command line (they would land in the shell
history and the process list): ``--password-env VAR`` / ``--secret-env VAR`` name an environment
variable, ``--password-stdin`` / ``--secret-stdin`` read one line.  They are stored sealed with
the secrets key, like job secrets (desktop/store/channels.py, ``seal``)."""

from __future__ import annotations

import argparse
import os
import sys

from desktop.cli import UserError
from desktop.cli.jobs import display_zone, format_time, print_table, store_command
from desktop.core import notify as n
from desktop.notify import transport
from desktop.store import channels, outbox
from desktop.store.errors import NotFound


def _secret(args: argparse.Namespace) -> str | None:
    env, stdin = args.secret_env, args.secret_stdin
    if env:
        value = os.environ.get(env)
        if value is None:
            raise UserError(f"the environment variable {env} is not set")
        return value
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return None


@store_command
def cmd_list(args: argparse.Namespace) -> int:
    found = channels.list_channels()
    if not found:
        print("no channels; add one with `channels add NAME --email ...` or `--webhook URL`")
        return 0
    counts = outbox.counts_by_channel()
    rows = []
    for ch in found:
        c = counts.get(ch.name, {})
        status = ", ".join(f"{v} {k}" for k, v in sorted(c.items())) or "nothing sent yet"
        error = outbox.last_error(ch.name) if c.get("failing") or c.get("failed") else ""
        rows.append([ch.name, ch.description, status, error[:80] or "-"])
    print_table(["NAME", "WHERE", "MESSAGES", "LAST ERROR"], rows)
    return 0


@store_command
def cmd_add(args: argparse.Namespace) -> int:
    if bool(args.email) == bool(args.webhook):
        raise UserError("give either --email or --webhook URL")
    if args.email:
        config = {
            "host": args.host,
            "port": args.port,
            "security": args.security,
            "username": args.user or "",
            "sender": args.sender or "",
            "to": args.to or "",
        }
        kind = n.EMAIL
    else:
        config = {"url": args.webhook, "preset": args.preset}
        kind = n.WEBHOOK
    try:
        record = channels.save_channel(args.name, kind, config, _secret(args))
    except n.ChannelError as exc:
        raise UserError(f"{exc}; nothing was saved") from None
    print(f"saved channel {record.name!r}: {record.description}")
    return 0


@store_command
def cmd_test(args: argparse.Namespace) -> int:
    record = channels.get_channel(args.name)
    if record is None:
        raise UserError(f"there is no channel {args.name!r}; `channels list` shows them")
    secret = channels.channel_secret(record.id)
    try:
        transport.send(record.kind, record.config, secret, outbox.test_facts(), "test")
    except transport.DeliveryError as exc:
        print(f"test message to {record.name!r} failed: {exc}", file=sys.stderr)
        return 1
    print(f"test message sent to {record.name!r}")
    return 0


@store_command
def cmd_remove(args: argparse.Namespace) -> int:
    try:
        channels.remove_channel(args.name)
    except NotFound as exc:
        raise UserError(str(exc)) from None
    print(f"removed channel {args.name!r} (its rules and undelivered messages too)")
    return 0


def outbox_rows(records, zone) -> list[list[str]]:
    rows = []
    for r in records:
        when = r.delivered_at if r.state == outbox.DELIVERED else r.next_attempt_at
        note = r.last_error[:80] if r.last_error else ""
        rows.append(
            [
                str(r.id),
                str(r.run_id),
                r.job_name,
                r.channel,
                r.event,
                r.shown_state,
                str(r.attempts),
                format_time(when, zone),
                note or "-",
            ]
        )
    return rows


OUTBOX_HEADERS = ["ID", "RUN", "JOB", "CHANNEL", "EVENT", "STATE", "TRIES", "WHEN", "LAST ERROR"]


@store_command
def cmd_log(args: argparse.Namespace) -> int:
    records = outbox.list_outbox(None, args.limit)
    if not records:
        print("no notifications yet")
        return 0
    print_table(OUTBOX_HEADERS, outbox_rows(records, display_zone()))
    return 0


def register(subparsers) -> None:
    top = subparsers.add_parser(
        "channels", help="e-mail and webhook channels for notifications: list, add, test, remove"
    )
    sub = top.add_subparsers(dest="channels_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="channels with their delivered / failing counts")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "add",
        help="add or replace a channel",
        description="E-mail: channels add ops --email --host smtp.example.com --sender "
        "jobs@example.com --to ops@example.com --user jobs --password-env SMTP_PASSWORD. "
        "Webhook: channels add hook --webhook https://example.com/hook --secret-env HOOK_KEY "
        "(--preset slack|teams for their incoming webhooks).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--email", action="store_true", help="an SMTP server")
    p.add_argument("--host", default="", help="SMTP server")
    p.add_argument("--port", type=int, default=None, help="default 587 / 465 (tls) / 25 (none)")
    p.add_argument("--security", choices=n.SECURITY, default="starttls")
    p.add_argument("--user", help="SMTP user name")
    p.add_argument("--sender", help="the From address")
    p.add_argument("--to", help="recipients, comma-separated")
    p.add_argument("--webhook", metavar="URL", help="an http(s) URL to POST JSON to")
    p.add_argument("--preset", choices=n.PRESETS, default="plain")
    p.add_argument(
        "--password-env",
        "--secret-env",
        dest="secret_env",
        metavar="VAR",
        help="read the SMTP password / webhook HMAC key from this environment variable",
    )
    p.add_argument(
        "--password-stdin",
        "--secret-stdin",
        dest="secret_stdin",
        action="store_true",
        help="read it from the first line of stdin",
    )
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("test", help="send a test message now and say whether it went through")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("remove", help="remove a channel")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("log", help="recent notifications: delivered, pending, failing, failed")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(func=cmd_log)
