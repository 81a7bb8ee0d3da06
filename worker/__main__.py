"""python -m worker [--config PATH] [--once] [--version]; also the frozen script-runner mode.

``worker.exe --run-script PATH ARGS...`` runs a .py script with the interpreter frozen into the
worker, so hosts need no Python installed.  It is handled before argparse because the script's
own arguments may look like options.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import runpy
import sys
from pathlib import Path

from worker import __version__, logsafe, private, runner
from worker.config import ConfigError, ConfigMissing, WorkerConfig, load, plain_ws_off_host
from worker.console import pause_if_double_clicked
from worker.words import plural

log = logging.getLogger("worker")


def _no_op() -> None:
    return None


def run_script(argv: list[str]) -> int:
    if not argv:
        print("--run-script needs the path of a .py file", file=sys.stderr)
        return 2
    if getattr(sys, "frozen", False):
        import multiprocessing
        import multiprocessing.spawn

        # A script calling freeze_support() (the documented pattern) would let PyInstaller's
        # version execute a '-c <code>' the hub put in its arguments.  The job's own helper
        # processes start without --run-script, so main() runs freeze_support for them.
        multiprocessing.freeze_support = multiprocessing.spawn.freeze_support = _no_op
    path = argv[0]
    sys.argv = [path, *argv[1:]]
    sys.path.insert(0, str(Path(path).resolve().parent))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


def warn_if_readable_by_others(cfg: WorkerConfig) -> None:
    """The worker writes its template 0600, but an admin may have made the file another way."""
    try:
        mode = cfg.path.stat().st_mode
    except OSError:
        return
    if private.POSIX and mode & 0o077:
        log.warning(
            "%s holds this worker's token but other accounts on this computer may read it "
            "(mode %o): run `chmod 600 %s`",
            cfg.path,
            mode & 0o777,
            cfg.path,
        )


def warn_if_plain_ws(cfg: WorkerConfig) -> None:
    if plain_ws_off_host(cfg.server_url):
        log.warning(
            "INSECURE: server_url %s is plain ws:// to another computer: this worker's token, "
            "the jobs' arguments and environment and all their output travel unencrypted and "
            "can be read or changed on the network. Use the console's wss:// address, and set "
            "require_tls = true in %s to refuse plain ws://.",
            cfg.server_url,
            cfg.path,
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="worker",
        description="Job Trigger worker: connects to the console and runs allow-listed scripts.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="path of worker.ini (default: next to the "
        "program when packaged, else the current folder)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit when the first connection ends instead of reconnecting",
    )
    parser.add_argument("--version", action="version", version=f"Job Trigger worker {__version__}")
    return parser.parse_args(argv)


async def serve(cfg: WorkerConfig, once: bool) -> int:
    from worker import stopsignals
    from worker.client import Worker

    try:
        worker = Worker(cfg, reload_token=lambda: load(cfg.path).token)
    except OSError as exc:
        log.error(
            "Cannot use the spool folder %s (%s): check spool_dir in %s and that this account "
            "may write there",
            cfg.spool_dir,
            exc,
            cfg.path,
        )
        return 2
    log.info(
        "Job Trigger worker %s (%s), scripts in %s, at most %s",
        __version__,
        cfg.name,
        cfg.scripts_dir,
        plural(cfg.slots, "run") + " at a time",
    )
    if not cfg.scripts_dir.is_dir():
        log.warning(
            "The scripts folder %s does not exist: create it and put the scripts this worker may "
            "run there (or set scripts_dir in %s). Until then every job is declined.",
            cfg.scripts_dir,
            cfg.path,
        )
    stop = asyncio.Event()
    stopsignals.install(asyncio.get_running_loop(), stop)
    serving = asyncio.create_task(worker.serve_forever(once=once))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving in done:
        stopping.cancel()
        await worker.shutdown(cfg.shutdown_grace_seconds)
        return serving.result()
    log.info("Stop requested: no new work is accepted")
    await worker.shutdown(cfg.shutdown_grace_seconds)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    log.info("Worker stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    frozen = getattr(sys, "frozen", False)
    if argv[:1] == ["--run-script"]:
        # Never freeze_support here: a job's arguments come from the hub, and PyInstaller's
        # freeze_support executes a trailing '-c <code>' that looks like multiprocessing's.
        if frozen and sys.platform == "win32":
            from worker import winproc

            winproc.restore_dll_search_path()  # what jobs start must not load our DLLs
        return run_script(argv[1:])
    if argv[:1] == ["--guardian"]:  # the frozen worker started as its own guardian
        from worker import guardian

        return guardian.main(argv[1:])
    if frozen:
        # A .py job using multiprocessing starts this executable again for its helper and pool
        # processes (spawn: the Windows default); PyInstaller's freeze_support runs those and exits.
        import multiprocessing

        multiprocessing.freeze_support()
        if sys.platform == "win32":
            from worker import winproc

            winproc.restore_dll_search_path()  # what jobs start must not load our DLLs
    args = parse_args(argv)
    # text from the hub (reasons, names) is escaped so a record cannot pose as several
    formatter = logsafe.EscapingFormatter("%(asctime)s %(levelname)s %(message)s")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[stream])
    try:
        cfg = load(args.config)
    except ConfigMissing as exc:
        print(exc, file=sys.stderr)
        pause_if_double_clicked()
        return 1
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        pause_if_double_clicked()
        return 2
    if cfg.log_file:
        try:
            handler = private.PrivateRotatingFileHandler(
                cfg.log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
            )
        except OSError as exc:
            print(
                f"Configuration error: {cfg.path}: log_file {cfg.log_file}: {exc}", file=sys.stderr
            )
            pause_if_double_clicked()
            return 2
        handler.setFormatter(formatter)
        logging.getLogger().addHandler(handler)
    warn_if_plain_ws(cfg)
    warn_if_readable_by_others(cfg)
    runner.use_pidfd_child_watcher()
    return asyncio.run(serve(cfg, args.once))


if __name__ == "__main__":
    sys.exit(main())
