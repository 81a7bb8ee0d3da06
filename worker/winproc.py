"""Windows process-tree control: every run in a kill-on-close Job Object, from its first
instruction.  The ctypes calls only run on Windows; the module imports anywhere, so the
decision logic (:func:`contain`) is unit-tested on Linux with a fake API.

Why a Job Object: on Windows ``Process.kill()`` ends only the direct child, and a script that
started ``ping -t`` or a PowerShell child would leave it running.  Every process a job member
creates joins the job automatically, ``TerminateJobObject`` ends all of them at once, and with
``KILL_ON_JOB_CLOSE`` they also die when the worker dies however it dies (``taskkill /F``, a
crash): the kernel closes the worker's handles, and the last handle closing ends the job.
So on Windows a script never outlives its worker without any guardian process.

It is the only path: the child is created suspended (``CREATE_SUSPENDED``), put in its job,
and only then resumed, so not even its first grandchild can start outside the job.  If the job
cannot be made or the process cannot be put in it, the process is terminated before it ran a
single instruction and the run fails with the reason: a run the worker cannot contain does not
run.  (Windows 8 / Server 2012 and later allow nested jobs, so a worker that itself runs inside
a job, e.g. under a service manager, still works.)

The gentle step is ``CTRL_BREAK_EVENT`` to the child's process group (it was started with
``CREATE_NEW_PROCESS_GROUP``): console programs, cmd and PowerShell stop on it; then the job is
terminated.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any, Protocol

CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_SUSPENDED = 0x00000004
CREATION_FLAGS = CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED

_JobObjectExtendedLimitInformation = 9
_JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
_PROCESS_SET_QUOTA = 0x0100
_PROCESS_TERMINATE = 0x0001
_PROCESS_SUSPEND_RESUME = 0x0800


class NotContained(OSError):
    """The process could not be put in a Job Object; it was terminated before it ran."""


class Api(Protocol):
    """The five Win32 operations :func:`contain` decides between (fake in the tests)."""

    def create_kill_on_close_job(self) -> Any: ...

    def assign(self, job: Any, pid: int) -> None: ...

    def resume(self, pid: int) -> None: ...

    def terminate_process(self, pid: int) -> None: ...

    def terminate_job(self, job: Any) -> None: ...

    def close(self, job: Any) -> None: ...


class JobObject:
    """One kill-on-close job holding a run's process tree."""

    def __init__(self, api: Api, handle: Any) -> None:
        self.api = api
        self.handle = handle

    def terminate(self) -> None:
        if self.handle:
            self.api.terminate_job(self.handle)

    def close(self) -> None:
        if self.handle:
            self.api.close(self.handle)
            self.handle = None


def contain(pid: int, api: Api | None = None) -> JobObject:
    """Put the suspended new process PID in a kill-on-close job of its own, then let it run.
    Any failure: the process is terminated (never resumed) and :class:`NotContained` raised."""
    api = api or Win32()
    handle = None
    try:
        handle = api.create_kill_on_close_job()
        api.assign(handle, pid)
        api.resume(pid)
    except OSError as exc:
        try:
            api.terminate_process(pid)
        except OSError:
            pass  # it may be gone already; the job (if any) still ends it on close
        if handle:
            api.close(handle)
        raise NotContained(
            f"cannot run the script inside a Windows Job Object ({exc}); it was stopped before "
            "it started, because without a job its processes could outlive the worker"
        ) from exc
    return JobObject(api, handle)


class Win32:
    """The real calls (Windows only)."""

    def __init__(self) -> None:
        from ctypes import wintypes

        self.wintypes = wintypes
        self.k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        self.ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined]

    def _fail(self) -> OSError:
        return ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,no-any-return]

    def _open(self, pid: int, access: int) -> Any:
        proc = self.k32.OpenProcess(access, False, pid)
        if not proc:
            raise self._fail()
        return proc

    def create_kill_on_close_job(self) -> Any:
        handle = self.k32.CreateJobObjectW(None, None)
        if not handle:
            raise self._fail()
        info = _extended_limit(self.wintypes)()
        info.BasicLimitInformation.LimitFlags = _JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        if not self.k32.SetInformationJobObject(
            handle, _JobObjectExtendedLimitInformation, ctypes.byref(info), ctypes.sizeof(info)
        ):
            exc = self._fail()
            self.k32.CloseHandle(handle)
            raise exc
        return handle

    def assign(self, job: Any, pid: int) -> None:
        proc = self._open(pid, _PROCESS_SET_QUOTA | _PROCESS_TERMINATE)
        try:
            if not self.k32.AssignProcessToJobObject(job, proc):
                raise self._fail()
        finally:
            self.k32.CloseHandle(proc)

    def resume(self, pid: int) -> None:
        # asyncio (subprocess.Popen) closes the main thread's handle, so ResumeThread is out
        # of reach: NtResumeProcess resumes every thread of the process, which is just one.
        proc = self._open(pid, _PROCESS_SUSPEND_RESUME)
        try:
            status = self.ntdll.NtResumeProcess(proc)
            if status != 0:
                raise OSError(f"NtResumeProcess returned 0x{status & 0xFFFFFFFF:08x}")
        finally:
            self.k32.CloseHandle(proc)

    def terminate_process(self, pid: int) -> None:
        proc = self._open(pid, _PROCESS_TERMINATE)
        try:
            self.k32.TerminateProcess(proc, 1)
        finally:
            self.k32.CloseHandle(proc)

    def terminate_job(self, job: Any) -> None:
        self.k32.TerminateJobObject(job, 1)

    def close(self, job: Any) -> None:
        self.k32.CloseHandle(job)


def _extended_limit(wintypes: Any) -> type[ctypes.Structure]:
    class IoCounters(ctypes.Structure):
        _fields_ = [(n, ctypes.c_ulonglong) for n in (
            "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
            "ReadTransferCount", "WriteTransferCount", "OtherTransferCount",
        )]  # fmt: skip

    class BasicLimit(ctypes.Structure):
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

    class ExtendedLimit(ctypes.Structure):
        _fields_ = [
            ("BasicLimitInformation", BasicLimit),
            ("IoInfo", IoCounters),
            ("ProcessMemoryLimit", ctypes.c_size_t),
            ("JobMemoryLimit", ctypes.c_size_t),
            ("PeakProcessMemoryUsed", ctypes.c_size_t),
            ("PeakJobMemoryUsed", ctypes.c_size_t),
        ]

    return ExtendedLimit


def console_encoding() -> str:
    """The OEM code page that cmd.exe and console tools write when not told to use UTF-8."""
    return f"cp{ctypes.WinDLL('kernel32').GetOEMCP()}"  # type: ignore[attr-defined]


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
