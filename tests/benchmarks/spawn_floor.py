"""The ceiling the spawn alone puts on end-to-end throughput.

Every run in the throughput scenario starts a real process (the ``#!/bin/sh`` script), and
that costs CPU in the parent (fork and exec) and in the child (the kernel's exec, the shell's
start-up) before any scheduler, hub, store or worker code runs.  This measures that cost with
a plain loop of ``subprocess.Popen`` + ``communicate`` (no asyncio, no pipes kept, nothing
else), and turns it into runs per second on all of this machine's cores: no console and worker
can go faster than that on the same machine, however cheap they are.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path


def measure(script: Path, n: int = 500) -> dict[str, float]:
    def children_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    k0, c0 = children_cpu(), time.process_time()
    for _ in range(n):
        proc = subprocess.Popen(
            [str(script)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # as the worker starts its jobs
        )
        proc.communicate()
    parent = (time.process_time() - c0) / n
    child = (children_cpu() - k0) / n
    cores = os.cpu_count() or 1
    return {
        "parent_ms": parent * 1000,
        "child_ms": child * 1000,
        "ceiling_runs_per_s": cores / (parent + child),
    }
