"""Where the event loop stalls, and what ran meanwhile (a diagnostic for the benchmarks).

    with StallProbe(db=core.db) as probe:      # inside the running loop
        ...
    print(probe.report())

Installed, it records with one clock (time.perf_counter):

- lag: a task sleeping TICK and how late each wake-up was (a stall of the loop);
- every loop callback longer than SLOW_CALLBACK (asyncio's Handle._run timed; a task step is
  named by its coroutine);
- every garbage collection of generation 2 (and the thread it ran on);
- every database call longer than SLOW_DB (DbExecutor._run timed, on its thread) and how
  long each waited in the database thread's queue;
- stack samples of the loop's thread while one callback has run longer than SAMPLE_AFTER, and
  of the database thread while one call has run that long (a watchdog thread; it cannot run
  while a collection holds the interpreter, which the gc record covers).

``report()`` lists each stall over THRESHOLD with what overlapped it.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

TICK = 0.010
THRESHOLD = 0.050
SLOW_CALLBACK = 0.010
SLOW_DB = 0.010
SAMPLE_AFTER = 0.030
SAMPLE_EVERY = 0.010
SLOW_ITERATION = 0.030


@dataclass
class Span:
    start: float
    seconds: float
    what: str
    stacks: list[str] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + self.seconds


def _label(handle: asyncio.Handle) -> str:
    cb = handle._callback  # type: ignore[attr-defined]
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {owner.get_name()} {getattr(coro, '__qualname__', coro)!s}"
    name = getattr(cb, "__qualname__", None) or repr(cb)
    return f"callback {name}"


def _stack(frame: Any, limit: int = 14) -> str:
    lines = traceback.format_list(traceback.extract_stack(frame)[-limit:])
    return "".join(x.split("\n", 1)[0] + "\n" for x in lines)


class StallProbe:
    def __init__(self, db: Any = None, threshold: float = THRESHOLD) -> None:
        self.db = db
        self.threshold = threshold
        self.lags: list[Span] = []
        self.callbacks: list[Span] = []
        self.collections: list[Span] = []
        self.db_calls: list[Span] = []
        self._current: list[Any] = [None, 0.0, []]  # handle, start, stacks (loop thread)
        self._db_current: list[Any] = [None, 0.0, []]  # fn, start, stacks (database thread)
        self._db_thread: int | None = None
        self._gc_t0: dict[int, float] = {}
        self._stop = threading.Event()
        self._orig_run: Any = None
        self._orig_db_run: Any = None
        self._task: asyncio.Task | None = None
        self._watch: threading.Thread | None = None
        self.iterations: list[Span] = []  # loop iterations longer than SLOW_ITERATION
        self._tally: dict[str, list[float]] = {}  # label -> [count, seconds], this iteration

    # --- install / remove -------------------------------------------------------------------

    def __enter__(self) -> StallProbe:
        self._loop_thread = threading.get_ident()
        probe = self
        orig = asyncio.events.Handle._run
        self._orig_run = orig

        def timed_run(handle: asyncio.Handle) -> None:
            if threading.get_ident() != probe._loop_thread:
                return orig(handle)
            cur = probe._current
            t0 = time.perf_counter()
            cur[0], cur[1], cur[2] = handle, t0, []
            try:
                return orig(handle)
            finally:
                dt = time.perf_counter() - t0
                stacks = cur[2]
                cur[0] = None
                label = _label(handle)
                tally = probe._tally.setdefault(label, [0, 0.0])
                tally[0] += 1
                tally[1] += dt
                if dt > SLOW_CALLBACK:
                    probe.callbacks.append(Span(t0, dt, label, stacks))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        self._loop = loop
        orig_once = loop._run_once  # type: ignore[attr-defined]
        orig_select = loop._selector.select  # type: ignore[attr-defined]
        sel = [0.0, 0]

        def timed_select(timeout=None):
            t0 = time.perf_counter()
            events = orig_select(timeout)
            sel[0], sel[1] = time.perf_counter() - t0, len(events)
            return events

        def timed_once() -> None:
            probe._tally = {}
            t0 = time.perf_counter()
            c0 = time.thread_time()
            orig_once()
            dt = time.perf_counter() - t0
            busy = dt - sel[0]
            if busy > SLOW_ITERATION:
                top = sorted(probe._tally.items(), key=lambda kv: -kv[1][1])[:6]
                n = sum(int(v[0]) for v in probe._tally.values())
                what = (
                    f"iteration {n} callbacks, select {sel[0] * 1000:.0f} ms ({sel[1]} events), "
                    f"loop-thread cpu {(time.thread_time() - c0) * 1000:.0f} ms; "
                    + ", ".join(f"{k} x{int(v[0])} {v[1] * 1000:.0f} ms" for k, v in top)
                )
                probe.iterations.append(Span(t0, dt, what))

        loop._run_once = timed_once  # type: ignore[attr-defined]
        loop._selector.select = timed_select  # type: ignore[attr-defined]
        self._orig_once, self._orig_select = orig_once, orig_select
        if self.db is not None:
            orig_db = self.db._run
            self._orig_db_run = orig_db

            def timed_db(fn, args, kwargs):
                probe._db_thread = threading.get_ident()
                cur = probe._db_current
                t0 = time.perf_counter()
                cur[0], cur[1], cur[2] = fn, t0, []
                try:
                    return orig_db(fn, args, kwargs)
                finally:
                    dt = time.perf_counter() - t0
                    stacks = cur[2]
                    cur[0] = None
                    if dt > SLOW_DB:
                        name = getattr(fn, "__qualname__", repr(fn))
                        probe.db_calls.append(Span(t0, dt, f"db {name}", stacks))

            self.db._run = timed_db
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._lag(), name="stall-probe")
        self._watch = threading.Thread(target=self._watchdog, name="stall-watch", daemon=True)
        self._watch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        asyncio.events.Handle._run = self._orig_run  # type: ignore[method-assign]
        del self._loop._run_once  # type: ignore[attr-defined]
        del self._loop._selector.select  # type: ignore[attr-defined]
        if self._orig_db_run is not None:
            self.db._run = self._orig_db_run
        gc.callbacks.remove(self._on_gc)
        if self._watch is not None:
            self._watch.join()

    # --- recorders --------------------------------------------------------------------------

    async def _lag(self) -> None:
        while True:
            t0 = time.perf_counter()
            p0, c0 = time.process_time(), time.thread_time()
            await asyncio.sleep(TICK)
            late = time.perf_counter() - t0 - TICK
            if late > 0.002:
                cpu = (time.process_time() - p0) * 1000
                own = (time.thread_time() - c0) * 1000
                what = f"lag; process cpu {cpu:.0f} ms, loop thread cpu {own:.0f} ms"
                self.lags.append(Span(t0 + TICK, late, what))

    def _on_gc(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        tid = threading.get_ident()
        if phase == "start":
            self._gc_t0[tid] = time.perf_counter()
            return
        t0 = self._gc_t0.pop(tid, None)
        if t0 is not None:
            where = threading.current_thread().name
            self.collections.append(
                Span(
                    t0,
                    time.perf_counter() - t0,
                    f"gc2 on {where} ({info.get('collected')} freed)",
                )
            )

    def _watchdog(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            now = time.perf_counter()
            frames = None
            for cur, tid in (
                (self._current, self._loop_thread),
                (self._db_current, self._db_thread),
            ):
                if cur[0] is None or tid is None or now - cur[1] < SAMPLE_AFTER:
                    continue
                frames = frames or sys._current_frames()
                frame = frames.get(tid)
                if frame is not None and len(cur[2]) < 50:
                    cur[2].append(f"+{(now - cur[1]) * 1000:.0f} ms\n{_stack(frame)}")

    # --- report -----------------------------------------------------------------------------

    def stalls(self) -> list[Span]:
        return [s for s in self.lags if s.seconds > self.threshold]

    def report(self, t0: float | None = None) -> str:
        base = t0 if t0 is not None else min([s.start for s in self.lags] or [0.0])
        out = []
        lag_ms = sorted(s.seconds * 1000 for s in self.lags)
        out.append(
            f"lag samples over 2 ms: {len(lag_ms)}; over {self.threshold * 1000:.0f} ms: "
            f"{len(self.stalls())}; worst {lag_ms[-5:] if lag_ms else []}"
        )
        out.append(
            f"gen-2 collections: {len(self.collections)}, longest "
            f"{max([c.seconds for c in self.collections] or [0]) * 1000:.0f} ms"
        )
        slow = collections.Counter(c.what for c in self.callbacks if c.seconds > 0.02)
        out.append(f"loop callbacks over 20 ms by name: {slow.most_common(10)}")
        slowdb = collections.Counter(c.what for c in self.db_calls if c.seconds > 0.02)
        out.append(f"database calls over 20 ms by name: {slowdb.most_common(10)}")
        for stall in self.stalls():
            lo, hi = stall.start - 0.005, stall.end + 0.005
            out.append(
                f"\n=== stall at +{stall.start - base:.3f} s: {stall.seconds * 1000:.0f} ms "
                f"({stall.what})"
            )
            for kind, spans in (
                ("iter", self.iterations),
                ("gc", self.collections),
                ("loop", self.callbacks),
                ("db", self.db_calls),
            ):
                for s in spans:
                    if s.end >= lo and s.start <= hi:
                        out.append(
                            f"  {kind}: +{s.start - base:.3f} s {s.seconds * 1000:.0f} ms {s.what}"
                        )
                        if s.stacks:
                            out.append(_common(s.stacks))
        return "\n".join(out)


def _common(stacks: list[str]) -> str:
    """The stack samples of one span: the most frequent ones, indented."""
    counted = collections.Counter(s.split("\n", 1)[1] for s in stacks)
    parts = []
    for text, n in counted.most_common(3):
        body = "\n".join("      " + line for line in text.strip().splitlines())
        parts.append(f"    [{n} of {len(stacks)} samples]\n{body}")
    return "\n".join(parts)
