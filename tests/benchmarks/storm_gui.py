"""The reconnect storm seen from the GUI thread (a diagnostic around bench_storm.py).

    python tests/benchmarks/storm_gui.py [--workers N] [--json OUT]     (N: 3,000 by default)

Runs bench_storm.measure once and records, with one clock (time.perf_counter), from the
restarted console's opening (the hub listens at once) until bench_storm's probe stops:

- every garbage collection: its thread, generation, wall and CPU time, what it freed and the
  counts at its start (gc.callbacks), and every gc.freeze;
- every callback the GUI thread's asyncio loop ran for longer than SLOW_CALLBACK, with its
  thread CPU (asyncio's Handle._run timed: qasync runs each through it);
- the Qt loop's turns (a 1 ms probe from the opening, and bench_storm's own from the window's
  first screen): the largest gaps, and what overlapped each.

It prints one JSON line: bench_storm's figures plus "gui": the collections on the GUI thread by
generation, the GUI thread's CPU, the largest gaps with their causes (tests/benchmarks/README.md,
round 4, reads them).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks import bench_storm  # noqa: E402

SLOW_CALLBACK = 0.010


class Recorder:
    def __init__(self) -> None:
        self.main = threading.get_ident()
        self.collections: list[tuple[float, float, int, str, int]] = []
        self.callbacks: list[tuple[float, float, float, str]] = []
        self._gc_start: dict[int, float] = {}
        self.probes: list[Any] = []
        self.opens: list[tuple[float, float, float]] = []
        self.open_cpu0 = 0.0
        self.open_probe: Any = None
        self.details: list[tuple] = []
        self.gc_cpu: list[tuple] = []
        self._gc_cpu0 = 0.0
        self._young = (0, 0, 0)
        self._orig_run = asyncio.Handle._run
        self._orig_freeze = gc.freeze
        self.freezes: list[float] = []

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)
        freeze = self._orig_freeze

        def counted_freeze() -> None:
            self.freezes.append(time.perf_counter())
            freeze()

        gc.freeze = counted_freeze
        rec = self
        orig = self._orig_run

        def timed_run(handle: asyncio.Handle) -> None:
            if threading.get_ident() != rec.main:
                orig(handle)
                return
            t0 = time.perf_counter()
            c0 = time.thread_time()
            try:
                orig(handle)
            finally:
                dt = time.perf_counter() - t0
                if dt > SLOW_CALLBACK:
                    rec.callbacks.append((t0, dt, time.thread_time() - c0, _label(handle)))

        asyncio.Handle._run = timed_run  # type: ignore[method-assign]
        original_probe = bench_storm.CpuTurnProbe

        class Kept(original_probe):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__()
                rec.probes.append(self)

        bench_storm.CpuTurnProbe = Kept  # type: ignore[misc]
        original_open = bench_storm._open_console

        async def timed_open(url, port, settle):
            t0 = time.perf_counter()
            c0 = time.thread_time()
            rec.open_cpu0 = c0
            from tests.benchmarks.bench_ui import TurnProbe

            rec.open_probe = TurnProbe()  # from opening on: the storm while the window loads
            rec.open_probe.start()
            out = await original_open(url, port, settle)
            rec.opens.append((t0, time.perf_counter() - t0, time.thread_time() - c0))
            return out

        bench_storm._open_console = timed_open  # type: ignore[assignment]

    def _on_gc(self, phase: str, info: dict) -> None:
        tid = threading.get_ident()
        if phase == "start":
            self._gc_start[tid] = time.perf_counter()
            self._gc_cpu0 = time.thread_time()
            self._young = gc.get_count()
            return
        t0 = self._gc_start.pop(tid, None)
        if t0 is None:
            return
        who = "gui" if tid == self.main else threading.current_thread().name
        self.collections.append(
            (t0, time.perf_counter() - t0, info["generation"], who, info["collected"])
        )
        self.gc_cpu.append((t0, info["generation"], who, time.thread_time() - self._gc_cpu0))
        self.details.append(
            (t0, time.perf_counter() - t0, info["generation"], who, info["collected"], self._young)
        )

    def analyse(self) -> dict:
        probe = self.probes[-1]
        stamps = probe.wall.stamps
        begin, end = stamps[0], stamps[-1]
        gcs = [c for c in self.collections if begin <= c[0] <= end]
        by_gen: dict[str, dict] = {}
        for gen in (0, 1, 2):
            ds = [c[1] for c in gcs if c[2] == gen and c[3] == "gui"]
            by_gen[f"gen{gen}"] = {
                "count": len(ds),
                "total_ms": round(1000 * sum(ds), 1),
                "max_ms": round(1000 * max(ds), 1) if ds else 0.0,
            }
        others = [c for c in gcs if c[3] != "gui"]
        # the restarted console: from opening it (the hub listens at once) to the probe's end
        opened, open_s, open_cpu = self.opens[-1]
        whole = [c for c in self.collections if opened <= c[0] <= end and c[3] == "gui"]
        whole_gen = {
            f"gen{g}": [
                sum(1 for c in whole if c[2] == g),
                round(1000 * sum(c[1] for c in whole if c[2] == g), 1),
                round(1000 * max([c[1] for c in whole if c[2] == g], default=0.0), 1),
            ]
            for g in (0, 1, 2)
        }
        mine = [c for c in self.gc_cpu if opened <= c[0] <= end and c[2] == "gui"]
        whole_cpu = {
            f"gen{g}": round(1000 * sum(c[3] for c in mine if c[1] == g), 1) for g in (0, 1, 2)
        }
        open_cbs = sorted(
            (cb for cb in self.callbacks if opened <= cb[0] <= begin), key=lambda cb: -cb[1]
        )[:5]
        gaps = sorted(((b - a, a, b) for a, b in itertools.pairwise(stamps)), reverse=True)[:10]
        top = []
        for gap, a, b in gaps:
            causes = [
                f"gc{c[2]}@{c[3]} {1000 * c[1]:.0f}ms" for c in gcs if c[0] < b and c[0] + c[1] > a
            ]
            causes += [
                f"cb {1000 * cb[1]:.0f}ms (cpu {1000 * cb[2]:.0f}) {cb[3]}"
                for cb in self.callbacks
                if cb[0] < b and cb[0] + cb[1] > a
            ]
            top.append(
                {"gap_ms": round(1000 * gap, 1), "at_s": round(a - begin, 2), "causes": causes}
            )
        slow = [cb for cb in self.callbacks if begin <= cb[0] <= end]
        ostamps = self.open_probe.stamps
        self.open_probe.stop()
        ostamps = [t for t in ostamps if t <= end]
        ogaps = sorted(((b - a, a, b) for a, b in itertools.pairwise(ostamps)), reverse=True)
        # gaps overlapping none of the scenario task's steps (building and loading the window,
        # polling the simulators)
        build = [cb for cb in self.callbacks if cb[3].startswith("task scenario")]
        storm_gaps = [
            g for g in ogaps if not any(cb[0] < g[2] and cb[0] + cb[1] > g[1] for cb in build)
        ]
        glist = sorted(g[0] for g in storm_gaps) or [0.0]
        return {
            "from_open_max_gap_ms": round(1000 * ogaps[0][0], 1) if ogaps else None,
            "from_open_max_gap_not_building_ms": round(1000 * glist[-1], 1),
            "from_open_p99_gap_not_building_ms": round(
                1000 * glist[max(0, int(len(glist) * 0.99) - 1)], 1
            ),
            "from_open_top_gaps": [
                {
                    "gap_ms": round(1000 * g, 1),
                    "at_s": round(a - opened, 2),
                    "causes": [
                        f"gc{c[2]} {1000 * c[1]:.0f}ms"
                        for c in self.collections
                        if c[3] == "gui" and c[0] < b and c[0] + c[1] > a
                    ]
                    + [
                        f"cb {1000 * cb[1]:.0f}ms (cpu {1000 * cb[2]:.0f}) {cb[3]}"
                        for cb in self.callbacks
                        if cb[0] < b and cb[0] + cb[1] > a
                    ],
                }
                for g, a, b in storm_gaps[:8]
            ],
            "window_s": round(end - begin, 1),
            "open_s": round(open_s, 2),
            "open_gui_cpu_s": round(open_cpu, 2),
            "gui_gc_from_open": whole_gen,
            "gui_gc_cpu_ms_from_open": whole_cpu,
            "freezes_from_open": sum(1 for t in self.freezes if opened <= t <= end),
            "gui_thread_cpu_from_open_s": round(probe.cpu[-1] - self.open_cpu0, 2)
            if probe.cpu
            else None,
            "slowest_while_opening": [
                f"{1000 * cb[1]:.0f}ms (cpu {1000 * cb[2]:.0f}) {cb[3]}" for cb in open_cbs
            ],
            "gui_gc": by_gen,
            "gui_gc_total_ms": round(sum(v["total_ms"] for v in by_gen.values()), 1),
            "other_thread_gc": len(others),
            "slow_callbacks": len(slow),
            "slow_callbacks_ms": round(1000 * sum(cb[1] for cb in slow), 1),
            "top_gaps": top,
            "big_collections": [
                [round(c[0] - opened, 2), round(1000 * c[1], 1), c[2], c[3], c[4], c[5]]
                for c in self.details
                if c[0] >= opened and (c[1] > 0.03 or c[2] == 2)
            ],
        }


def _label(handle: asyncio.Handle) -> str:
    cb = handle._callback  # type: ignore[attr-defined]
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', coro)!s}"
    return getattr(cb, "__qualname__", repr(cb))[:80]


def main() -> None:
    """One run per process (the benchmark builds its QApplication): repeat from the shell."""
    args = sys.argv[1:]
    n = int(args[args.index("--workers") + 1]) if "--workers" in args else 3000
    out_path = args[args.index("--json") + 1] if "--json" in args else None
    rec = Recorder()
    rec.install()
    try:
        r = bench_storm.measure(False, n)
        r["gui"] = rec.analyse()
    finally:
        gc.callbacks.remove(rec._on_gc)
        asyncio.Handle._run = rec._orig_run  # type: ignore[method-assign]
        gc.freeze = rec._orig_freeze
    print(json.dumps(r), flush=True)
    if out_path:
        Path(out_path).write_text(json.dumps([r], indent=1))


if __name__ == "__main__":
    main()
