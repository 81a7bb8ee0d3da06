"""Command line entry: ``python -m desktop [--db URL] [--headless] [COMMAND ...]``.

Each command group lives in its own module with ``register(subparsers)``; the module sets
``func`` on its parsers, which is called with the parsed args and returns the exit code.
Nothing here imports Qt: only the default (no command, not headless) path loads desktop.app.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from desktop import __version__

# Command modules, each with register(subparsers).  Listed here so --help shows all of them.
COMMAND_MODULES = (
    "desktop.cli.jobs",
    "desktop.cli.runs",
    "desktop.cli.workers",
    "desktop.cli.run",
    "desktop.cli.secrets",
    "desktop.cli.audit",
    "desktop.cli.channels",
    "desktop.cli.cluster",
)


class UserError(Exception):
    """A problem the person can fix (bad input, missing file, no console running): printed
    without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Job Trigger console. With no command it opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"Job Trigger {__version__}")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (sqlite:///path.db, postgresql://user@host/db); "
        "default: $JOBTRIGGER_DB_URL or a SQLite file in the user's data folder",
    )
    parser.add_argument(
        "--headless", action="store_true", help="run scheduler and hub without the window"
    )
    parser.add_argument("--host", help="hub bind address (default from settings: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="hub port (default from settings: 8000)")
    parser.add_argument(
        "--no-local-worker", action="store_true", help="do not start the local worker"
    )
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="open the main window, start everything, then exit 0 (packaging check)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # command group not built yet
        module.register(subparsers)
    return parser


def program_name() -> str:
    """'jobtrigger' when started through the installed command, else 'python -m desktop'."""
    name = os.path.basename(sys.argv[0] or "")
    return "jobtrigger" if name.startswith("jobtrigger") else "python -m desktop"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command:
            return int(args.func(args) or 0)
        if args.headless:
            from desktop.headless import run_headless

            return run_headless(args)
        from desktop.app import run_gui

        return run_gui(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
