"""Schema versions and forward migrations.

``schema_version`` holds one row per applied version.  Version 1 is ``models.V1_MODELS`` as
created by ``create_tables``.  A later change adds a step to ``STEPS`` (version -> function taking
a ``playhouse.migrate.SchemaMigrator``) and bumps ``SCHEMA_VERSION``; opening an older database
runs the missing steps in order, each in its own transaction with its version row, so a crash
half-way leaves a database that the next start finishes upgrading.  A database whose version is
higher than this program's is refused (``DatabaseTooNew``): an old console must not write to a
schema it does not know.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping

import peewee
from playhouse.migrate import SchemaMigrator

from desktop.core.timeutil import to_naive_utc, utcnow
from desktop.store.errors import DatabaseTooNew, StoreError
from desktop.store.models import NOTIFY_MODELS, V1_MODELS, ChangeCounter, JobSecret, SchemaVersion

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

Step = Callable[[SchemaMigrator, peewee.Database], None]


# version -> step that upgrades version-1 to version.  Example for a future version 2:
#   def _v2(migrator, db):
#       migrate(migrator.add_column("job", "owner", CharField(max_length=200, default="")))


def _v2(migrator: SchemaMigrator, db: peewee.Database) -> None:
    """Job secrets (issue 17): a table of their own, so a database from before opens as it was
    and an export of the jobs table can never carry a secret."""
    db.create_tables([JobSecret], safe=True)


def _v3_notify(migrator: SchemaMigrator, db: peewee.Database) -> None:
    """Notification channels, rules, the outbox and chains (issue 18)."""
    db.create_tables(NOTIFY_MODELS, safe=True)


STEPS: dict[int, Step] = {2: _v2, 3: _v3_notify}


def write_transaction(db: peewee.Database | peewee.DatabaseProxy):
    """A transaction that takes the write lock up front on SQLite (BEGIN IMMEDIATE), so a
    read-then-write never fails with SQLITE_BUSY half-way; a plain transaction elsewhere."""
    obj = db.obj if isinstance(db, peewee.DatabaseProxy) else db
    if isinstance(obj, peewee.SqliteDatabase) and obj.transaction_depth() == 0:
        return obj.atomic("IMMEDIATE")
    return obj.atomic()


def joined_transaction(db: peewee.Database | peewee.DatabaseProxy):
    """The caller's transaction when one is open, else :func:`write_transaction`.  For writes
    that need no savepoint of their own (nothing undoes them alone: a failure fails the whole
    transaction): a savepoint costs two round trips on PostgreSQL."""
    obj = db.obj if isinstance(db, peewee.DatabaseProxy) else db
    if obj.transaction_depth() > 0:
        return contextlib.nullcontext()
    return write_transaction(obj)


def current_version(db: peewee.Database) -> int | None:
    """The database's schema version, or None for an empty database."""
    if not db.table_exists(SchemaVersion._meta.table_name):
        return None
    return SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar()


def migrate(
    db: peewee.Database,
    *,
    target: int = SCHEMA_VERSION,
    steps: Mapping[int, Step] | None = None,
) -> int:
    """Create the schema in an empty database or upgrade an older one to ``target``.
    Returns the version now in place.  ``steps`` is for tests (default ``STEPS``)."""
    steps = STEPS if steps is None else steps
    with write_transaction(db):
        version = current_version(db)
        if version is None:
            db.create_tables(V1_MODELS, safe=True)
            SchemaVersion.create(version=1, applied_at=to_naive_utc(utcnow()))
            ChangeCounter.insert(id=1, counter_value=0).execute()
            version = 1
            log.info("created database schema version 1")
    if version > target:
        raise DatabaseTooNew(
            f"this database has schema version {version}, but this Job Trigger only knows "
            f"versions up to {target}. It was written by a newer Job Trigger: use that version, "
            "or point --db / JOBTRIGGER_DB_URL at another database."
        )
    while version < target:
        nxt = version + 1
        step = steps.get(nxt)
        if step is None:
            raise StoreError(f"no migration step to schema version {nxt} (this is a bug)")
        with write_transaction(db):
            # Someone else (another console or CLI) may have upgraded while we waited.
            again = current_version(db) or 0
            if again >= nxt:
                version = again
                continue
            step(SchemaMigrator.from_database(db), db)
            SchemaVersion.create(version=nxt, applied_at=to_naive_utc(utcnow()))
        log.info("upgraded database schema to version %d", nxt)
        version = nxt
    return version
