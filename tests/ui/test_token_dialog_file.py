"""The worker.ini saved from the Workers panel holds a token: it is 0600 whatever the umask."""

from __future__ import annotations

import os
import stat

import pytest

from desktop.ui.worker_dialogs import TokenDialog

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")


def test_saved_worker_ini_is_0600_even_over_a_readable_file(tmp_path, qtbot):
    dialog = TokenDialog(None, "ws://127.0.0.1:1/ws/heartbeat", "w1", "t" * 43, ["a"], 1)
    qtbot.addWidget(dialog)
    old = os.umask(0)
    try:
        dialog.save(tmp_path / "new.ini")
        (tmp_path / "old.ini").write_text("stale\n")
        os.chmod(tmp_path / "old.ini", 0o644)
        dialog.save(tmp_path / "old.ini")
    finally:
        os.umask(old)
    for name in ("new.ini", "old.ini"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
        assert "t" * 43 in (tmp_path / name).read_text()
