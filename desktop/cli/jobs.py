"""``python -m desktop [--db URL] jobs ...``: list, show, export, import, enable, disable.

Talks to the same database as a running console (SQLite in WAL mode lets both in at once); the
console notices the change through queries.change_marker() within about a second.  No Qt here.
The helpers ``store_command`` and ``format_time`` are shared with the other command modules.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from desktop.cli import UserError
from desktop.core import chains as chain_logic
from desktop.core.notify import ChannelError
from desktop.core.timeutil import utcnow
from desktop.core.words import plural
from desktop.core.zones import is_zone
from desktop.store import chains, channels, links, scheduling, validation
from desktop.store import db as store_db
from desktop.store import queries as q
from desktop.store import secrets as job_secrets
from desktop.store.errors import StoreError, ValidationError

EXPORT_FORMAT = "jobtrigger-jobs"
# 2: each job also carries "notify" (rules) and "chains"; version 1 files are still read
EXPORT_VERSION = 2
READ_VERSIONS = (1, 2)


# --- shared helpers ---------------------------------------------------------------------------


def actor() -> str:
    """Who made a change from the command line, for the audit trail: OS user and host."""
    from desktop.whoami import who

    return who("cli")


def store_command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Open (and migrate) the database for one command, close it afterwards, and turn store
    problems into UserError so the person sees one clear line and exit code 2."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            database = store_db.open_store(getattr(args, "db", None))
        except StoreError as exc:
            raise UserError(str(exc)) from None
        try:
            with store_db.store_errors(database):
                before = q.change_marker()
                code = func(args)
                if q.change_marker() != before:
                    _nudge_console()
                return code
        except StoreError as exc:
            raise UserError(str(exc)) from None
        except ValidationError as exc:
            raise UserError(format_errors(exc)) from None
        finally:
            database.close()

    return wrapper


def _nudge_console() -> None:
    """A console running on this machine shows the change at once instead of within 30 s."""
    from desktop import poke
    from desktop.store import scheduling

    target = scheduling.poke_target()
    if target is not None:
        poke.send(*target)


def format_errors(exc: ValidationError) -> str:
    lines = [f"  {field}: {message}" for field, message in sorted(exc.errors.items())]
    return "invalid input, nothing was changed:\n" + "\n".join(lines)


def display_zone() -> ZoneInfo:
    name = q.get_setting("display_tz")
    return ZoneInfo(name if is_zone(name) else "UTC")


def format_time(dt: datetime | None, zone: ZoneInfo) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def print_table(headers: list[str], rows: list[list[str]], out=None) -> None:
    out = out or sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    for row in [headers, *rows]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")


def _require_job(name: str):
    job = q.get_job_by_name(name)
    if job is None:
        raise UserError(f"there is no job named {name!r}; `jobs list` shows the names")
    return job


# --- commands ---------------------------------------------------------------------------------


@store_command
def cmd_list(args: argparse.Namespace) -> int:
    zone = display_zone()
    jobs = q.list_jobs()
    if not jobs:
        print("no jobs yet (add one in the console, or `jobs import FILE`)")
        return 0
    rows = []
    for job in jobs:
        last = "-"
        if job.last_run_state:
            last = f"{job.last_run_state} {format_time(job.last_run_at, zone)}"
        rows.append(
            [
                job.name,
                "yes" if job.enabled else "no",
                validation.describe_schedule(job.schedule),
                format_time(job.next_fire_at, zone) if job.enabled else "-",
                last,
            ]
        )
    print_table(["NAME", "ENABLED", "SCHEDULE", "NEXT FIRE", "LAST RUN"], rows)
    return 0


@store_command
def cmd_show(args: argparse.Namespace) -> int:
    zone = display_zone()
    job = _require_job(args.name)
    target = (
        job.target_kind if job.target_kind == "any" else f"{job.target_kind} {job.target_value}"
    )
    lines = [
        ("name", job.name),
        ("description", job.description or "-"),
        ("enabled", "yes" if job.enabled else "no"),
        ("script", job.script),
        ("args", json.dumps(list(job.args), ensure_ascii=False)),
        ("env", json.dumps(job.env, ensure_ascii=False, sort_keys=True)),
        ("target", target),
        ("schedule", validation.describe_schedule(job.schedule)),
        ("time zone", job.time_zone),
        ("next fire", format_time(job.next_fire_at, zone)),
        ("misfire", f"{job.misfire_policy} (cap {job.misfire_cap})"),
        ("concurrency", job.concurrency),
        ("timeout", f"{job.timeout_seconds} s" if job.timeout_seconds else "none"),
        (
            "retries",
            f"{job.max_retries} (delay {job.retry_delay_seconds} s, x{job.retry_backoff:g}, "
            f"max {job.retry_max_delay_seconds} s)",
        ),
        ("last run", f"#{job.last_run_id} {job.last_run_state}" if job.last_run_id else "-"),
        ("notify", "; ".join(_rule_text(r) for r in channels.rules_spec(job.id)) or "-"),
        ("chains", "; ".join(chain_logic.describe(c) for c in _chains_of(job.id)) or "-"),
        (
            "chained from",
            ", ".join(f"{r.source} (on {r.on})" for r in chains.chains_into(job.id)) or "-",
        ),
        ("created", format_time(job.created_at, zone)),
        ("updated", format_time(job.updated_at, zone)),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _rule_text(rule: dict) -> str:
    return f"{rule['channel']} on {', '.join(rule['on'])}"


def _chains_of(job_id: int) -> list[dict]:
    return [r.spec() for r in chains.list_chains(job_id)]


def export_document(jobs, secret_names: dict[int, list[str]] | None = None) -> str:
    """The versioned export file: jobs by name, keys sorted, one value per line (diff-friendly).
    A job's secrets appear by name with a placeholder, never their values."""
    specs = []
    for job in sorted(jobs, key=lambda j: j.name):
        spec = {**job.to_spec(), **links.job_links(job.id)}
        names = (secret_names or {}).get(job.id)
        if names:
            spec["secrets"] = {n: job_secrets.PLACEHOLDER for n in names}
        specs.append(spec)
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "jobs": specs}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@store_command
def cmd_export(args: argparse.Namespace) -> int:
    jobs = q.list_jobs()
    names = {j.id: [r.name for r in job_secrets.list_secrets(j.id)] for j in jobs}
    text = export_document(jobs, names)
    if args.file in (None, "-"):
        sys.stdout.write(text)
    else:
        _write_atomically(Path(args.file), text)
        print(f"exported {plural(len(jobs), 'job')} to {args.file}", file=sys.stderr)
    return 0


