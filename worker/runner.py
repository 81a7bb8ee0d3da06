"""Run one allow-listed script: live batched output, timeout, cancel, and whole-tree kill.

The runner knows nothing about sockets or the spool: it hands protocol message dicts (without
``seq``) to an ``emit`` callback, in order, one call per batch.  ``started`` comes first and
``finished`` last, exactly once, whatever happens (spawn failure, timeout, cancel, shutdown).

Process trees: POSIX children start in a process group of their own, so SIGTERM then SIGKILL
to the group reaches everything they spawned; descendants that left the group (setsid,
daemonising) are found with psutil beforehand and killed too.  Windows uses a Job Object
(worker/winproc.py).  Per the known pitfall, psutil never waits on the direct child: we kill,
await asyncio's own exit notification so it keeps the exit status, then reap grandchildren.

When the script exits normally but left processes holding its output pipes open, they get
``ORPHAN_GRACE`` seconds and are then stopped, so a run always ends and leaves nothing behind
(the same rule as Jenkins' process tree killer).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

from worker import envpolicy, frozenenv, leftovers
from worker.protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)

IS_WINDOWS = sys.platform == "win32"
FLUSH_SECONDS = 0.05
FLUSH_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
KILL_GRACE = 3.0  # seconds between the polite and the hard stop
ORPHAN_GRACE = 2.0
MAX_DELAY = 60.0  # a dispatch's "delay" is capped: a console asks for milliseconds
SPIN_BEFORE = 0.0015  # seconds of a delay slept on the thread, not on an asyncio timer

Emit = Callable[[list[dict[str, Any]]], None]


@dataclass
class RunRequest:
    run_id: int
    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    delay: float = 0.0  # seconds to hold the run before starting it (dispatch "delay")
    tag: str = ""  # JOBTRIGGER_RUN_TAG for the job's environment (worker/leftovers.py)


class Guard(Protocol):
    """Told of each job's process so it can end them if the worker dies (worker/guardian.py)."""

    def spawned(self, run_id: int, pid: int) -> None: ...

    def ended(self, run_id: int) -> None: ...


