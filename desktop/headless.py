"""``python -m desktop --headless``: the scheduler, hub and store without Qt (server hosts, tests).

Plain asyncio (uvloop is used when installed: faster websockets).  Logs go to stderr.  SIGINT
and SIGTERM stop it cleanly.  Problems the operator can fix (port in use, database locked,
newer or unreachable) are one clear line and exit code 1.  This module must never import PySide6.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys

from worker import logsafe

log = logging.getLogger("desktop.headless")


def problem_text(exc: BaseException, host: str, port: int) -> str | None:
    """One line for a start failure the operator can fix, or None for our own bugs."""
    from desktop.store.errors import StoreError
    from desktop.store.leader import ConsoleRunning

    if isinstance(exc, ConsoleRunning):
        return str(exc)
    if isinstance(exc, StoreError):
        return f"cannot open the database: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, 10048):
        return (
            f"port {port} on {host} is already in use (another Job Trigger console?); stop it "
            "or use --port"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES, 10049):
        return f"cannot listen on {host}:{port}: {exc.strerror}; check --host/--port"
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot read {exc.filename}: {exc.strerror}"
    return None


async def serve(args: argparse.Namespace, ready=None) -> int:
    from desktop.portcheck import busy_port
    from desktop.service import Core
    from desktop.store import queries
    from desktop.store.db import resolve_url
    from desktop.store.executor import DbExecutor
    from desktop.store.leader import check_not_running

    url = resolve_url(getattr(args, "db", None))
    host = getattr(args, "host", None)
    port = getattr(args, "port", None)
    try:
        check_not_running(url)  # a second console hears who runs, not "port in use"
    except Exception as exc:  # ConsoleRunning, or a URL the store refuses (its own words)
        text = problem_text(exc, host or "?", port or 0)
        if text is None:
            raise
        print(f"error: {text}", file=sys.stderr)
        return 1
    busy = busy_port(url, host, port)
    if busy is not None and (text := problem_text(busy[2], busy[0], busy[1])):
        print(f"error: {text}", file=sys.stderr)
        return 1
    try:
        probe = DbExecutor(url)
        try:
            await probe.start()
            settings = await probe.call(queries.all_settings)
        finally:
            await probe.close()
    except Exception as exc:
        text = problem_text(exc, host or "?", port or 0)
        if text is None:
            raise
        print(f"error: {text}", file=sys.stderr)
        return 1
    host = host or settings.get("hub_host", "127.0.0.1")
    port = port if port is not None else int(settings.get("hub_port", "8000"))
    local = settings.get("local_worker", "1") == "1" and not getattr(args, "no_local_worker", False)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopping.set)
        except (NotImplementedError, RuntimeError, ValueError):
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stopping.set))
    core = Core(url, host, port, local_worker=local)
    try:
        try:
            await core.start()
        except Exception as exc:
            text = problem_text(exc, host, port)
            if text is None:
                raise
            print(f"error: {text}", file=sys.stderr)
            return 1
        # a line that scripts and tests can wait for
        print(f"Job Trigger headless: hub at {core.hub_url}", file=sys.stderr, flush=True)
        if ready is not None:
            ready(core)
        await stopping.wait()
        log.info("stopping")
        return 0
    finally:
        await core.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass


def _loop_factory():
    try:
        import uvloop  # optional
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_headless(args: argparse.Namespace) -> int:
    stream = logging.StreamHandler(sys.stderr)
    # peer text (worker names, reasons) is escaped so a record cannot pose as several
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    stream.setFormatter(logsafe.EscapingFormatter(fmt))
    logging.basicConfig(
        level=os.environ.get("JOBTRIGGER_LOG_LEVEL", "INFO").upper(), handlers=[stream]
    )
    loop = _loop_factory()
    try:
        return loop.run_until_complete(serve(args))
    except KeyboardInterrupt:
        return 130
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
