"""Errors the store raises.  Each message says what is wrong and what the person can do,
so the CLI and the console can show it as is, without a traceback."""

from __future__ import annotations


class StoreError(Exception):
    """Base class: a database problem the person (not the program) can fix."""


class DatabaseLocked(StoreError):
    """Another program holds the database's write lock longer than the busy timeout."""


class DatabaseCorrupt(StoreError):
    """The file is not an SQLite database, or it is damaged."""


class DatabaseUnreachable(StoreError):
    """The database server did not answer, or refused the login."""


class DatabaseTooNew(StoreError):
    """The database was written by a newer Job Trigger; this one must not touch it."""


class BadDatabaseUrl(StoreError):
    """The --db / JOBTRIGGER_DB_URL value is not a URL this program understands."""


class NotFound(StoreError):
    """The job, run or worker named does not exist (any more)."""


class JobDeletedMeanwhile(NotFound):
    """A job read at the start of a transaction was deleted (by another connection) before
    its rows were written: the transaction is undone, and doing it again reads the jobs anew."""


class Conflict(StoreError):
    """The change is refused in the current state (e.g. deleting a job with active runs)."""


class ValidationError(ValueError):
    """Bad input: ``errors`` maps each field to a message a person understands."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in sorted(self.errors.items())))


class AuthError(Exception):
    """A worker failed to authenticate.  ``code`` is a protocol reject code
    (bad_token | revoked | disabled | unknown); ``reason`` is said to the worker's admin."""

    def __init__(self, code: str, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")