@functools.cache
def has_controlling_terminal() -> bool:
    """Whether this process has a terminal that jobs could open as /dev/tty (POSIX)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def use_pidfd_child_watcher() -> bool:
    """On Linux with Python 3.9-3.11, learn of child exits from a pidfd on the event loop
    instead of asyncio's default of one waiting thread per child (starting that thread was a
    tenth of a busy worker's time).  Python 3.12+ does this by itself.  Call before the loop
    starts; False (default kept) where pidfds are missing (old kernels, some sandboxes)."""
    if not sys.platform.startswith("linux") or sys.version_info >= (3, 12):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    return True


def _msg(mtype: str, run_id: int, **fields: Any) -> dict[str, Any]:
    return {"type": mtype, "v": PROTOCOL_VERSION, "run_id": run_id, **fields}


class _Batcher:
    """Collects decoded text per stream and emits whole lines every 50 ms or 64 KiB."""

    def __init__(self, run_id: int, emit: Emit) -> None:
        self.run_id = run_id
        self.emit = emit
        self.pending: list[tuple[str, str]] = []  # complete-line chunks, in arrival order
        self.partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self.size = 0
        self.wake = asyncio.Event()

    def add(self, stream: str, text: str) -> None:
        text = self.partial[stream] + text
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) < FLUSH_BYTES:
            self.partial[stream] = text  # no newline yet: wait for the rest of the line
            return
        if cut == 0:
            cut = len(text)  # a single huge line: send it in pieces rather than hold it forever
        self.partial[stream] = text[cut:]
        self._queue(stream, text[:cut])

    def end(self, stream: str) -> None:
        if self.partial[stream]:
            self._queue(stream, self.partial[stream])
            self.partial[stream] = ""

    def _queue(self, stream: str, text: str) -> None:
        if self.pending and self.pending[-1][0] == stream:
            self.pending[-1] = (stream, self.pending[-1][1] + text)
        else:
            self.pending.append((stream, text))
        self.size += len(text)
        if self.size >= FLUSH_BYTES:
            self.flush()
        else:
            self.wake.set()

    def flush(self) -> None:
        if not self.pending:
            return
        now = time.time()
        batch = [
            _msg("output", self.run_id, stream=stream, text=text, at=now)
            for stream, text in self.pending
        ]
        self.pending = []
        self.size = 0
        self.emit(batch)

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            await asyncio.sleep(FLUSH_SECONDS)  # the batching window itself, not a wait-for
            self.wake.clear()
            self.flush()


class OutputDecoder:
    """UTF-8, incrementally (a character split across reads stays whole).

    With a FALLBACK (Windows: the console's OEM code page, which cmd and many tools still
    write), a chunk that is not valid UTF-8 is decoded with it instead of turning every accented
    letter into U+FFFD; without one, bad bytes become U+FFFD.
    """

    def __init__(self, fallback: str | None = None) -> None:
        self.fallback = fallback
        errors = "strict" if fallback else "replace"
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors=errors)

    def decode(self, data: bytes, final: bool = False) -> str:
        if not self.fallback:
            return self._utf8.decode(data, final)
        pending, _ = self._utf8.getstate()
        try:
            return self._utf8.decode(data, final)
        except UnicodeDecodeError:
            self._utf8.reset()
            return (pending + data).decode(self.fallback, errors="replace")


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    def __init__(self, exited: asyncio.Future[None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exited = exited

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


class ScriptRun:
    """One run.  ``await run()`` returns the ``finished`` message it emitted."""

    def __init__(
        self,
        request: RunRequest,
        emit: Emit,
        kill_grace: float = KILL_GRACE,
        fallback_encoding: str | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.request = request
        self.guard = guard
        self.fallback_encoding = fallback_encoding
        self.emit = emit
        self.kill_grace = kill_grace
        self.proc: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self._stop_outcome = "cancelled"
        self._stop_reason = ""
        self._job: Any = None  # winproc.JobObject on Windows
        self._transport: asyncio.SubprocessTransport | None = None
        self._exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flowing = asyncio.Event()  # cleared: output is not read (the spool cannot take it)
        self._flowing.set()
        self._holds = 0  # how often output was held: a drain that saw a hold waits again

    def hold_output(self, hold: bool) -> None:
        """Stop or resume reading the script's output.  While held, the script blocks once its
        pipe is full: back-pressure instead of unbounded memory (worker disk full)."""
        if hold:
            self._holds += 1
            self._flowing.clear()
        else:
            self._flowing.set()

    def cancel(self, reason: str = "cancelled from the console") -> None:
        if not self._stop.is_set():
            self._stop_outcome, self._stop_reason = "cancelled", reason
            self._stop.set()

    async def run(self) -> dict[str, Any]:
        req = self.request
        if req.delay > 0 and not await self._hold(min(req.delay, MAX_DELAY)):
            return self._finish(
                self._stop_outcome, None, self._stop_reason + " (before it started)"
            )
        outcome: str | None
        reason: str | None
        try:
            self.proc = await self._spawn()
        except OSError as exc:
            reason = f"cannot start {req.argv[0]!r}: {exc.strerror or exc}"
            if IS_WINDOWS and type(exc).__name__ == "NotContained":
                reason = str(exc)
            log.warning("Run %s: %s", req.run_id, reason)
            return self._finish("failed", None, reason)
        self.emit([_msg("started", req.run_id, pid=self.proc.pid, at=time.time())])
        log.info("Run %s started: %s (pid %s)", req.run_id, " ".join(req.argv), self.proc.pid)
        batcher = _Batcher(req.run_id, self.emit)
        flusher = asyncio.create_task(batcher.run())
        assert self.proc.stdout and self.proc.stderr
        readers = [
            asyncio.create_task(self._read(self.proc.stdout, "stdout", batcher)),
            asyncio.create_task(self._read(self.proc.stderr, "stderr", batcher)),
        ]
        outcome = reason = None
        stopper = asyncio.create_task(self._stop.wait())
        ends: list[asyncio.Future[Any]] = [self._exited, stopper]
        try:
            done, _ = await asyncio.wait(
                ends, timeout=req.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if self._exited not in done:
                if stopper in done:
                    outcome, reason = self._stop_outcome, self._stop_reason
                else:
                    outcome = "timed_out"
                    reason = f"timed out after {req.timeout:g} s; the process tree was killed"
                await self.kill_tree()
            still_reading = await self._drain(readers)
            if still_reading:
                reason = reason or (
                    "the script exited but processes it started kept running; they were stopped"
                )
                await self.kill_tree()
                still_reading = await self._drain(readers)
            if still_reading:
                log.warning(
                    "Run %s: a process that left the script's process tree still holds its "
                    "output open; the rest of its output is not collected",
                    req.run_id,
                )
        finally:
            stopper.cancel()
            for task in (*readers, flusher):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*readers, flusher, stopper, return_exceptions=True)
            if self._transport is not None:
                self._transport.close()  # the pipes, so asyncio's bookkeeping finishes too
            if self._job is not None:
                self._job.close()
            if self.guard is not None:
                self.guard.ended(req.run_id)
        for stream in ("stdout", "stderr"):
            batcher.end(stream)
        batcher.flush()
        code = self.proc.returncode
        if outcome is None:
            outcome = "succeeded" if code == 0 else "failed"
        return self._finish(outcome, code, reason)

    async def _drain(self, readers: list[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
        """Wait up to ORPHAN_GRACE for the output pipes to reach end of file; time while the
        output is held (the spool's disk is full) does not count, or what the pipes still hold
        would be cut off when the script exits during the hold."""
        while True:
            await self._flowing.wait()
            holds = self._holds
            _, still = await asyncio.wait(readers, timeout=ORPHAN_GRACE)
            if not still or (self._flowing.is_set() and holds == self._holds):
                return still

    async def _hold(self, seconds: float) -> bool:
        """Wait until the start time; False if cancelled meanwhile.  asyncio rounds timer waits
        up to whole milliseconds, so the last SPIN_BEFORE seconds are slept on this thread (the
        loop is blocked for at most that long, once per held run)."""
        until = time.perf_counter() + seconds  # fine-grained on Windows too (monotonic: 16 ms)
        while True:
            left = until - time.perf_counter()
            if left <= SPIN_BEFORE:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), left - SPIN_BEFORE)
            if self._stop.is_set():
                return False
        if left > 0:
            time.sleep(left)  # at most SPIN_BEFORE: asyncio's timers may fire early or late
        return True

    def _finish(self, outcome: str, code: int | None, reason: str | None) -> dict[str, Any]:
        msg = _msg("finished", self.request.run_id, outcome=outcome, exit_code=code, at=time.time())
        msg["reason"] = reason
        self.emit([msg])
        log.info("Run %s finished: %s (exit code %s)", self.request.run_id, outcome, code)
        return msg

    async def _spawn(self) -> asyncio.subprocess.Process:
        """Like asyncio.create_subprocess_exec, but with a protocol that reports the exit.

        On Python 3.10/3.11, ``Process.wait()`` only returns once the output pipes are closed
        too, so a background process that inherited them would hide the script's exit forever.
        """
        req = self.request
        base: Mapping[str, str] = os.environ
        if getattr(sys, "frozen", False) and req.argv[0] != sys.executable:
            base = frozenenv.for_external_program(base)  # not the bundle's libraries
        env = envpolicy.child_environment(base, req.env, ignore_case=IS_WINDOWS)
        if req.tag:  # last: neither the hub's env nor the worker's own may set it
            env[leftovers.TAG_VAR] = req.tag
        kwargs: dict[str, Any] = {}
        if IS_WINDOWS:
            from worker import winproc

            kwargs["creationflags"] = winproc.CREATION_FLAGS
        elif sys.version_info >= (3, 11) and not has_controlling_terminal():
            # A group of its own is all the tree kill needs.  Not a new session: with setsid
            # starting a Python script took 3.3 ms instead of 0.5 ms here (median of 100; both
            # vfork, so probably the kernel's per-session scheduling group).
            kwargs["process_group"] = 0
        else:
            # A worker started from a terminal: a new session, or a job that opens /dev/tty
            # (ssh, sudo, git asking for a password) would stop on SIGTTIN instead of failing.
            kwargs["start_new_session"] = True
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        exited = self._exited
        self._transport, protocol = await loop.subprocess_exec(
            lambda: _ExitAwareProtocol(exited, limit=READ_CHUNK, loop=loop),
            *req.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=req.cwd,
            env=env,
            **kwargs,
        )
        proc = asyncio.subprocess.Process(self._transport, protocol, loop)
        if self.guard is not None:
            self.guard.spawned(req.run_id, proc.pid)
        if IS_WINDOWS:
            try:  # the only path: a process that cannot be contained never runs
                self._job = winproc.contain(proc.pid)
            except winproc.NotContained:
                await asyncio.wait({exited}, timeout=self.kill_grace)
                self._transport.close()
                raise
        return proc

    async def _read(self, stream: asyncio.StreamReader, name: str, batcher: _Batcher) -> None:
        decoder = OutputDecoder(self.fallback_encoding)
        while True:
            await self._flowing.wait()
            chunk = await stream.read(READ_CHUNK)
            if not chunk:
                text = decoder.decode(b"", final=True)
                if text:
                    batcher.add(name, text)
                batcher.end(name)
                return
            batcher.add(name, decoder.decode(chunk))

    async def kill_tree(self) -> None:
        proc = self.proc
        assert proc is not None
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            descendants = []  # the direct child is gone; its group may still hold some
        if IS_WINDOWS:
            from worker import winproc

            winproc.ask_to_stop(proc.pid)
        else:
            _signal_group(proc.pid, signal.SIGTERM)
        _signal_procs(descendants, gentle=True)
        await asyncio.wait({self._exited}, timeout=self.kill_grace)
        # Hard stop for everything, including a leader that ignored SIGTERM.
        if IS_WINDOWS:
            if self._job is not None:
                self._job.terminate()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        else:
            _signal_group(proc.pid, signal.SIGKILL)
        _signal_procs(descendants, gentle=False)
        await asyncio.wait({self._exited}, timeout=self.kill_grace)
        # Reap grandchildren only now (pitfall: never psutil-wait the direct child).
        _, alive = await asyncio.to_thread(psutil.wait_procs, descendants, self.kill_grace)
        for p in alive:
            log.warning("Run %s: process %s survived the kill", self.request.run_id, p.pid)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_procs(procs: list[psutil.Process], gentle: bool) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate() if gentle else p.kill()
