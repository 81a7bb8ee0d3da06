"""Job secrets in the store: sealed at rest, bad input refused, wrong or missing key refused
with a clear message, the keyring path, and the audit trail saying "changed", never values."""

from __future__ import annotations

import json
import os
import stat

import keyring
import pytest
from keyring.backend import KeyringBackend

from desktop.core.secretbox import SecretKeyError, new_key
from desktop.store import audit, secretkey
from desktop.store import queries as q
from desktop.store import secrets as js
from desktop.store.errors import ValidationError
from desktop.store.models import JobSecret
from tests.store.helpers import job_spec

VALUE = "Tr0ub4dor&3-very-secret"


@pytest.fixture(autouse=True)
def key_file_outside_home(tmp_path, monkeypatch, db_url):
    """In memory and on PostgreSQL the key file would go to the user's data folder: a temp
    file instead.  A SQLite file keeps its default place, beside the database."""
    if "test.db" not in db_url:
        monkeypatch.setenv(secretkey.FILE_ENV, str(tmp_path / "k" / "secrets.key"))


def test_a_secret_is_sealed_at_rest_and_opens_for_the_dispatch(db, db_url, tmp_path):
    job = q.create_job(job_spec())
    assert js.apply_changes(job.id, {"DB_PASSWORD": VALUE}, "cli:alice@host") == []
    assert js.values_for_job(job.id) == {"DB_PASSWORD": VALUE}
    assert [r.name for r in js.list_secrets(job.id)] == ["DB_PASSWORD"]
    stored = JobSecret.get().sealed
    assert VALUE not in stored and stored.startswith("v1:")
    if "test.db" in db_url:
        db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
        for name in ("test.db", "test.db-wal"):
            path = tmp_path / name
            if path.exists():
                assert VALUE.encode() not in path.read_bytes(), name
        key_file = tmp_path / "test.db.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert VALUE.encode() not in key_file.read_bytes()


def test_the_audit_says_added_changed_removed_and_never_the_value(db):
    job = q.create_job(job_spec())
    js.apply_changes(job.id, {"API_KEY": VALUE}, "cli:alice@host")
    js.apply_changes(job.id, {"API_KEY": VALUE + "2"}, "console:bob@desk")
    js.apply_changes(job.id, {"API_KEY": None}, "console:bob@desk")
    events = audit.list_events(kind="job", name=job.name)
    details = [e.detail for e in events[:3]]
    assert details == ["secret API_KEY removed", "secret API_KEY changed", "secret API_KEY added"]
    assert events[0].actor == "console:bob@desk"
    for e in audit.list_events():
        assert VALUE not in e.detail


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("1BAD", VALUE, "not a valid environment variable name"),
        ("A-B", VALUE, "not a valid environment variable name"),
        ("", VALUE, "not a valid environment variable name"),
        ("PYTHONIOENCODING", VALUE, "set by the worker itself"),
        ("BIG", "x" * (64 * 1024 + 1), "at most 64 KiB"),
        ("SHORT", "abc", "at least 4 characters"),
        ("NUL", "ab\x00cd", "NUL"),
    ],
)
def test_bad_names_and_values_are_refused_and_change_nothing(db, name, value, message):
    job = q.create_job(job_spec())
    js.apply_changes(job.id, {"KEEP": VALUE}, "t")
    before = [(r.secret_name, r.sealed) for r in JobSecret.select()]
    with pytest.raises(ValidationError) as info:
        js.apply_changes(job.id, {"OTHER": VALUE, name: value}, "t")
    assert message in str(info.value)
    assert VALUE not in str(info.value)
    assert [(r.secret_name, r.sealed) for r in JobSecret.select()] == before


def test_a_value_of_exactly_64_kib_is_taken(db):
    job = q.create_job(job_spec())
    js.apply_changes(job.id, {"BIG": "x" * (64 * 1024)}, "t")
    assert len(js.values_for_job(job.id)["BIG"]) == 64 * 1024


def test_a_missing_or_wrong_key_is_a_clear_message_and_changes_nothing(db):
    job = q.create_job(job_spec())
    js.apply_changes(job.id, {"API_KEY": VALUE}, "t")
    spot = secretkey.place()
    right = secretkey.read_keys(spot)
    before = [(r.secret_name, r.sealed) for r in JobSecret.select()]
    # wrong key
    secretkey.write_keys([new_key()], spot)
    with pytest.raises(SecretKeyError, match="sealed with key") as info:
        js.values_for_job(job.id)
    assert VALUE not in str(info.value)
    with pytest.raises(SecretKeyError, match="restore the right key"):
        js.apply_changes(job.id, {"OTHER": VALUE}, "t")
    # missing key: no new key is made over values that need the old one
    os.unlink(spot.where)
    with pytest.raises(SecretKeyError, match="no secrets key"):
        js.apply_changes(job.id, {"OTHER": VALUE}, "t")
    assert not os.path.exists(spot.where)
    assert [(r.secret_name, r.sealed) for r in JobSecret.select()] == before
    # the jobs survive a lost key; the right key opens everything again
    assert q.get_job(job.id).name == job.name
    secretkey.write_keys(right, spot)
    assert js.values_for_job(job.id) == {"API_KEY": VALUE}


