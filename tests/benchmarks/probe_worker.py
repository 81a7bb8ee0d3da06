"""A real ``python -m worker`` with one probe: the moment each dispatch frame is received.

The protocol has no field for it (``started.at`` is taken after the child process exists), so
the dispatch-latency benchmark starts workers through this module.  The probe wraps
``Worker._handle`` and prints ``BENCH-DISPATCH <run id> <time.time()>`` to stderr before the
worker does anything with the frame; everything else is the unmodified worker.

    python tests/benchmarks/probe_worker.py --config worker.ini
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from worker import client
from worker.__main__ import main

MARK = "BENCH-DISPATCH"


def install() -> None:
    original = client.Worker._handle

    async def handle(self, ws, msg):
        if msg.type == "dispatch":
            sys.stderr.write(f"{MARK} {msg['run_id']} {time.time():.6f}\n")
        return await original(self, ws, msg)

    client.Worker._handle = handle


def received_times(log_text: str) -> dict[int, float]:
    """Run id -> dispatch receipt time from a probe worker's log."""
    out = {}
    for line in log_text.splitlines():
        if line.startswith(MARK):
            _, run_id, at = line.split()
            out[int(run_id)] = float(at)
    return out


if __name__ == "__main__":
    install()
    sys.exit(main())
