from datetime import datetime

import pytest
from peewee import CharField
from playhouse.migrate import migrate as apply

from desktop.store import db as store_db
from desktop.store import migrations
from desktop.store import queries as q
from desktop.store.errors import DatabaseTooNew
from desktop.store.models import SchemaVersion
from tests.store.helpers import job_spec


def _columns(database, table):
    return {c.name for c in database.get_columns(table)}


def test_fresh_database_is_version_1_and_reopening_is_harmless(db):
    assert migrations.current_version(db) == 1
    q.create_job(job_spec())
    assert migrations.migrate(db) == 1
    assert SchemaVersion.select().count() == 1
    assert len(q.list_jobs()) == 1


def _v2(migrator, database):
    apply(migrator.add_column("job", "owner", CharField(max_length=200, default="")))


def test_forward_migration_keeps_data(db):
    q.create_job(job_spec())
    assert "owner" not in _columns(db, "job")
    assert migrations.migrate(db, target=2, steps={2: _v2}) == 2
    assert "owner" in _columns(db, "job")
    assert migrations.current_version(db) == 2
    rows = db.execute_sql("SELECT name, owner FROM job").fetchall()
    assert [tuple(r) for r in rows] == [("backup", "")]
    # a second start finds nothing to do
    assert migrations.migrate(db, target=2, steps={2: _v2}) == 2


def test_newer_database_is_refused(db):
    migrations.migrate(db, target=2, steps={2: _v2})
    with pytest.raises(DatabaseTooNew) as info:
        migrations.migrate(db)
    assert "newer" in str(info.value) and "version 2" in str(info.value)


def test_newer_database_file_is_refused_at_open(sqlite_path):
    url = f"sqlite:///{sqlite_path}"
    database = store_db.open_store(url)
    SchemaVersion.create(version=99, applied_at=datetime(2030, 1, 1))
    database.close()
    with pytest.raises(DatabaseTooNew):
        store_db.open_store(url)


def test_missing_step_is_reported(db):
    with pytest.raises(Exception, match="no migration step"):
        migrations.migrate(db, target=3, steps={2: _v2})
