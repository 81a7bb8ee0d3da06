"""The schema.  Portable on purpose (README, "Database portability"): naive UTC datetimes,
strings with lengths, JSON kept in TEXT columns, no SQL reserved words as names, so the same
tables suit SQLite, PostgreSQL and SQL Server.  No Qt here, ever.

Schema changes go through desktop/store/migrations.py and bump SCHEMA_VERSION.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database_proxy = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied_at = DateTimeField()


class Job(BaseModel):
    id = AutoField()
    name = CharField(max_length=200, unique=True)
    description = TextField(default="")
    script = CharField(max_length=255)
    args_json = TextField(default="[]")  # JSON list of strings
    env_json = TextField(default="{}")  # JSON object of string -> string
    # Where it runs: "any" worker, a named "worker", or any worker with the "tag"
    target_kind = CharField(max_length=10, default="any")
    target_value = CharField(max_length=200, default="")
    schedule_json = TextField()  # versioned schedule definition (desktop.core.schedules)
    time_zone = CharField(max_length=64)
    enabled = BooleanField(default=True)
    misfire_policy = CharField(max_length=16, default="run_once")  # skip | run_once | run_all
    misfire_cap = IntegerField(default=10)
    concurrency = CharField(max_length=16, default="skip")  # allow | skip | queue
    timeout_seconds = IntegerField(null=True)
    max_retries = IntegerField(default=0)
    retry_delay_seconds = IntegerField(default=60)
    retry_backoff = FloatField(default=2.0)
    retry_max_delay_seconds = IntegerField(default=3600)
    # How long a run may wait queued for an eligible worker before it is "missed"; None = forever
    queue_timeout_seconds = IntegerField(null=True)
    next_fire_at = DateTimeField(null=True, index=True)  # naive UTC
    last_scheduled_at = DateTimeField(null=True)  # naive UTC: last occurrence recorded
    created_at = DateTimeField()
    updated_at = DateTimeField()


class Run(BaseModel):
    id = BigAutoField()
    job = ForeignKeyField(Job, backref="runs", on_delete="CASCADE")
    job_id: int  # each *_id: the foreign key's raw value, which peewee's stubs do not declare
    scheduled_at = DateTimeField()  # naive UTC: the occurrence (request time for manual runs)
    attempt = IntegerField(default=1)
    trigger_kind = CharField(max_length=10, default="schedule")  # schedule | manual | retry
    state = CharField(max_length=12, default="queued", index=True)
    worker_name = CharField(max_length=200, null=True)
    exit_code = IntegerField(null=True)
    reason = CharField(max_length=1000, default="")
    args_json = TextField(null=True)  # override of the job's args for this run, else NULL
    not_before = DateTimeField(null=True)  # naive UTC: retries wait until then
    created_at = DateTimeField()
    dispatched_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    last_seq = IntegerField(default=0)  # highest worker message seq committed for this run
    output_bytes = BigIntegerField(default=0)
    output_truncated = BooleanField(default=False)

    class Meta:
        indexes = (
            # One row per occurrence and attempt: a restart can never run it twice.
            (("job", "scheduled_at", "attempt"), True),
            (("job", "id"), False),
        )


class RunOutput(BaseModel):
    id = BigAutoField()
    run = ForeignKeyField(Run, backref="output", on_delete="CASCADE")
    run_id: int
    seq = IntegerField()
    stream = CharField(max_length=6)  # stdout | stderr
    text = TextField()
    # "at" and "action" are reserved words in SQL-92/ODBC: the columns get other names, the
    # Python fields keep the short ones.
    at = DateTimeField(column_name="emitted_at")

    class Meta:
        indexes = ((("run", "seq"), True),)


class Worker(BaseModel):
    id = AutoField()
    name = CharField(max_length=200, unique=True)
    token_hash = CharField(max_length=128)
    tags_json = TextField(default="[]")
    slots = IntegerField(default=1)
    enabled = BooleanField(default=True)
    revoked_at = DateTimeField(null=True)
    last_seen_at = DateTimeField(null=True)
    version = CharField(max_length=50, default="")
    host = CharField(max_length=255, default="")
    os_name = CharField(max_length=200, default="")
    scripts_json = TextField(default="[]")  # catalogue last reported: [{"name", "sha256"}]
    created_at = DateTimeField()


class Setting(BaseModel):
    setting_key = CharField(max_length=100, primary_key=True)
    setting_value = TextField()


class AuditEvent(BaseModel):
    id = BigAutoField()
    at = DateTimeField(index=True, column_name="happened_at")
    actor = CharField(max_length=200)  # "console", "cli", "scheduler", a worker name
    # created, updated, deleted, enabled, revoked, ...
    action = CharField(max_length=50, column_name="action_name")
    entity_kind = CharField(max_length=20)  # job | worker | setting
    entity_name = CharField(max_length=200)
    detail = TextField(default="")


class ChangeCounter(BaseModel):
    """One row, bumped (UPDATE ... SET counter_value = counter_value + 1, atomic on every
    database) in the same transaction as each job/worker/setting change, from any process: the
    console polls it about once a second to notice changes made by the CLI."""

    id = IntegerField(primary_key=True)
    counter_value = BigIntegerField(default=0)


class JobSecret(BaseModel):
    """A named secret of a job (schema version 2): delivered as an environment variable, stored
    sealed (desktop/store/secretkey.py), never in the job's own columns or in exports."""

    id = AutoField()
    job = ForeignKeyField(Job, backref="secrets", on_delete="CASCADE")
    job_id: int
    secret_name = CharField(max_length=255)
    sealed = TextField()  # v1:<key id>:<base64>, see desktop/core/secretbox.py
    key_id = CharField(max_length=32, index=True)  # which key sealed it: what rotation has left
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("job", "secret_name"), True),)


