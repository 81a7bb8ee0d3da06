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


NEXT = migrations.SCHEMA_VERSION + 1


def test_fresh_database_is_current_and_reopening_is_harmless(db):
    assert migrations.current_version(db) == migrations.SCHEMA_VERSION
    q.create_job(job_spec())
    assert migrations.migrate(db) == migrations.SCHEMA_VERSION
    assert SchemaVersion.select().count() == migrations.SCHEMA_VERSION  # one row per step
    assert len(q.list_jobs()) == 1


def _v_next(migrator, database):
    apply(migrator.add_column("job", "owner", CharField(max_length=200, default="")))


STEPS = {**migrations.STEPS, NEXT: _v_next}


def test_a_version_1_database_opens_and_gains_the_secrets_table(sqlite_path):
    """A database from before issue 17 (schema 1) still opens: version 2 adds job_secret and
    leaves jobs as they were."""
    url = f"sqlite:///{sqlite_path}"
    database = store_db.connect(url)
    migrations.migrate(database, target=1)
    q.create_job(job_spec())
    assert not database.table_exists("job_secret")
    database.close()
    database = store_db.open_store(url)
    try:
        assert migrations.current_version(database) == migrations.SCHEMA_VERSION
        assert database.table_exists("job_secret")
        assert [j.name for j in q.list_jobs()] == ["backup"]
    finally:
        database.close()


def test_version_1_database_gets_the_notification_tables(tmp_path):
    """A database written before issue 18 (version 1 tables only) is upgraded in place."""
    import peewee

    from desktop.store.models import V1_MODELS, ChangeCounter, database_proxy

    database = peewee.SqliteDatabase(str(tmp_path / "old.db"))
    database_proxy.initialize(database)
    database.create_tables(V1_MODELS)
    SchemaVersion.create(version=1, applied_at=datetime(2026, 1, 1))
    ChangeCounter.insert(id=1, counter_value=0).execute()
    q.create_job(job_spec())
    assert "outbox" not in database.get_tables()
    assert migrations.migrate(database) == migrations.SCHEMA_VERSION
    assert {"channel", "notify_rule", "outbox", "chain", "chain_firing", "job_secret"} <= set(
        database.get_tables()
    )
    assert [j.name for j in q.list_jobs()] == ["backup"]
    database.close()


def test_forward_migration_keeps_data(db):
    q.create_job(job_spec())
    assert "owner" not in _columns(db, "job")
    assert migrations.migrate(db, target=NEXT, steps=STEPS) == NEXT
    assert "owner" in _columns(db, "job")
    assert migrations.current_version(db) == NEXT
    rows = db.execute_sql("SELECT name, owner FROM job").fetchall()
    assert [tuple(r) for r in rows] == [("backup", "")]
    # a second start finds nothing to do
    assert migrations.migrate(db, target=NEXT, steps=STEPS) == NEXT


def test_newer_database_is_refused(db):
    migrations.migrate(db, target=NEXT, steps=STEPS)
    with pytest.raises(DatabaseTooNew) as info:
        migrations.migrate(db)
    assert "newer" in str(info.value) and f"version {NEXT}" in str(info.value)


def test_newer_database_file_is_refused_at_open(sqlite_path):
    url = f"sqlite:///{sqlite_path}"
    database = store_db.open_store(url)
    SchemaVersion.create(version=99, applied_at=datetime(2030, 1, 1))
    database.close()
    with pytest.raises(DatabaseTooNew):
        store_db.open_store(url)


def test_missing_step_is_reported(db):
    with pytest.raises(Exception, match="no migration step"):
        migrations.migrate(db, target=NEXT + 1, steps=STEPS)
