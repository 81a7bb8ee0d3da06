"""``python -m desktop [--db URL] run NAME [-- ARGS...]``: run a job now, through the running
console.

The run is recorded as a queued manual run and the change counter bumped; the console notices
within about a second and dispatches it (desktop/store/scheduling.py explains the mechanism).
Without a running console (no fresh ``console.alive_at`` mark) nothing is recorded and the
command says so.  No Qt here.
"""

from __future__ import annotations

import argparse

from desktop.cli import UserError
from desktop.cli.jobs import store_command
from desktop.core.timeutil import utcnow
from desktop.scheduler.firing import manual_run
from desktop.store import queries as q
from desktop.store import scheduling
from desktop.store.migrations import write_transaction
from desktop.store.models import database_proxy

NO_CONSOLE = (
    "no Job Trigger console is running on this database, so nothing would run the job; start "
    "the console (python -m desktop, or --headless on a server) and try again"
)


@store_command
def cmd_run(args: argparse.Namespace) -> int:
    job = q.get_job_by_name(args.name)
    if job is None:
        raise UserError(f"there is no job named {args.name!r}; `jobs list` shows the names")
    if not scheduling.console_alive():
        raise UserError(NO_CONSOLE)
    run_args = list(args.args) if args.args else None
    if run_args and run_args[0] == "--":
        run_args = run_args[1:] or None
    with write_transaction(database_proxy):
        record = manual_run(job.id, utcnow(), run_args)
        scheduling.bump()
    print(f"run {record.id} of {job.name} queued; `runs show {record.id}` follows it")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a job now through the running console",
        description="Run a job now. Arguments after -- replace the job's arguments for this run.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="argument override")
    p.set_defaults(func=cmd_run)
