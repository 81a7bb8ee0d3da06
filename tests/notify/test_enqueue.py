"""Which ends enqueue what, through the scheduler's own paths (lost, queue-timeout missed,
downtime missed), and what removing a channel takes with it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from desktop.store import channels, outbox, queries
from desktop.store.db import open_store
from desktop.store.models import NotifyRule, Outbox

T = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
ALL = ["failed", "timed_out", "lost", "missed", "recovered"]


@pytest.fixture
def store(url):
    database = open_store(url)
    job = queries.create_job({"name": "j", "script": "a.py", "schedule": {"kind": "manual"}})
    channels.save_channel("hook", "webhook", {"url": "http://127.0.0.1:9/x"})
    channels.set_rules(job.id, [{"channel": "hook", "on": ALL}])
    yield job.id
    database.close()


def _events(run_id: int) -> list[str]:
    return [r.event for r in outbox.list_outbox(run_id)]


def test_lost_then_the_real_result_notifies_each_once(store):
    run = queries.create_run(store, T)
    queries.transition_run(run.id, "dispatched", worker_name="w1")
    queries.transition_run(run.id, "lost", reason="no word")
    assert _events(run.id) == ["lost"]
    queries.transition_run(run.id, "failed", exit_code=1)  # the real result wins
    assert sorted(_events(run.id)) == ["failed", "lost"]


def test_queue_timeout_missed_and_cancelled(store):
    missed = queries.create_run(store, T)
    queries.transition_run(missed.id, "missed", reason="no worker")
    cancelled = queries.create_run(store, T + timedelta(minutes=1))
    queries.transition_run(cancelled.id, "cancelled")
    assert _events(missed.id) == ["missed"] and _events(cancelled.id) == []


def test_downtime_misses_send_one_message_per_job(store):
    added = queries.record_missed(store, [T + timedelta(hours=h) for h in range(5)], "down")
    assert added == 5
    rows = outbox.list_outbox()
    assert len(rows) == 1 and rows[0].event == "missed"
    latest = max(queries.list_runs(store, 10), key=lambda r: r.scheduled_at)
    assert rows[0].run_id == latest.id


def test_removing_a_channel_takes_its_rules_and_messages(store):
    run = queries.create_run(store, T)
    queries.transition_run(run.id, "running", worker_name="w1")
    queries.transition_run(run.id, "timed_out")
    assert Outbox.select().count() == 1
    channels.remove_channel("hook")
    assert Outbox.select().count() == 0 and NotifyRule.select().count() == 0


def _end_through_the_hub(job_id: int, at: datetime) -> int:
    """A run of JOB_ID that a worker reports as failed, committed as the hub commits it."""
    from desktop.hub.commit import commit_batch
    from desktop.hub.session import StoreFinished, StoreStarted

    run = queries.create_run(job_id, at)
    queries.transition_run(run.id, "dispatched", worker_name="w1")
    commit_batch(
        [
            ("w1", StoreStarted(run.id, 1, 1.7e9)),
            ("w1", StoreFinished(run.id, 2, "failed", 1, "exit code 1", 1.7e9 + 1)),
        ]
    )
    return run.id


def _other_process(url: str, sql: str, params: tuple) -> None:
    """SQL written through a connection of its own, as another console or the CLI writes."""
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql, params)
        conn.close()
        return
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(sql.replace("?", "%s"), params)
    conn.close()


def test_a_rule_or_chain_added_elsewhere_counts_for_the_next_end(url):
    """Each commit that stores ends reads the rules and chains again (no cache that another
    console's or the CLI's change could leave stale)."""
    database = open_store(url)
    try:
        source = queries.create_job({"name": "s", "script": "a.py", "schedule": {"kind": "manual"}})
        target = queries.create_job({"name": "t", "script": "b.py", "schedule": {"kind": "manual"}})
        channels.save_channel("hook", "webhook", {"url": "http://127.0.0.1:9/x"})
        channel_id = channels.list_channels()[0].id
        quiet = _end_through_the_hub(source.id, T)
        assert _events(quiet) == [] and queries.count_runs(target.id) == 0
        _other_process(
            url,
            "INSERT INTO notify_rule (job_id, channel_id, events_json) VALUES (?, ?, ?)",
            (source.id, channel_id, '["failed"]'),
        )
        _other_process(
            url,
            "INSERT INTO chain (source_id, target_id, on_event, args_json, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (source.id, target.id, "failure", None, "2026-05-01 12:00:00"),
        )
        loud = _end_through_the_hub(source.id, T + timedelta(minutes=1))
        assert _events(loud) == ["failed"]
        assert queries.count_runs(target.id) == 1  # the chain fired
    finally:
        database.close()


def test_a_success_looks_back_only_when_a_rule_wants_recovered(url, monkeypatch):
    """ "recovered" needs the job's previous result (a query per successful run): only asked
    when one of the job's rules has that event."""
    looked: list[int] = []
    real_previous = outbox._previous_state

    def counting(run):
        looked.append(run.id)
        return real_previous(run)

    monkeypatch.setattr(outbox, "_previous_state", counting)
    database = open_store(url)
    try:
        job = queries.create_job({"name": "j", "script": "a.py", "schedule": {"kind": "manual"}})
        channels.save_channel("hook", "webhook", {"url": "http://127.0.0.1:9/x"})
        channels.set_rules(job.id, [{"channel": "hook", "on": ["failed"]}])

        def ended(minutes: int, state: str) -> int:
            run = queries.create_run(job.id, T + timedelta(minutes=minutes))
            queries.transition_run(run.id, "running", worker_name="w1")
            return queries.transition_run(run.id, state).id

        failed = ended(0, "failed")
        fine = ended(1, "succeeded")
        assert _events(failed) == ["failed"] and _events(fine) == [] and looked == []
        channels.set_rules(job.id, [{"channel": "hook", "on": ["failed", "recovered"]}])
        again = ended(2, "failed")
        back = ended(3, "succeeded")
        assert _events(again) == ["failed"] and _events(back) == ["recovered"]
        assert looked == [back]
    finally:
        database.close()