def test_a_row_moved_to_another_job_does_not_open(db):
    a = q.create_job(job_spec(name="a"))
    b = q.create_job(job_spec(name="b"))
    js.apply_changes(a.id, {"API_KEY": VALUE}, "t")
    JobSecret.update(job=b.id).execute()
    with pytest.raises(SecretKeyError, match="does not open"):
        js.values_for_job(b.id)


def test_deleting_a_job_deletes_its_secrets(db):
    job = q.create_job(job_spec())
    js.apply_changes(job.id, {"API_KEY": VALUE}, "t")
    q.delete_job(job.id)
    assert JobSecret.select().count() == 0


class MemoryKeyring(KeyringBackend):
    priority = 10

    def __init__(self):
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


def test_with_an_os_keyring_the_key_goes_there_and_no_key_file_is_written(
    db, monkeypatch, tmp_path
):
    ring = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    monkeypatch.delenv(secretkey.BACKEND_ENV)
    try:
        spot = secretkey.place()
        assert spot.backend == "keyring" and "MemoryKeyring" in spot.describe()
        job = q.create_job(job_spec())
        js.apply_changes(job.id, {"API_KEY": VALUE}, "t")
        ((service, entry), text) = next(iter(ring.store.items()))
        assert service == "job-trigger" and entry.startswith("database ")
        assert len(json.loads(text)["keys"]) == 1
        assert js.values_for_job(job.id) == {"API_KEY": VALUE}
        assert not list(tmp_path.rglob("*.key"))
    finally:
        keyring.set_keyring(previous)


def test_without_a_usable_keyring_the_key_file_is_chosen(db, monkeypatch):
    monkeypatch.delenv(secretkey.BACKEND_ENV)
    assert secretkey.place().backend == "file"  # tests/conftest.py: the fail keyring
    monkeypatch.setenv(secretkey.BACKEND_ENV, "keyring")
    with pytest.raises(SecretKeyError, match="no usable OS keyring"):
        secretkey.place()


def test_audit_rows_have_their_own_retention(db):
    from datetime import timedelta

    from desktop.core.timeutil import utcnow
    from desktop.store.models import AuditEvent

    q.create_job(job_spec())
    old = AuditEvent.create(
        at=(utcnow() - timedelta(days=400)).replace(tzinfo=None),
        actor="cli:old@host",
        action="created",
        entity_kind="worker",
        entity_name="gone",
    )
    q.set_setting("retention_days", "1000")  # the runs' rule does not decide for audit rows
    assert audit.retention_days() == 365
    assert audit.prune(utcnow()) == 1
    assert AuditEvent.get_or_none(AuditEvent.id == old.id) is None
    assert [e.entity_name for e in audit.list_events(kind="job")] == ["backup"]
    q.set_setting("audit_retention_days", "0")
    AuditEvent.create(
        at=(utcnow() - timedelta(days=4000)).replace(tzinfo=None),
        actor="x",
        action="created",
        entity_kind="job",
        entity_name="ancient",
    )
    assert audit.prune(utcnow()) == 0  # 0 keeps everything
    with pytest.raises(ValidationError):
        q.set_setting("audit_retention_days", "-1")


def test_channel_credentials_are_sealed_and_rotation_reseals_them(db, db_url, tmp_path):
    """The SMTP password / webhook key of a notification channel is kept like a job secret:
    sealed at rest, bound to its channel, re-sealed by a key rotation, readable throughout."""
    from desktop.store import channels, rotation
    from desktop.store.models import Channel

    hook = {"url": "https://hooks.example/x", "preset": "plain"}
    record = channels.save_channel("ops", "webhook", hook, VALUE)
    stored = Channel.get().secret
    assert VALUE not in stored and stored.startswith("v1:")
    assert channels.channel_secret(record.id) == VALUE
    channels.save_channel("ops", "webhook", hook)  # None keeps the stored credential
    assert channels.channel_secret(record.id) == VALUE
    if "test.db" in db_url:
        db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
        for name in ("test.db", "test.db-wal"):
            path = tmp_path / name
            if path.exists():
                assert VALUE.encode() not in path.read_bytes(), name
    before = Channel.get().secret
    rotation.rotate_key()
    after = Channel.get().secret
    assert after != before and after.split(":")[1] != before.split(":")[1]  # the new key id
    assert channels.channel_secret(record.id) == VALUE
    # bound to its channel: the sealed value moved to another channel does not open
    other = channels.save_channel("other", "webhook", hook, "")
    Channel.update(secret=after).where(Channel.id == other.id).execute()
    with pytest.raises(SecretKeyError):
        channels.channel_secret(other.id)


def test_a_pass_opens_the_secrets_of_all_its_jobs_at_once_and_a_bad_key_stays_per_job(
    db, monkeypatch
):
    with_secret = q.create_job(job_spec())
    without = q.create_job({**job_spec(), "name": "plain"})
    js.apply_changes(with_secret.id, {"API_KEY": VALUE}, "cli:alice@host")
    assert js.values_for_jobs([with_secret.id, without.id]) == {with_secret.id: {"API_KEY": VALUE}}
    assert js.values_for_jobs([]) == {}
    monkeypatch.setattr(secretkey, "read_keys", lambda spot=None: [new_key()])  # a wrong key
    found = js.values_for_jobs([with_secret.id, without.id])
    assert set(found) == {with_secret.id}
    assert isinstance(found[with_secret.id], SecretKeyError)
