"""Another local account plants something where the worker's private files go: a spool folder
it owns with open modes, a symbolic link in place of the spool or the log file.  The real
worker process refuses to start (exit 2, a reason naming the path) and writes nothing there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, timeout
from tests.worker.hubfixture import write_config
from worker import private

pytestmark = pytest.mark.skipif(os.name != "posix", reason="modes and owners are POSIX")
OTHER_UID = 65534  # nobody: "another account" (the tests run as root, so chown works)


def _run_worker(ini: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(ini), "--once"],
        cwd=ini.parent,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )


def _closed_url() -> str:
    return "ws://127.0.0.1:9/ws"  # never reached: the worker stops before connecting


def test_a_spool_folder_another_account_made_open_is_refused(worker_dir):
    spool = worker_dir / "spool"
    spool.mkdir()
    os.chown(spool, OTHER_UID, OTHER_UID)
    spool.chmod(0o777)
    result = _run_worker(write_config(worker_dir, _closed_url()))
    assert result.returncode == 2, result.stderr
    assert "belongs to another account" in result.stderr and str(spool) in result.stderr
    assert "Traceback" not in result.stderr
    assert spool.stat().st_mode & 0o777 == 0o777  # not changed (an owner could change it back)
    assert list(spool.iterdir()) == []


def test_a_spool_link_planted_to_a_folder_of_the_attackers_is_refused(worker_dir, tmp_path_factory):
    theirs = tmp_path_factory.mktemp("attacker")
    theirs.chmod(0o777)
    (worker_dir / "spool").symlink_to(theirs)
    result = _run_worker(write_config(worker_dir, _closed_url()))
    assert result.returncode == 2, result.stderr
    assert "symbolic link" in result.stderr
    assert theirs.stat().st_mode & 0o777 == 0o777 and list(theirs.iterdir()) == []


def test_a_log_file_link_planted_to_the_attackers_file_is_never_written(
    worker_dir, tmp_path_factory
):
    readable = tmp_path_factory.mktemp("attacker") / "collected.log"
    readable.write_text("")
    readable.chmod(0o666)
    (worker_dir / "worker-own.log").symlink_to(readable)
    result = _run_worker(write_config(worker_dir, _closed_url(), log_file="worker-own.log"))
    assert result.returncode == 2, result.stderr
    assert "symbolic link" in result.stderr and "log_file" in result.stderr
    assert readable.read_text() == "" and readable.stat().st_mode & 0o777 == 0o666


def test_the_private_helpers_refuse_links_and_other_accounts_files(tmp_path):
    # the console's "Save worker.ini" and --write-ini go through these with a token
    target = tmp_path / "attacker.txt"
    target.write_text("")
    target.chmod(0o644)
    link = tmp_path / "worker.ini"
    link.symlink_to(target)
    with pytest.raises(private.NotPrivate, match="symbolic link"):
        private.write_private_text(link, "token = secret\n")
    assert target.read_text() == "" and target.stat().st_mode & 0o777 == 0o644
    theirs = tmp_path / "theirs.ini"
    theirs.write_text("")
    theirs.chmod(0o600)  # made private by its owner, who can read it back
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(private.NotPrivate, match="another account"):
        private.write_private_text(theirs, "token = secret\n")
    assert theirs.read_text() == ""
    # tighten never follows a link (it could narrow a system file) nor changes theirs
    assert private.tighten(link) is None and target.stat().st_mode & 0o777 == 0o644
    theirs.chmod(0o644)
    assert private.tighten(theirs) is None and theirs.stat().st_mode & 0o777 == 0o644
