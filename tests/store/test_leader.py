"""The console lock's decisions (which store gets which lock) and the file lock in one process:
held means refused with the holder named, released means free again, info is never the lock."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from desktop.store.errors import BadDatabaseUrl
from desktop.store.leader import ConsoleRunning, FileLock, NoLock, lock_for, lock_path


def test_each_store_gets_its_lock(tmp_path):
    db = tmp_path / "jobs.db"
    assert lock_path(f"sqlite:///{db}") == f"{db}.lock"
    assert isinstance(lock_for(f"sqlite:///{db}"), FileLock)
    assert lock_path("sqlite:///:memory:") is None
    assert isinstance(lock_for("sqlite:///:memory:"), NoLock)
    # PostgreSQL: the seam the high-availability issue fills; nothing is locked today
    assert isinstance(lock_for("postgresql://u@h/db"), NoLock)
    with pytest.raises(BadDatabaseUrl):
        lock_for("jobs.db")


def test_relative_path_locks_beside_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lock_path("sqlite:///sub/jobs.db") == str(tmp_path / "sub" / "jobs.db.lock")


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    path = str(tmp_path / "jobs.db.lock")
    first, second = FileLock(path), FileLock(path)
    first.acquire()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(ConsoleRunning) as caught:
            second.acquire()
        text = str(caught.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in text
        assert str(tmp_path / "jobs.db") in text
        # the refused one changed nothing: the holder's information is still there
        assert json.loads(Path(path).read_text())["pid"] == os.getpid()
    finally:
        first.release()
    second.acquire()  # free again once released
    second.release()
    second.release()  # idempotent


def test_stale_information_never_blocks(tmp_path):
    path = tmp_path / "jobs.db.lock"
    # as if a console had died: its pid/host remain in the file but no OS lock is held
    path.write_text(json.dumps({"pid": 999999, "host": "gone", "started": "2020-01-01"}))
    lock = FileLock(str(path))
    lock.acquire()
    try:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_garbage_in_the_lock_file_is_only_information(tmp_path):
    path = tmp_path / "jobs.db.lock"
    holder = FileLock(str(path))
    holder.acquire()
    try:
        os.truncate(path, 0)
        path.write_bytes(b"\xff not json")
        with pytest.raises(ConsoleRunning) as caught:
            FileLock(str(path)).acquire()
        assert "pid ? on ?" in str(caught.value)
    finally:
        holder.release()
