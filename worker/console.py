"""Was the worker started by a double-click (its own console window that closes on exit)?

Then a message printed before exiting would vanish with the window, so the caller waits for
Enter.  Detection is Windows-only: a console shared only with ourselves (and, for a one-file
PyInstaller build, with our own bootloader parent process) was created for us, i.e. Explorer
started us.  A terminal user (cmd, PowerShell, a service wrapper) shares it with the shell.
Anything uncertain answers False: never block a scripted or service start waiting for Enter.
"""

from __future__ import annotations

import os
import sys


def started_by_double_click() -> bool:
    if sys.platform != "win32":
        return False
    try:
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
        session = ctypes.c_uint32()
        if kernel32.ProcessIdToSessionId(os.getpid(), ctypes.byref(session)) and not session.value:
            # Session 0: a service wrapper, or a scheduled task that runs whether anyone is logged
            # on or not.  Its console is invisible and the task would hang waiting for Enter.
            return False
        pids = (ctypes.c_uint32 * 16)()
        count = kernel32.GetConsoleProcessList(pids, 16)
        if count <= 0:
            return False  # no console at all (pythonw, service): nobody could press Enter
        others = set(pids[: min(count, 16)]) - {os.getpid()}
        if getattr(sys, "frozen", False):
            others.discard(os.getppid())  # the one-file bootloader is a copy of ourselves
        return not others
    except Exception:
        return False


def pause_if_double_clicked() -> None:
    if started_by_double_click():
        try:
            input("Press Enter to close this window...")
        except (EOFError, KeyboardInterrupt):
            pass
