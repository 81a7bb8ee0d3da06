"""Starts a child that starts a grandchild; all sleep. Prints their pids, then sleeps."""

import subprocess
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] == "child":
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"grandchild {grandchild.pid}", flush=True)
    time.sleep(600)
else:
    child = subprocess.Popen([sys.executable, __file__, "child"])
    print(f"child {child.pid}", flush=True)
    time.sleep(600)
