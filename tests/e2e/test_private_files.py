"""Files on the console host that hold secrets are owner-only (0600, folders 0700) whatever the
umask: the database and its -wal/-shm, console.log and its rotations, worker.ini written by
`workers add --write-ini` and the local worker's folder."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest

import desktop.localworker as lw
from desktop import app
from desktop.store import db as store_db
from desktop.store import queries
from tests.conftest import timeout
from worker import private

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")


@pytest.fixture
def open_umask():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_database_and_its_wal_and_shm_are_0600(tmp_path, open_umask):
    path = tmp_path / "new.db"
    database = store_db.open_store(f"sqlite:///{path}")
    try:
        queries.set_setting("retention_days", "7")  # a write: the -wal and -shm exist now
        assert (tmp_path / "new.db-wal").exists() and (tmp_path / "new.db-shm").exists()
        for name in ("new.db", "new.db-wal", "new.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        database.close()


def test_the_default_database_folder_is_created_0700(tmp_path, monkeypatch, open_umask):
    path = tmp_path / "data" / "JobTrigger" / "jobtrigger.db"
    monkeypatch.setattr(store_db, "default_url", lambda: f"sqlite:///{path}")
    store_db.open_store(f"sqlite:///{path}").close()
    assert mode(tmp_path / "data") == 0o700 and mode(path.parent) == 0o700
    assert mode(path) == 0o600


def test_an_existing_readable_database_is_tightened_and_the_log_says_so(tmp_path, caplog):
    path = tmp_path / "old.db"
    store_db.open_store(f"sqlite:///{path}").close()
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="desktop.store.db"):
        database = store_db.open_store(f"sqlite:///{path}")
    try:
        assert queries.get_setting("retention_days") is not None  # it still works
    finally:
        database.close()
    assert mode(path) == 0o600
    assert any(
        "made it owner-only" in r.getMessage() and "644" in r.getMessage() for r in caplog.records
    )


def test_console_log_and_its_rotations_are_0600(tmp_path, monkeypatch, open_umask):
    monkeypatch.setattr(app, "log_dir", lambda: tmp_path / "logs" / "JobTrigger")
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        path = app.setup_logging()
        handler = next(h for h in root.handlers if h not in before and hasattr(h, "doRollover"))
        logging.getLogger("test").warning("one line")
        handler.doRollover()
        logging.getLogger("test").warning("after the rollover")
        handler.flush()
    finally:
        for h in root.handlers[:]:
            if h not in before:
                root.removeHandler(h)
                h.close()
    assert mode(tmp_path / "logs") == 0o700 and mode(path.parent) == 0o700
    assert mode(path) == 0o600 and mode(f"{path}.1") == 0o600
    assert "after the rollover" in path.read_text()


def test_workers_add_write_ini_is_0600_in_a_new_0700_folder(tmp_path, open_umask):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    ini = tmp_path / "out" / "w1" / "worker.ini"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "desktop",
            "--db",
            url,
            "workers",
            "add",
            "w1",
            "--write-ini",
            str(ini),
            "--server-url",
            "ws://127.0.0.1:1/ws/heartbeat",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert result.returncode == 0, result.stderr
    assert "token" in ini.read_text()
    assert mode(ini) == 0o600
    assert mode(tmp_path / "out") == 0o700 and mode(ini.parent) == 0o700
    assert mode(tmp_path / "cli.db") == 0o600


def test_local_worker_folder_and_ini_are_private_and_old_ones_are_tightened(tmp_path, open_umask):
    folder = tmp_path / "data" / "local-worker"
    database = store_db.open_store(f"sqlite:///{tmp_path / 'lw.db'}")
    try:
        ini = lw.enrol(folder, "ws://127.0.0.1:1/ws/heartbeat")
        assert mode(folder) == 0o700 and mode(ini) == 0o600
        os.chmod(folder, 0o755)
        os.chmod(ini, 0o644)
        (folder / "worker.log").write_text("old\n")
        os.chmod(folder / "worker.log", 0o644)
        lw.enrol(folder, "ws://127.0.0.1:1/ws/heartbeat")
    finally:
        database.close()
    assert mode(folder) == 0o700 and mode(ini) == 0o600 and mode(folder / "worker.log") == 0o600


def test_the_opener_fixes_the_mode_whatever_the_umask(tmp_path, open_umask):
    with open(tmp_path / "f", "w", opener=private.opener) as f:
        f.write("secret")
    assert mode(tmp_path / "f") == 0o600
    os.umask(0o277)  # even one that takes the owner's write bit away
    with open(tmp_path / "g", "w", opener=private.opener) as f:
        f.write("secret")
    assert mode(tmp_path / "g") == 0o600
    private.private_folder(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700


def test_database_files_planted_by_another_account_are_refused(tmp_path):
    """A database in a shared folder: another account pre-creates the -wal file (open to all)
    or a link to where it wants the database written.  The CLI process refuses with the path;
    nothing is written into them, no worker is added."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    url = f"sqlite:///{shared / 'jobs.db'}"
    wal = shared / "jobs.db-wal"
    wal.write_bytes(b"")
    wal.chmod(0o666)
    os.chown(wal, 65534, 65534)  # nobody: another account (the tests run as root)

    def add_worker():
        return subprocess.run(
            [sys.executable, "-m", "desktop", "--db", url, "workers", "add", "w1"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout(60),
        )

    result = add_worker()
    assert result.returncode != 0
    assert "jobs.db-wal belongs to another account (uid 65534)" in result.stderr
    assert "Traceback" not in result.stderr and "token" not in result.stdout
    assert wal.read_bytes() == b"" and not (shared / "jobs.db").exists()

    wal.unlink()
    (shared / "jobs.db").symlink_to(tmp_path / "where-they-read.db")  # dangling
    result = add_worker()
    assert result.returncode != 0 and "link to a file that does not exist" in result.stderr
    assert not (tmp_path / "where-they-read.db").exists()
