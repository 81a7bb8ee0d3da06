"""Chaos case 1's job: a script, a child and a daemonised (setsid) grandchild, all long-lived.

Each process appends "start ROLE PID TIME" to the record file (argv[1]) and "stop ROLE PID TIME"
when it is told to stop (SIGTERM), so the test can check that no two attempts overlapped.  The
first attempt runs until killed; a later one (the file already holds a start) ends at once.
"""

import os
import signal
import subprocess
import sys
import time


def record(path, what, role):
    with open(path, "a") as f:
        f.write(f"{what} {role} {os.getpid()} {time.time():.6f}\n")


def stop_on_term(path, role):
    def handler(_sig, _frame):
        record(path, "stop", role)
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)


def main():
    path, role = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "script"
    if role == "script":
        first = not os.path.exists(path)
        record(path, "start", "script")
        if not first:
            print("later attempt: done", flush=True)
            return
        stop_on_term(path, role)
        subprocess.Popen([sys.executable, __file__, path, "child"])
        print("spawned the child", flush=True)
    elif role == "child":
        record(path, "start", role)
        stop_on_term(path, role)
        subprocess.Popen([sys.executable, __file__, path, "grandchild"], start_new_session=True)
    else:  # already a session of its own (start_new_session): it left the job's group
        record(path, "start", role)
        stop_on_term(path, role)
    time.sleep(600)


main()
