"""The `db` fixture: every store test runs on a SQLite file, SQLite in memory and, when
JOBTRIGGER_TEST_PG_URL is set, a real PostgreSQL server (each test in its own fresh schema)."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import psycopg2
import pytest

from desktop.store import db as store_db

PG_ENV = "JOBTRIGGER_TEST_PG_URL"


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def pg_schema_url():
    """A URL whose search_path is a brand-new schema, dropped afterwards."""
    base = pg_url()
    if not base:
        pytest.skip(f"PostgreSQL variant skipped: set {PG_ENV} (CI sets it) to run it")
    schema = "jt_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(base)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=" + quote(f"-csearch_path={schema}")
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@pytest.fixture(params=["sqlite_file", "sqlite_memory", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite_file":
        return "sqlite:///" + (tmp_path / "test.db").as_posix()
    if request.param == "sqlite_memory":
        return "sqlite:///:memory:"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def db(db_url):
    """An open, migrated database bound to the models; queries can be called directly."""
    database = store_db.open_store(db_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "jobs.db"
