"""Composition root of the console: logging, QApplication + qasync loop, the core (store,
scheduler, hub, local worker) and the main window, and a shutdown that we own.

Shutdown (DESIGN.md, Known pitfalls): Qt must not end the loop under our feet, so
setQuitOnLastWindowClosed(False) and `main()` waits on an asyncio.Event that Quit (window, tray,
SIGINT/SIGTERM) sets; then it stops the window's work, cancels tasks, stops the core and returns.
Startup problems a person can fix (port in use, database locked/newer/unreachable) are shown in a
message box opened with open() and awaited, never exec().
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from desktop.core.words import plural
from worker import logsafe, private

log = logging.getLogger("desktop.app")

APP_NAME = "JobTrigger"


def log_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Log to a rotating file in the user's log folder, and to stderr when there is one.  A
    windowed (frozen) program has sys.stdout/sys.stderr = None: give them a sink so a stray
    print() cannot crash it."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    root = logging.getLogger()
    root.setLevel(level)
    # peer text (worker names, reasons) is escaped so a record cannot pose as several
    fmt = logsafe.EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    path: Path | None = None
    try:
        folder = private.private_folder(log_dir())
        path = folder / "console.log"
        # logs name workers, hosts and jobs: owner-only, also those an older version left behind
        widened = [
            (old, mode)
            for old in [path, *(Path(f"{path}.{i}") for i in range(1, 4))]
            if (mode := private.tighten(old)) is not None
        ]
        handler = private.PrivateRotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(fmt)
        root.addHandler(handler)
        for old, mode in widened:
            log.warning(
                "%s was readable by other accounts (mode %o); made it owner-only (600)", old, mode
            )
    except OSError as exc:  # a read-only home must not stop the console
        print(f"warning: cannot write the log file: {exc}", file=sys.stderr)
    if not getattr(sys, "frozen", False):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        root.addHandler(stream)
    return path


def startup_problem(exc: BaseException, host: str, port: int) -> tuple[str, str] | None:
    """(title, text) for a start failure the person can fix, or None for our own bugs."""
    from desktop.store.errors import StoreError
    from desktop.store.leader import ConsoleRunning

    if isinstance(exc, ConsoleRunning):
        return "Job Trigger is already running", f"Job Trigger cannot start: {exc}."
    if isinstance(exc, StoreError):
        return "Database problem", f"Job Trigger cannot open its database.\n\n{exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, 10048):  # 10048: Windows
        return (
            "Port in use",
            f"Another program already listens on {host}:{port} — probably another Job "
            "Trigger console. Close it, or start this one with --port (or change the hub port "
            "in Settings).",
        )
    import ssl

    if isinstance(exc, ssl.SSLError) or (
        isinstance(exc, FileNotFoundError) and str(exc.filename or "").endswith(".pem")
    ):
        return (
            "TLS certificate problem",
            f"The hub cannot use its TLS certificate or key: {exc}. Fix the paths in Settings "
            "(hub_tls_cert / hub_tls_key), or clear them to run without TLS.",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return (
            "Cannot listen",
            f"The hub cannot listen on {host}:{port}: {exc.strerror}. Check the hub address "
            "in Settings or use --host/--port.",
        )
    return None


async def read_settings(url: str) -> dict[str, str]:
    """The stored settings, before the core starts (they decide where the hub listens).  Opening
    the store here also surfaces a locked or newer database before anything else starts."""
    from desktop.store import queries
    from desktop.store.executor import DbExecutor

    db = DbExecutor(url)
    try:
        await db.start()
        return await db.call(queries.all_settings)
    finally:
        await db.close()


async def show_fatal(title: str, text: str, closing: asyncio.Event | None = None) -> None:
    """The start-up problem in a message box, until the person closes it or `closing` is set
    (SIGTERM/SIGINT): a box nobody sees must not keep the process alive."""
    from desktop.ui.asyncqt import ask
    from desktop.ui.dialog_boxes import fatal_box

    box = fatal_box(title, text)
    if closing is None:
        await ask(box)
        return

    async def close_on_stop() -> None:
        await closing.wait()
        log.info("stop requested while the start-up message was open")
        box.done(0)

    watcher = asyncio.ensure_future(close_on_stop())
    try:
        await ask(box)
    finally:
        watcher.cancel()


def make_core(url: str, host: str, port: int, local_worker: bool) -> Any:
    from desktop.service import Core

    return Core(url, host, port, local_worker=local_worker)


async def main(args: argparse.Namespace, *, on_window=None) -> int:
    """The console's life: start, show, wait for Quit, stop.  Returns the exit code.
    `on_window(window)` is called once the window shows its data (tests, smoke test)."""
    from desktop.portcheck import busy_port
    from desktop.store.db import resolve_url
    from desktop.store.leader import check_not_running
    from desktop.ui.asyncqt import cancel_pending
    from desktop.ui.main_window import MainWindow

    loop = asyncio.get_running_loop()
    closing = asyncio.Event()
    if os.name == "posix":
        # Qt does not deliver SIGINT while idle in its loop; the asyncio handler does
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, closing.set)
            except (NotImplementedError, RuntimeError, ValueError):
                log.debug("no handler for %s on this loop", sig)

    url = resolve_url(getattr(args, "db", None))
    host = getattr(args, "host", None) or "127.0.0.1"
    port = getattr(args, "port", None)
    core = None
    gc_guard = None
    try:
        check_not_running(url)  # a second console hears who runs, not "port in use"
        busy = busy_port(url, getattr(args, "host", None), port)
        if busy is not None:  # before the database is opened: a failed start creates nothing
            host, port, error = busy
            raise error
        settings = await read_settings(url)
        host = getattr(args, "host", None) or settings.get("hub_host", "127.0.0.1")
        port = port if port is not None else int(settings.get("hub_port", "8000"))
        local = settings.get("local_worker", "1") == "1" and not getattr(
            args, "no_local_worker", False
        )
        from desktop.service.corethread import start_remote
        from desktop.ui.gc_guard import MainThreadGC

        # before the Core's thread exists: from then on cycles are collected on this thread
        # only (a collection on the Core's thread could free a Qt object there)
        gc_guard = MainThreadGC()
        # the Core runs on its own thread and loop: a storm of workers must not hold the window
        core = await start_remote(lambda: make_core(url, host, port, local))
    except Exception as exc:
        problem = startup_problem(exc, host, port or 0)
        if problem is None:
            log.exception("the console could not start")
            problem = ("Job Trigger could not start", f"{exc!r}\n\nDetails are in {log_dir()}.")
        else:
            log.error("%s: %s", problem[0], exc)
        if core is not None:
            await core.stop()
        if gc_guard is not None:
            gc_guard.stop()
        if getattr(args, "smoke_test", False):
            print(f"smoke test failed: {problem[1]}", file=sys.stderr)
        else:
            await show_fatal(*problem, closing)
        return 1

    assert gc_guard is not None
    window = MainWindow(core, db_url=url, tray=not getattr(args, "smoke_test", False))
    window.quitRequested.connect(closing.set)
    code = 0
    try:
        window.show()
        await window.load()
        gc_guard.settle()
        if on_window is not None:
            result = on_window(window)
            if asyncio.iscoroutine(result):
                await result
        if getattr(args, "smoke_test", False):
            image = window.grab()
            ok = not image.isNull() and window.jobs_model.columnCount() > 0
            print(
                f"smoke test: window {image.width()}x{image.height()}, "
                f"{plural(window.jobs_model.rowCount(), 'job')}, hub {core.hub_url}"
            )
            code = 0 if ok else 1
            closing.set()
        await closing.wait()
    finally:
        log.info("shutting down")
        window.shutdown()
        window.hide()
        await cancel_pending()
        await core.stop()
        window.deleteLater()
        gc_guard.stop()
        if os.name == "posix":
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
    return code


def startup_checks(args: argparse.Namespace) -> int | None:
    """What must hold before anything is created (log folder, database, lock, Qt): None when
    the console may start, else the exit code after a one-line reason on stderr.  Kept apart
    from run_gui so further checks (the single-console lock) slot in after these."""
    from desktop.displaycheck import display_problem

    problem = display_problem()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return None


def run_gui(args: argparse.Namespace) -> int:
    """Entry from desktop.cli: build the Qt application and the qasync loop, run main()."""
    failed = startup_checks(args)
    if failed is not None:
        return failed
    setup_logging()
    from desktop.ui.qtapp import create_app_and_loop

    _app, loop = create_app_and_loop()
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return loop.run_until_complete(main(args))
    except KeyboardInterrupt:
        return 130
    finally:
        asyncio.set_event_loop(None)
