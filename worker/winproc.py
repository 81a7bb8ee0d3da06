"""Windows process-tree control: a Job Object per run.  Imported only on Windows.

Why a Job Object: on Windows ``Process.kill()`` ends only the direct child, and a script that
started ``ping -t`` or a PowerShell child would leave it running.  Every process a job member
creates joins the job automatically, and ``TerminateJobObject`` ends all of them at once; with
``KILL_ON_JOB_CLOSE`` they also die if the worker itself crashes (the handle closes with it).

Reasoning about the one race: the child is assigned right after ``CreateProcess`` returns, so a
grandchild it spawns in that first instant escapes the job.  The fallback in :func:`kill_tree`
(psutil's recursive children, taken before the kill) covers that case.  Creating the process
suspended would close the race but asyncio's subprocess API cannot do that.

The gentle step is ``CTRL_BREAK_EVENT`` to the child's process group (it was started with
``CREATE_NEW_PROCESS_GROUP``): console programs, cmd and PowerShell stop on it; then the job is
terminated.  This module cannot be exercised on the Linux CI; it is kept small and plain ctypes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from ctypes import wintypes

CREATION_FLAGS = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]

_JobObjectExtendedLimitInformation = 9
_JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
_PROCESS_SET_QUOTA = 0x0100
_PROCESS_TERMINATE = 0x0001


class _IO_COUNTERS(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
        "ReadTransferCount", "WriteTransferCount", "OtherTransferCount",
    )]  # fmt: skip


class _BASIC_LIMIT(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class _EXTENDED_LIMIT(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", _BASIC_LIMIT),
        ("IoInfo", _IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]


class JobObject:
    """One kill-on-close job holding a run's process tree."""

    def __init__(self) -> None:
        self.handle = _kernel32.CreateJobObjectW(None, None)
        if not self.handle:
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
        info = _EXTENDED_LIMIT()
        info.BasicLimitInformation.LimitFlags = _JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        ok = _kernel32.SetInformationJobObject(
            self.handle, _JobObjectExtendedLimitInformation, ctypes.byref(info), ctypes.sizeof(info)
        )
        if not ok:
            self.close()
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]

    def assign(self, pid: int) -> None:
        proc = _kernel32.OpenProcess(_PROCESS_SET_QUOTA | _PROCESS_TERMINATE, False, pid)
        if not proc:
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
        try:
            if not _kernel32.AssignProcessToJobObject(self.handle, proc):
                raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined]
        finally:
            _kernel32.CloseHandle(proc)

    def terminate(self, exit_code: int = 1) -> None:
        if self.handle:
            _kernel32.TerminateJobObject(self.handle, exit_code)

    def close(self) -> None:
        if self.handle:
            _kernel32.CloseHandle(self.handle)
            self.handle = None


def console_encoding() -> str:
    """The OEM code page that cmd.exe and console tools write when not told to use UTF-8."""
    return f"cp{_kernel32.GetOEMCP()}"


def ask_to_stop(pid: int) -> None:
    """The gentle step: Ctrl+Break to the run's own process group."""
    try:
        os.kill(pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
    except OSError:
        pass  # already gone


def restore_dll_search_path() -> bool:
    """Undo the one-file bootloader's ``SetDllDirectoryW(<unpacked folder>)`` for this process.
    Programs started from it inherit that DLL directory, so a job's own executable could load
    the worker's bundled DLLs (OpenSSL, the VC runtime) instead of its own (PyInstaller issue
    3795).  Safe once the worker's modules are imported: since Python 3.8 extension modules
    find their DLLs through their own folder, not this setting.  Not run on the Linux CI."""
    return bool(ctypes.windll.kernel32.SetDllDirectoryW(None))  # type: ignore[attr-defined]
