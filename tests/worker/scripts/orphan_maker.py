"""Starts a background process that keeps our stdout open, then exits 0 at once."""

import subprocess
import sys

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"orphan {child.pid}", flush=True)
