"""Prints N numbered lines (argv[1]).  With a GATE path (argv[2]) it prints the first half, then
waits for that file to exist before printing the rest, so a test can act mid-run."""

import os
import sys
import time

n = int(sys.argv[1])
gate = sys.argv[2] if len(sys.argv) > 2 else None
out = sys.stdout
for i in range(1, n + 1):
    out.write(f"line {i}\n")
    if gate and i == n // 2:
        out.flush()
        while not os.path.exists(gate):
            time.sleep(0.01)
