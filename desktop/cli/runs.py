"""``python -m desktop [--db URL] runs ...``: list runs, show one run with its output.

The hub's part adds ``runs cancel RUN_ID`` (it needs the running console): see the marked place
in ``register``.  No Qt here.
"""

from __future__ import annotations

import argparse
import sys

from desktop.cli import UserError
from desktop.cli.jobs import display_zone, format_time, print_table, store_command
from desktop.store import chains, outbox
from desktop.store import queries as q

OUTPUT_PAGE = 1000  # chunks read per query, so a 10 MB log is not loaded at once
STDERR_MARK = "[stderr] "


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _duration(run) -> str:
    if run.started_at and run.finished_at:
        return f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
    return "-"


@store_command
def cmd_list(args: argparse.Namespace) -> int:
    zone = display_zone()
    job_id = None
    if args.job:
        job = q.get_job_by_name(args.job)
        if job is None:
            raise UserError(f"there is no job named {args.job!r}; `jobs list` shows the names")
        job_id = job.id
    runs = q.list_runs(job_id, limit=args.limit, before_id=args.before)
    if not runs:
        print("no runs")
        return 0
    rows = [
        [
            str(r.id),
            r.job_name,
            format_time(r.scheduled_at, zone),
            r.state,
            "-" if r.exit_code is None else str(r.exit_code),
            r.worker_name or "-",
            _duration(r),
            r.trigger + (f" #{r.attempt}" if r.attempt > 1 else ""),
        ]
        for r in runs
    ]
    print_table(["ID", "JOB", "SCHEDULED", "STATE", "EXIT", "WORKER", "TOOK", "TRIGGER"], rows)
    if len(runs) == args.limit:
        print(
            f"(more: runs list --before {runs[-1].id}"
            + (f" --job {args.job!r})" if args.job else ")")
        )
    return 0


def write_output(run_id: int, out=None) -> int:
    """Print a run's output; stderr lines are marked.  Returns the number of chunks."""
    out = out or sys.stdout
    after, count, at_line_start = 0, 0, True
    while True:
        chunks = q.read_output(run_id, after_seq=after, limit=OUTPUT_PAGE)
        for chunk in chunks:
            if chunk.stream == "stderr":
                for line in chunk.text.splitlines(keepends=True):
                    out.write((STDERR_MARK if at_line_start else "") + line)
                    at_line_start = line.endswith("\n")
            else:
                out.write(chunk.text)
                if chunk.text:
                    at_line_start = chunk.text.endswith("\n")
            after = chunk.seq
        count += len(chunks)
        if len(chunks) < OUTPUT_PAGE:
            break
    if count and not at_line_start:
        out.write("\n")
    return count


@store_command
def cmd_show(args: argparse.Namespace) -> int:
    zone = display_zone()
    run = q.get_run(args.run_id)
    if run is None:
        raise UserError(
            f"there is no run {args.run_id} (pruned, or a typo?); `runs list` shows ids"
        )
    lines = [
        ("run", str(run.id)),
        ("job", run.job_name),
        ("state", run.state),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("reason", run.reason or "-"),
        ("trigger", f"{run.trigger}, attempt {run.attempt}"),
        ("worker", run.worker_name or "-"),
        ("args", " ".join(run.args) if run.args is not None else "(the job's)"),
        ("scheduled", format_time(run.scheduled_at, zone)),
        ("dispatched", format_time(run.dispatched_at, zone)),
        ("started", format_time(run.started_at, zone)),
        ("finished", format_time(run.finished_at, zone)),
        (
            "output",
            f"{run.output_bytes:,} bytes" + (" (truncated)" if run.output_truncated else ""),
        ),
    ]
    fired = chains.fired_for(run.id)
    if fired:
        lines.append(("chained", ", ".join(f"{job} run {rid}" for job, rid in fired)))
    for note in outbox.list_outbox(run.id):
        when = note.delivered_at if note.state == outbox.DELIVERED else note.next_attempt_at
        text = f"{note.event} to {note.channel}: {note.shown_state}, {note.attempts} tries"
        text += f", {format_time(when, zone)}"
        if note.last_error:
            text += f" (last error: {note.last_error[:200]})"
        lines.append(("notified", text))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    if not args.no_output:
        print(f"--- output (stderr lines start with {STDERR_MARK.strip()}) ---")
        if write_output(run.id) == 0:
            print("(no output)")
    return 0


@store_command
def cmd_cancel(args: argparse.Namespace) -> int:
    """A queued run is cancelled here and now; a running one needs the console, which tells its
    worker (desktop/store/scheduling.py: the request is picked up within about a second)."""
    from desktop.core.runs import TransitionError
    from desktop.store import scheduling
    from desktop.store.errors import NotFound

    run = q.get_run(args.run_id)
    if run is None:
        raise UserError(
            f"there is no run {args.run_id} (pruned, or a typo?); `runs list` shows ids"
        )
    if run.state in ("dispatched", "running") and not scheduling.console_alive():
        raise UserError(
            f"run {run.id} is {run.state} but no console is running to tell its worker; start "
            "the console (python -m desktop, or --headless) and try again"
        )
    try:
        outcome = scheduling.request_cancel(run.id)
    except (NotFound, TransitionError) as exc:
        raise UserError(str(exc)) from None
    if outcome == "cancelled":
        print(f"run {run.id} cancelled (it was still queued)")
    else:
        print(f"cancel of run {run.id} sent to the console; `runs show {run.id}` shows the result")
    return 0


def register(subparsers) -> None:
    runs = subparsers.add_parser("runs", help="list runs or show one run with its output")
    sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="runs, newest first")
    p.add_argument("--job", metavar="NAME", help="only this job's runs")
    p.add_argument("--limit", type=_positive, default=50, metavar="N", help="how many (default 50)")
    p.add_argument("--before", type=_positive, metavar="ID", help="only runs older than this id")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one run's details and output")
    p.add_argument("run_id", type=_positive, metavar="RUN_ID")
    p.add_argument("--no-output", action="store_true", help="details only")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("cancel", help="cancel a queued or running run (needs the running console)")
    p.add_argument("run_id", type=_positive, metavar="RUN_ID")
    p.set_defaults(func=cmd_cancel)