def read_import_file(path: str) -> list[Any]:
    """The job list of an export file, or UserError saying what is wrong with the file."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise UserError(
            f'{path}: not a Job Trigger jobs file (expected "format": "{EXPORT_FORMAT}"; '
            "make one with `jobs export`)"
        )
    if doc.get("version") not in READ_VERSIONS:
        raise UserError(
            f"{path}: jobs file version {doc.get('version')!r} is not supported "
            f"(this Job Trigger reads versions {', '.join(map(str, READ_VERSIONS))}); export it "
            "again with this version"
        )
    jobs = doc.get("jobs")
    if not isinstance(jobs, list):
        raise UserError(f'{path}: "jobs" must be a list of job definitions')
    return jobs


@store_command
def cmd_import(args: argparse.Namespace) -> int:
    specs, wanted = split_secrets(read_import_file(args.file))
    specs, found = links.split_specs(specs)
    with scheduling.transaction():  # jobs and their links: all or nothing
        result = q.import_jobs(specs, actor(), dry_run=True)
        file_jobs = {s["name"] for s in specs if isinstance(s, dict) and "name" in s}
        problems = links.check_import(found, file_jobs)
        if problems:
            raise UserError("invalid input, nothing was changed:\n" + "\n".join(problems))
        if not args.dry_run:
            result = q.import_jobs(specs, actor())
            links.apply_import(found, utcnow())
    would = "would be " if args.dry_run else ""
    for name in result["added"]:
        print(f"{would}added:     {name}")
    for name, detail in result["changed"]:
        print(f"{would}changed:   {name}  ({detail})")
    for name in result["unchanged"]:
        print(f"unchanged: {name}")
    summary = (
        f"{len(result['added'])} to add, {len(result['changed'])} to change, "
        f"{len(result['unchanged'])} unchanged"
    )
    if args.dry_run:
        print(f"dry run: {summary}; nothing was changed")
    else:
        print(f"done: {summary.replace('to add', 'added').replace('to change', 'changed')}")
    print("jobs that are not in the file were left alone")
    for job_name, names in wanted.items():
        job = q.get_job_by_name(job_name)
        have = {r.name for r in job_secrets.list_secrets(job.id)} if job else set()
        for name in names:
            if name not in have:
                print(
                    f"job {job_name!r} needs secret {name}: set it with "
                    f"`secrets set {job_name} {name}` (values are never imported)"
                )
    return 0


def split_secrets(specs: list[Any]) -> tuple[list[Any], dict[str, list[str]]]:
    """The job definitions without their "secrets", and job name -> secret names.  A secret
    with a value instead of the export placeholder is refused: values are set with
    `secrets set` (stdin or a file), never carried by an import file."""
    errors: dict[str, str] = {}
    out: list[Any] = []
    wanted: dict[str, list[str]] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "secrets" not in spec:
            out.append(spec)
            continue
        spec = dict(spec)
        block = spec.pop("secrets")
        out.append(spec)
        if not isinstance(block, dict):
            errors[f"jobs[{i}].secrets"] = "must be an object of secret names"
            continue
        for name, value in block.items():
            problem = job_secrets.check_name(name)
            if problem is None and value != job_secrets.PLACEHOLDER:
                problem = (
                    "secret values are not imported (the file would keep them in clear); "
                    "leave the placeholder and set the value with `secrets set`"
                )
            if problem:
                errors[f"jobs[{i}].secrets.{str(name)[:60]}"] = problem
        if isinstance(spec.get("name"), str):
            wanted[spec["name"]] = sorted(str(n) for n in block)
    if errors:
        raise ValidationError(errors)
    return out, wanted


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    job = _require_job(args.name)
    if job.enabled == enabled:
        print(f"job {job.name!r} was already {'enabled' if enabled else 'disabled'}")
        return 0
    job = q.set_job_enabled(job.id, enabled, actor())
    if enabled:
        print(f"enabled {job.name!r}; next fire {format_time(job.next_fire_at, display_zone())}")
    else:
        print(f"disabled {job.name!r}")
    return 0


@store_command
def cmd_enable(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


@store_command
def cmd_disable(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, rest = value.rpartition(":")
        if not sep or not name or not rest:
            raise UserError(f"{value!r}: write {what}")
        out.append((name, rest))
    return out


@store_command
def cmd_notify(args: argparse.Namespace) -> int:
    """Replace a job's rules (or the default rules with --default)."""
    given = ([args.name] if args.default and args.name else []) + args.rules
    rules = [
        {"channel": name, "on": [e for e in events.split(",") if e]}
        for name, events in _pairs(given, "CHANNEL:EVENT[,EVENT...]")
    ]
    job_id = None if args.default else _require_job(args.name).id
    try:
        channels.set_rules(job_id, rules)
    except ChannelError as exc:
        raise UserError(f"{exc}; nothing was changed") from None
    shown = channels.rules_spec(job_id)
    who = "all jobs (default)" if job_id is None else args.name
    print(f"{who}: " + ("; ".join(_rule_text(r) for r in shown) or "no notifications"))
    return 0


