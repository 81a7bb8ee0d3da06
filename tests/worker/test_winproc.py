"""The Windows containment decision, with a fake Win32 API (the ctypes calls need Windows).

What must hold: a process is resumed only after it is in its kill-on-close job; any failure
terminates it (never resumed) and closes what was opened; the run is then refused with a reason.
"""

from __future__ import annotations

import pytest

from worker import winproc


class FakeApi:
    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple] = []

    def _call(self, name: str, *args):
        self.calls.append((name, *args))
        if name == self.fail:
            raise OSError(5, "Access is denied")

    def create_kill_on_close_job(self):
        self._call("create")
        return "H"

    def assign(self, job, pid):
        self._call("assign", job, pid)

    def resume(self, pid):
        self._call("resume", pid)

    def terminate_process(self, pid):
        self._call("terminate_process", pid)

    def terminate_job(self, job):
        self._call("terminate_job", job)

    def close(self, job):
        self._call("close", job)


def test_the_child_starts_suspended_in_its_own_group():
    assert winproc.CREATION_FLAGS & winproc.CREATE_SUSPENDED
    assert winproc.CREATION_FLAGS & winproc.CREATE_NEW_PROCESS_GROUP


def test_resumed_only_after_it_is_in_its_job():
    api = FakeApi()
    job = winproc.contain(42, api)
    assert api.calls == [("create",), ("assign", "H", 42), ("resume", 42)]
    job.terminate()
    job.close()
    job.close()  # twice is harmless
    assert api.calls[3:] == [("terminate_job", "H"), ("close", "H")]


@pytest.mark.parametrize("step", ["create", "assign", "resume"])
def test_a_process_that_cannot_be_contained_is_terminated_never_resumed(step):
    api = FakeApi(fail=step)
    with pytest.raises(winproc.NotContained, match=r"Job Object .*stopped before it started"):
        winproc.contain(42, api)
    names = [c[0] for c in api.calls]
    assert "terminate_process" in names
    assert names.count("resume") == (1 if step == "resume" else 0)  # the failed try only
    assert names[-1] == ("terminate_process" if step == "create" else "close")


def test_not_contained_is_an_oserror_so_the_run_fails_with_its_reason():
    assert issubclass(winproc.NotContained, OSError)
