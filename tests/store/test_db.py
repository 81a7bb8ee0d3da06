import sqlite3

import pytest

from desktop.store import db as store_db
from desktop.store import queries as q
from desktop.store.errors import (
    BadDatabaseUrl,
    DatabaseCorrupt,
    DatabaseLocked,
    DatabaseUnreachable,
    StoreError,
)
from desktop.store.executor import DbExecutor
from tests.store.helpers import job_spec


def test_resolve_url_order(monkeypatch):
    monkeypatch.delenv("JOBTRIGGER_DB_URL", raising=False)
    monkeypatch.delenv("REFLEX_DB_URL", raising=False)
    default = store_db.resolve_url(None)
    assert default.startswith("sqlite:///") and default.endswith("/jobtrigger.db")
    assert "JobTrigger" in default
    monkeypatch.setenv("REFLEX_DB_URL", "sqlite:///old.db")
    assert store_db.resolve_url(None) == "sqlite:///old.db"
    monkeypatch.setenv("JOBTRIGGER_DB_URL", "sqlite:///new.db")
    assert store_db.resolve_url(None) == "sqlite:///new.db"
    assert store_db.resolve_url("sqlite:///cli.db") == "sqlite:///cli.db"


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///with%20space.db", "with space.db"),
    ],
)
def test_parse_sqlite_urls(url, path):
    assert store_db.parse_url(url).path == path


def test_parse_postgres_url():
    parsed = store_db.parse_url("postgresql://bob:s%40cret@db.example:6543/jobs?sslmode=require")
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.dbname) == (
        "bob",
        "s@cret",
        "db.example",
        6543,
        "jobs",
    )
    assert parsed.options == (("sslmode", "require"),)
    assert "s%40cret" not in store_db.redact("postgresql://bob:s%40cret@db.example/jobs")


@pytest.mark.parametrize(
    "url",
    [
        "jobs.db",
        "sqlite://jobs.db",
        "mysql://x@y/z",
        "postgresql://x@host/",
        "postgresql://h:99x/d",
    ],
)
def test_bad_urls_say_what_to_write(url):
    with pytest.raises(BadDatabaseUrl) as info:
        store_db.connect(url)
    assert "sqlite:///" in str(info.value) or "postgresql://" in str(info.value)


def test_sqlite_file_settings(sqlite_path):
    database = store_db.open_store(f"sqlite:///{sqlite_path}")
    try:
        pragma = lambda name: database.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 5000
        assert pragma("synchronous") == 1  # NORMAL
    finally:
        database.close()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError) as info:
        store_db.connect(f"sqlite:///{tmp_path}/nope/jobs.db")
    assert "does not exist" in str(info.value)


def test_corrupt_file_is_a_clear_error(sqlite_path):
    sqlite_path.write_bytes(b"this is not a database, just garbage bytes\n" * 200)
    with pytest.raises(DatabaseCorrupt) as info:
        store_db.open_store(f"sqlite:///{sqlite_path}")
    message = str(info.value)
    assert str(sqlite_path) in message and "backup" in message


def test_locked_file_at_open_is_a_clear_error(sqlite_path):
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseLocked) as info:
            store_db.open_store(f"sqlite:///{sqlite_path}", busy_timeout=0.2)
        assert "locked by another program" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_locked_file_during_write_is_a_clear_error(sqlite_path):
    url = f"sqlite:///{sqlite_path}"
    store_db.open_store(url).close()
    ex = DbExecutor(url, busy_timeout=0.2)
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        ex.call_sync(q.list_jobs)
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        with pytest.raises(DatabaseLocked):
            ex.call_sync(q.create_job, job_spec())
        holder.execute("ROLLBACK")
        assert ex.call_sync(q.create_job, job_spec()).name == "backup"
    finally:
        holder.close()
        ex.close_sync()


def test_unreachable_server_is_a_clear_error():
    # port 1 on loopback: nothing listens there
    with pytest.raises(DatabaseUnreachable) as info:
        store_db.connect("postgresql://postgres:secret@127.0.0.1:1/test")
    message = str(info.value)
    assert "127.0.0.1:1" in message and "running" in message
    assert "secret" not in message