@store_command
def cmd_chains(args: argparse.Namespace) -> int:
    """Replace a job's chains."""
    job = _require_job(args.name)
    specs = [{"then": t, "on": on} for t, on in _pairs(args.chains, "JOB:success|failure|end")]
    try:
        chains.set_chains(job.id, specs, utcnow())
    except chain_logic.ChainError as exc:
        raise UserError(f"{exc}; nothing was changed") from None
    shown = _chains_of(job.id)
    print(f"{job.name}: " + ("; ".join(map(chain_logic.describe, shown)) or "no chains"))
    return 0


def register(subparsers) -> None:
    jobs = subparsers.add_parser("jobs", help="list, show, export, import, enable or disable jobs")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="all jobs with next fire time and last run")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one job's full definition")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "notify",
        help="set a job's notification rules (replaces them; none given: clears them)",
        description="Events: failed, timed_out, lost, missed, recovered. Example: "
        "jobs notify backup ops-mail:failed,lost slack:recovered",
    )
    p.add_argument("name", metavar="NAME", nargs="?", default="")
    p.add_argument("rules", metavar="CHANNEL:EVENTS", nargs="*")
    p.add_argument("--default", action="store_true", help="the default rules for all jobs")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser(
        "chains",
        help="set the jobs a job starts when it ends (replaces them; none given: clears them)",
        description="Example: jobs chains extract load:success report:end (arguments with "
        "{run_id}, {exit_code}: in the editor or an import file)",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("chains", metavar="JOB:ON", nargs="*")
    p.set_defaults(func=cmd_chains)

    p = sub.add_parser(
        "export", help="write all job definitions as versioned JSON (stable order, diff-friendly)"
    )
    p.add_argument("file", metavar="FILE", nargs="?", help="output file (default: stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        help="add or update jobs by name from an export file; all or nothing",
        description="Checks every job in FILE first; on any error nothing is changed and the "
        "exit code is 2. Jobs not in the file are left alone.",
    )
    p.add_argument("file", metavar="FILE", help="a file written by `jobs export` ('-' = stdin)")
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be added or changed; change nothing"
    )
    p.set_defaults(func=cmd_import)

    for name, func, text in (
        ("enable", cmd_enable, "let the job fire on its schedule again (next fire from now)"),
        ("disable", cmd_disable, "stop the job from firing (runs already going continue)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(func=func)
