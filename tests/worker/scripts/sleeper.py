"""Prints 'sleeping', then sleeps for argv[1] seconds (default 600)."""

import sys
import time

print("sleeping", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 600)
print("woke up", flush=True)
