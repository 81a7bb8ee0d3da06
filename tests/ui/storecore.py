"""A stand-in for desktop.service.Core for window tests: the real store (DbExecutor on a real
SQLite file) and the real EventBus, with the scheduler and hub replaced by methods a test calls
to play a worker's part (start a run, stream output, finish it).  It has the facade's names and
publishes the same events, so the window is driven exactly as by the real core; the end-to-end
test (test_e2e.py) uses the real Core and a real worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from desktop.core.events import EventBus, JobChanged, OutputAppended, RunChanged, WorkerChanged
from desktop.core.timeutil import utcnow
from desktop.notify.api import NotifyApi
from desktop.service.reads import Reads
from desktop.store import audit, queries, secretkey
from desktop.store import links as links_store
from desktop.store import secrets as job_secrets
from desktop.store.executor import DbExecutor
from desktop.store.records import OutputChunk


@dataclass
class WorkerStatus:
    name: str
    host: str = ""
    os: str = ""
    version: str = ""
    online: bool = False
    last_heartbeat: datetime | None = None
    running: int = 0
    slots: int = 1
    tags: tuple[str, ...] = field(default=())


class StoreCore(NotifyApi):
    def __init__(self, db_url: str) -> None:
        self.events = EventBus()
        self.db = DbExecutor(db_url)
        self.clock = utcnow
        self.hub_url = "ws://127.0.0.1:8000/ws/heartbeat"
        self.online: dict[str, WorkerStatus] = {}
        self.scripts = ["test_job.py", "backup.ps1"]
        self.cancelled: list[int] = []
        self._seq: dict[int, int] = {}
        self.reads = Reads()

    async def start(self) -> None:
        await self.db.start()

    async def stop(self) -> None:
        await self.db.close()

    # --- facade
    async def read(self, fn, *args):
        return await self.db.call(fn, self.reads, *args)

    async def get_job(self, job_id):
        return await self.db.call(queries.get_job, job_id)

    async def read_output(self, run_id, after_seq=0, limit=None):
        return await self.db.call(queries.read_output, run_id, after_seq, limit)

    async def list_workers(self):
        return await self.db.call(queries.list_workers)

    async def known_workers(self):  # the Core's come from memory; the tests' from the store
        return await self.db.call(queries.list_workers)

    async def get_worker(self, name):
        return await self.db.call(queries.get_worker, name)

    async def set_setting(self, key, value):
        await self.db.call(queries.set_setting, key, value)

    async def save_job(self, spec, job_id=None, links=None):
        if links is not None:
            record = await self.db.call(
                links_store.save_job_with_links, spec, job_id, links[0], links[1], self.clock()
            )
        elif job_id is None:
            record = await self.db.call(queries.create_job, spec)
        else:
            record = await self.db.call(queries.update_job, job_id, spec)
        self.events.publish(JobChanged(record.id))
        return record

    async def delete_job(self, job_id):
        await self.db.call(queries.delete_job, job_id)
        self.events.publish(JobChanged(job_id, deleted=True))

    async def set_job_enabled(self, job_id, enabled):
        await self.db.call(queries.set_job_enabled, job_id, enabled)
        self.events.publish(JobChanged(job_id))

    async def run_now(self, job_id, args=None):
        run = await self.db.call(queries.create_run, job_id, utcnow(), 1, "manual", "queued", args)
        self.events.publish(RunChanged(run.id, job_id, run.state))
        return run.id

    async def cancel_run(self, run_id):
        self.cancelled.append(run_id)
        run = await self.db.call(queries.transition_run, run_id, "cancelled")
        self.events.publish(RunChanged(run.id, run.job_id, run.state))

    async def add_worker(self, name, tags=(), slots=1):
        _record, token = await self.db.call(queries.add_worker, name, list(tags), slots, self.actor)
        self.events.publish(WorkerChanged(name, False))
        return token

    async def set_worker_config(self, name, tags=None, slots=None):
        await self.db.call(queries.set_worker_config, name, tags, slots)
        self.events.publish(WorkerChanged(name, name in self.online))

    async def revoke_worker(self, name):
        await self.db.call(queries.revoke_worker, name)
        self.online.pop(name, None)
        self.events.publish(WorkerChanged(name, False))

    async def set_worker_enabled(self, name, enabled):
        await self.db.call(queries.set_worker_enabled, name, enabled)
        self.events.publish(WorkerChanged(name, name in self.online))

    def worker_status(self):
        return list(self.online.values())

    async def live_workers(self):
        return self.worker_status()

    # secrets and audit: the same store calls as desktop.service.Core
    actor = "console:tester@test-host"

    async def job_secrets(self, job_id):
        return await self.db.call(job_secrets.list_secrets, job_id)

    async def save_job_secrets(self, job_id, changes):
        warnings = await self.db.call(job_secrets.apply_changes, job_id, changes, self.actor)
        self.events.publish(JobChanged(job_id))
        return warnings

    async def reveal_secret(self, job_id, name):
        return await self.db.call(job_secrets.reveal, job_id, name, self.actor)

    async def audit_events(self, *, since=None, kind=None, name=None, limit=1000):
        return await self.db.call(audit.list_events, since=since, kind=kind, name=name, limit=limit)

    async def secret_key_place(self):
        return await self.db.call(lambda: secretkey.place().describe())

    def script_catalogue(self):
        return sorted(self.scripts)

    async def live_scripts(self):
        return self.script_catalogue()

    # --- playing the worker's part
    def connect_worker(self, name: str, **kw) -> None:
        self.online[name] = WorkerStatus(name, online=True, last_heartbeat=utcnow(), **kw)
        self.events.publish(WorkerChanged(name, True))

    async def start_run(self, run_id: int, worker: str = "w1") -> None:
        run = await self.db.call(
            queries.transition_run, run_id, "running", worker_name=worker, started_at=utcnow()
        )
        self.events.publish(RunChanged(run.id, run.job_id, run.state))

    async def output(self, run_id: int, *lines: tuple[str, str]) -> None:
        chunks = []
        for stream, text in lines:
            self._seq[run_id] = self._seq.get(run_id, 0) + 1
            chunks.append(OutputChunk(run_id, self._seq[run_id], stream, text))
        await self.db.call(queries.append_output, chunks)
        for c in chunks:
            self.events.publish(OutputAppended(c.run_id, c.seq, c.stream, c.text))

    async def finish_run(self, run_id: int, state: str = "succeeded", code: int = 0) -> None:
        run = await self.db.call(
            queries.transition_run, run_id, state, exit_code=code, finished_at=utcnow()
        )
        self.events.publish(RunChanged(run.id, run.job_id, run.state))


def seed_jobs(n: int, template: dict) -> None:
    """Insert n jobs in one statement batch (runs on the DB thread: `db.call(seed_jobs, ...)`);
    create_job's audit trail per job would make a 10,000-job fixture take a minute."""
    import json

    from desktop.store.models import Job, database_proxy
    from desktop.store.validation import next_fire, normalize_job_spec

    spec = normalize_job_spec(template)
    now = utcnow()
    fire = next_fire(spec["schedule"], now)  # None for manual: the scheduler must not run them
    fire = fire.astimezone(timezone.utc).replace(tzinfo=None) if fire else None
    now = now.replace(tzinfo=None)
    rows = [
        {
            "name": f"{spec['name']}-{i:05d}",
            "script": spec["script"],
            "schedule_json": json.dumps(spec["schedule"]),
            "time_zone": spec["time_zone"],
            "created_at": now,
            "updated_at": now,
            "next_fire_at": fire,
        }
        for i in range(n)
    ]
    with database_proxy.atomic():
        for start in range(0, n, 500):
            Job.insert_many(rows[start : start + 500]).execute()
