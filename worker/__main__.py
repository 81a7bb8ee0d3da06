"""python -m worker [--config PATH] [--once] [--version]; also the frozen script-runner mode.

``worker.exe --run-script PATH ARGS...`` runs a .py script with the interpreter frozen into the
worker, so hosts need no Python installed.  It is handled before argparse because the script's
own arguments may look like options.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import runpy
import sys
from pathlib import Path

from worker import __version__, runner
from worker.config import ConfigError, ConfigMissing, WorkerConfig, load
from worker.console import pause_if_double_clicked

log = logging.getLogger("worker")


def run_script(argv: list[str]) -> int:
    if not argv:
        print("--run-script needs the path of a .py file", file=sys.stderr)
        return 2
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
        "Job Trigger worker %s (%s), scripts in %s, %d slot(s)",
        __version__,
        cfg.name,
        cfg.scripts_dir,
        cfg.slots,
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
    if getattr(sys, "frozen", False):
        # A .py job using multiprocessing starts this executable again for its helper and pool
        # processes (spawn: the Windows default); PyInstaller's freeze_support runs those and exits.
        import multiprocessing

        multiprocessing.freeze_support()
        if sys.platform == "win32":
            from worker import winproc

            winproc.restore_dll_search_path()  # what jobs start must not load our DLLs
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-script"]:
        return run_script(argv[1:])
    if argv[:1] == ["--guardian"]:  # the frozen worker started as its own guardian
        from worker import guardian

        return guardian.main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
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
            handler = logging.handlers.RotatingFileHandler(
                cfg.log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
            )
        except OSError as exc:
            print(
                f"Configuration error: {cfg.path}: log_file {cfg.log_file}: {exc}", file=sys.stderr
            )
            pause_if_double_clicked()
            return 2
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger().addHandler(handler)
    runner.use_pidfd_child_watcher()
    return asyncio.run(serve(cfg, args.once))


if __name__ == "__main__":
    sys.exit(main())
