"""When the spool's disk is full: hold what could not be written, in order, and retry.

The spool's writes are all or nothing (worker/spool.py), so a failed batch leaves the spool as
it was; the batch waits here, in memory, with everything the run emits after it (order is
seq order, given when the spool finally takes them).  Every ``DISK_RETRY`` seconds the held
batches are offered to the spool again.  Past ``HOLD_BYTES`` held for a run, its script's output
is no longer read, so the script blocks on its pipe instead of the worker's memory growing.
``problem`` says why, for the console (heartbeat), until everything is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.spool import Spool

log = logging.getLogger(__name__)

DISK_RETRY = 1.0  # seconds between tries (no event says "space is back")
HOLD_BYTES = 1024 * 1024  # held output per run past which its script's output is not read

Messages = list[dict[str, Any]]


class DiskHold:
    def __init__(
        self,
        spool: Spool,
        folder: Path,
        written: Callable[[], None],
        hold_output: Callable[[int, bool], None],
    ) -> None:
        self.spool = spool
        self.folder = folder
        self.written = written  # the spool took messages: sync and send them
        self.hold_output = hold_output  # (run id, hold?): stop or resume reading its output
        self.held: dict[int, Messages] = {}
        self.problem: str | None = None
        self._retrier: asyncio.Task[None] | None = None

    def holds(self, run_id: int) -> bool:
        return run_id in self.held

    def hold(self, run_id: int, messages: Messages, exc: OSError | None = None) -> None:
        held = self.held.setdefault(run_id, [])
        held.extend(messages)
        if exc is not None and self.problem is None:
            self.problem = (
                f"cannot write to the spool {self.folder} ({exc.strerror or exc}): "
                "output is held in memory and sent when there is room again"
            )
            log.error("Disk full? %s; retrying every %g s", self.problem, DISK_RETRY)
        if sum(len(m.get("text", "")) for m in held) >= HOLD_BYTES:
            self.hold_output(run_id, True)
        try:
            self.start()
        except RuntimeError:
            pass  # no loop yet (runs closed at start-up): the worker starts it with its loop

    def start(self) -> None:
        if self.held and (self._retrier is None or self._retrier.done()):
            self._retrier = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        while self.held:
            await asyncio.sleep(DISK_RETRY)  # polling the disk: nothing to await instead
            for run_id in list(self.held):
                try:
                    written = self.spool.append(run_id, self.held[run_id])
                except OSError:
                    break
                del self.held[run_id]
                self.hold_output(run_id, False)
                if written:
                    self.written()
        log.warning("The spool is writable again; held output went to it")
        self.problem = None
