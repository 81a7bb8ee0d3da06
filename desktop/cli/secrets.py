"""``python -m desktop secrets list|set|unset|rotate-key|key``.

A value is read from stdin (typed without echo on a terminal) or from a file, never from the
command line: argv is visible to every account through ``ps`` and lands in shell histories.
One trailing newline is dropped (``echo value |`` and editors add it).  No Qt here.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from desktop.cli import UserError
from desktop.cli.jobs import (
    _require_job,
    actor,
    display_zone,
    format_time,
    print_table,
    store_command,
)
from desktop.core.secretbox import SecretKeyError
from desktop.core.words import plural
from desktop.store import rotation, secretkey
from desktop.store import secrets as job_secrets


def _read_value(args: argparse.Namespace) -> str:
    if args.file:
        try:
            data = Path(args.file).read_bytes()
        except OSError as exc:
            raise UserError(f"{args.file}: cannot read it ({exc.strerror})") from None
    elif sys.stdin.isatty():
        data = getpass.getpass(f"value of {args.secret}: ").encode("utf-8")
    else:
        data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("the value is not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text


@store_command
def cmd_list(args: argparse.Namespace) -> int:
    job = _require_job(args.job)
    records = job_secrets.list_secrets(job.id)
    if not records:
        print(f"job {job.name!r} has no secrets; add one with `secrets set {job.name} NAME`")
        return 0
    zone = display_zone()
    print_table(
        ["NAME", "SET", "KEY"],
        [[r.name, format_time(r.updated_at, zone), r.key_id] for r in records],
    )
    return 0


def _key_errors(func):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except SecretKeyError as exc:
            raise UserError(f"{exc}; nothing was changed") from None

    wrapper.__name__ = func.__name__
    return wrapper


@store_command
@_key_errors
def cmd_set(args: argparse.Namespace) -> int:
    job = _require_job(args.job)
    value = _read_value(args)
    warnings = job_secrets.apply_changes(job.id, {args.secret: value}, actor())
    print(f"secret {args.secret} of job {job.name!r} set (stored encrypted)")
    for w in warnings:
        print(f"note: {w}", file=sys.stderr)
    return 0


@store_command
def cmd_unset(args: argparse.Namespace) -> int:
    job = _require_job(args.job)
    if args.secret not in {r.name for r in job_secrets.list_secrets(job.id)}:
        raise UserError(f"job {job.name!r} has no secret {args.secret!r}")
    job_secrets.apply_changes(job.id, {args.secret: None}, actor())
    print(f"secret {args.secret} of job {job.name!r} removed")
    return 0


@store_command
@_key_errors
def cmd_rotate(args: argparse.Namespace) -> int:
    done = rotation.rotate_key()
    print(
        f"re-encrypted {plural(done.resealed, 'value')} with new key {done.new_key_id} "
        f"in {done.where}"
    )
    return 0


@store_command
@_key_errors
def cmd_key(args: argparse.Namespace) -> int:
    spot = secretkey.place()
    keys = secretkey.read_keys(spot)
    print(f"backend:  {spot.backend}")
    print(f"where:    {spot.describe()}")
    if keys is None:
        print("key:      none yet (made when the first secret is set)")
    else:
        from desktop.core.secretbox import SecretBox

        print(f"key id:   {', '.join(SecretBox(keys).key_ids())}")
    counts = job_secrets.count_by_key()
    for kid, n in sorted(counts.items()):
        print(f"sealed:   {plural(n, 'value')} with key {kid}")
    return 0


@store_command
@_key_errors
def cmd_export_key(args: argparse.Namespace) -> int:
    """For a second console on the same PostgreSQL database: copy the key to its host."""
    keys = secretkey.read_keys()
    if keys is None:
        raise UserError("there is no secrets key yet (it is made when the first secret is set)")
    path = Path(args.file)
    if path.exists():
        raise UserError(f"{path} exists; choose a new file (the key is never written over one)")
    secretkey.write_keys(keys, secretkey.KeyPlace("file", str(path)))
    print(f"wrote the secrets key to {path} (0600): move it to the other host, then delete it")
    return 0


@store_command
@_key_errors
def cmd_import_key(args: argparse.Namespace) -> int:
    spot = secretkey.place()
    keys = secretkey.read_keys(secretkey.KeyPlace("file", args.file))
    if keys is None:
        raise UserError(f"{args.file}: no such file")
    from desktop.core.secretbox import SecretBox

    secretkey.check_matches(SecretBox(keys))  # it must open what this database holds
    current = secretkey.read_keys(spot)
    if current is not None and current != keys and not args.replace:
        raise UserError(f"{spot.describe()} already holds another key; --replace to overwrite it")
    secretkey.write_keys(keys, spot)
    print(f"secrets key stored in {spot.describe()}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "secrets", help="job secrets (encrypted; values from stdin or a file, never argv)"
    )
    sub = p.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    s = sub.add_parser("list", help="a job's secret names (never values)")
    s.add_argument("job")
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("set", help="set a secret from stdin or --file")
    s.add_argument("job")
    s.add_argument("secret", help="its name: the environment variable the job gets")
    s.add_argument("--file", help="read the value from this file instead of stdin")
    s.set_defaults(func=cmd_set)
    s = sub.add_parser("unset", help="remove a secret")
    s.add_argument("job")
    s.add_argument("secret")
    s.set_defaults(func=cmd_unset)
    s = sub.add_parser("rotate-key", help="a new key; re-encrypt every secret in one transaction")
    s.set_defaults(func=cmd_rotate)
    s = sub.add_parser("key", help="where the secrets key is kept (keyring or key file)")
    s.set_defaults(func=cmd_key)
    s = sub.add_parser("export-key", help="copy the key to a new 0600 file (for a second host)")
    s.add_argument("file")
    s.set_defaults(func=cmd_export_key)
    s = sub.add_parser("import-key", help="store a key exported on another host here")
    s.add_argument("file")
    s.add_argument("--replace", action="store_true", help="overwrite a different key here")
    s.set_defaults(func=cmd_import_key)