class Channel(BaseModel):
    """Where notifications go: an e-mail server or a webhook.  ``secret`` (SMTP password or
    webhook HMAC key) has its own column so it can be sealed apart from the rest
    (desktop/store/channels.py: ``seal``/``unseal``)."""

    id = AutoField()
    name = CharField(max_length=100, unique=True)
    kind = CharField(max_length=10)  # email | webhook
    config_json = TextField(default="{}")  # everything but the secret
    secret = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()


class NotifyRule(BaseModel):
    """Notify ``channel`` when a run of ``job`` ends in one of ``events_json``; job NULL is the
    default rule for every job."""

    id = AutoField()
    job = ForeignKeyField(Job, null=True, on_delete="CASCADE")
    channel = ForeignKeyField(Channel, on_delete="CASCADE")
    job_id: int | None
    channel_id: int
    events_json = TextField(default="[]")


class Outbox(BaseModel):
    """One notification to deliver, written in the same transaction as the run's result."""

    id = BigAutoField()
    run = ForeignKeyField(Run, on_delete="CASCADE")
    channel = ForeignKeyField(Channel, on_delete="CASCADE")
    run_id: int
    channel_id: int
    event = CharField(max_length=20)  # failed | timed_out | lost | missed | recovered | test
    state = CharField(
        max_length=10, default="pending", index=True
    )  # pending|sending|delivered|failed
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField()
    claimed_at = DateTimeField(null=True)
    last_error = CharField(max_length=1000, default="")
    created_at = DateTimeField()
    delivered_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("run", "channel", "event"), True),)


class Chain(BaseModel):
    """When a run of ``source`` ends as ``on_event`` (success | failure | end), start ``target``."""

    id = AutoField()
    source = ForeignKeyField(Job, on_delete="CASCADE", backref="chains_out")
    target = ForeignKeyField(Job, on_delete="CASCADE", backref="chains_in")
    source_id: int
    target_id: int
    on_event = CharField(max_length=10)
    args_json = TextField(null=True)  # argument templates, NULL = the target job's own args
    created_at = DateTimeField()

    class Meta:
        indexes = ((("source", "target", "on_event"), True),)


class ChainFiring(BaseModel):
    """The ledger that makes a chain fire once per run of its source, across restarts."""

    id = BigAutoField()
    chain = ForeignKeyField(Chain, on_delete="CASCADE")
    source_run = ForeignKeyField(Run, on_delete="CASCADE")
    chain_id: int
    source_run_id: int
    target_run_id = BigIntegerField(null=True)
    created_at = DateTimeField()

    class Meta:
        indexes = ((("chain", "source_run"), True),)


NOTIFY_MODELS = [Channel, NotifyRule, Outbox, Chain, ChainFiring]

# Version 1's tables; later versions add theirs in desktop/store/migrations.py.
V1_MODELS = [SchemaVersion, Job, Run, RunOutput, Worker, Setting, AuditEvent, ChangeCounter]
ALL_MODELS = [*V1_MODELS, JobSecret, *NOTIFY_MODELS]
