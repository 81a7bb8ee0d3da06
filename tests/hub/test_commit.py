"""commit_batch on the real store: one batch for many runs, replays dropped and re-acked, unknown
runs let go, a late real result replaces "lost", a decided run keeps its outcome."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from desktop.hub.commit import commit_batch, commit_isolated
from desktop.hub.session import StoreFinished, StoreOutput, StoreStarted
from desktop.store import queries
from desktop.store.db import open_store
from tests.store.conftest import pg_schema_url  # noqa: F401 - the fixture, by name

T = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    # PostgreSQL refuses other things than SQLite (NUL, integer ranges): both are attacked
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
    else:
        url = f"sqlite:///{tmp_path / 'c.db'}"
    database = open_store(url)
    job = queries.create_job({"name": "j", "script": "a.py", "schedule": {"kind": "manual"}})
    yield job.id
    database.close()


def dispatched(job_id: int, minute: int) -> int:
    run = queries.create_run(job_id, T.replace(minute=minute))
    queries.transition_run(run.id, "dispatched", worker_name="w1")
    return run.id


def out(run_id, seq, text, stream="stdout"):
    return ("w1", StoreOutput(run_id, seq, stream, text, 1_700_000_000.0))


def test_a_whole_run_in_one_batch_and_many_runs_at_once(store):
    a, b = dispatched(store, 1), dispatched(store, 2)
    items = [("w1", StoreStarted(a, 1, 1_700_000_000.0)), ("w1", StoreStarted(b, 1, 1.7e9))]
    items += [out(a, 2, "a1\n"), out(b, 2, "b1\n"), out(a, 3, "a2\n", "stderr")]
    items += [("w1", StoreFinished(a, 4, "succeeded", 0, "", 1.7e9 + 1))]
    result = commit_batch(items)
    assert result.acked == {a: 4, b: 2}
    # one record per changed run, in its latest state
    assert [(r.id, r.state) for r in result.changed] == [(a, "succeeded"), (b, "running")]
    assert [r.id for r in result.ended] == [a]
    assert [(c.run_id, c.seq) for c in result.new_output] == [(a, 2), (b, 2), (a, 3)]
    assert [c.text for c in queries.read_output(a)] == ["a1\n", "a2\n"]
    run = queries.get_run(a)
    assert (run.state, run.exit_code, run.last_seq, run.worker_name) == ("succeeded", 0, 4, "w1")


def test_replays_are_dropped_and_acked_with_the_committed_seq(store):
    a = dispatched(store, 1)
    commit_batch([("w1", StoreStarted(a, 1, 1.7e9)), out(a, 2, "x\n"), out(a, 3, "y\n")])
    # the worker did not get the ack (console restart): it sends everything again, plus more
    again = commit_batch(
        [("w1", StoreStarted(a, 1, 1.7e9)), out(a, 2, "x\n"), out(a, 3, "y\n"), out(a, 4, "z\n")]
    )
    assert again.acked == {a: 4}
    assert [c.seq for c in again.new_output] == [4]
    assert again.changed == []
    assert [c.text for c in queries.read_output(a)] == ["x\n", "y\n", "z\n"]
    done = commit_batch([("w1", StoreFinished(a, 5, "failed", 2, "exit 2", 1.7e9))])
    assert [r.state for r in done.ended] == ["failed"]
    replay = commit_batch([("w1", StoreFinished(a, 5, "failed", 2, "exit 2", 1.7e9))])
    assert replay.ended == [] and replay.acked == {a: 5}  # recorded once


def test_unknown_runs_are_acked_so_the_worker_can_let_go(store):
    result = commit_batch(
        [
            ("w1", StoreStarted(999, 1, 1.7e9)),
            out(999, 2, "?"),
            ("w1", StoreFinished(999, 3, "succeeded", 0, "", 1.7e9)),
        ]
    )
    assert result.acked == {999: 3} and result.unknown == {999}
    assert result.changed == [] and result.new_output == []


def test_real_result_replaces_lost(store):
    a = dispatched(store, 1)
    commit_batch([("w1", StoreStarted(a, 1, 1.7e9))])
    queries.transition_run(a, "lost", reason="no heartbeat")
    late = commit_batch(
        [out(a, 2, "still here\n"), ("w1", StoreFinished(a, 3, "succeeded", 0, "", 1.7e9))]
    )
    assert [r.state for r in late.ended] == ["succeeded"]
    assert queries.get_run(a).state == "succeeded"


def test_a_cancelled_run_keeps_its_outcome(store):
    a = dispatched(store, 1)
    queries.transition_run(a, "cancelled", reason="worker offline")
    result = commit_batch([("w1", StoreFinished(a, 2, "succeeded", 0, "", 1.7e9))])
    assert result.ended == [] and result.acked == {a: 2}
    assert queries.get_run(a).state == "cancelled"


def test_a_broken_worker_clock_does_not_break_the_commit(store):
    a = dispatched(store, 1)
    result = commit_batch([("w1", StoreStarted(a, 1, 1e300))])
    assert result.changed[0].started_at is not None


def test_reports_from_another_worker_are_refused_and_never_move_the_owners_ack(store):
    a = dispatched(store, 1)  # assigned to w1
    queued = queries.create_run(store, T.replace(minute=9)).id
    spoof = [
        ("w2", StoreStarted(a, 1, 1.7e9)),
        ("w2", StoreOutput(a, 2, "stdout", "spoofed\n", 1.7e9)),
        ("w2", StoreFinished(a, 90, "succeeded", 0, "", 1.7e9)),
        ("w2", StoreStarted(queued, 1, 1.7e9)),
    ]
    result = commit_batch([*spoof, ("w1", StoreStarted(a, 1, 1.7e9)), out(a, 2, "real\n")])
    assert [(r.worker, r.run_id, r.seq) for r in result.refused] == [
        ("w2", a, 1),
        ("w2", a, 2),
        ("w2", a, 90),
        ("w2", queued, 1),
    ]
    assert "assigned to another worker" in result.refused[0].reason
    assert "queued and not dispatched" in result.refused[3].reason
    assert not any(r.unstorable for r in result.refused)
    assert result.acked == {a: 2}  # the owner's level, not the spoofer's 90
    assert [c.text for c in queries.read_output(a)] == ["real\n"]
    run = queries.get_run(a)
    assert (run.state, run.worker_name, run.last_seq) == ("running", "w1", 2)
    assert queries.get_run(queued).state == "queued"


def test_a_report_the_database_refuses_is_refused_alone_and_the_rest_committed(store):
    a, b = dispatched(store, 1), dispatched(store, 2)
    items = [("w1", StoreStarted(a, 1, 1.7e9)), ("w1", StoreStarted(b, 1, 1.7e9))]
    items += [out(a, 2, "ok a\n"), out(b, 2, "bad \ud800\n"), out(b, 3, "ok b\n")]
    # exit codes are checked by the session; past it, the database is the last line
    items += [("w1", StoreFinished(a, 3, "failed", 2**70, "", 1.7e9))]
    result = commit_isolated(items)
    assert [(r.run_id, r.seq, r.unstorable) for r in result.refused] == [
        (b, 2, True),
        (a, 3, True),
    ]
    assert "UnicodeEncodeError" in result.refused[0].reason
    assert [c.text for c in queries.read_output(a)] == ["ok a\n"]
    assert [c.text for c in queries.read_output(b)] == ["ok b\n"]
    assert queries.get_run(a).state == "running" and queries.get_run(b).last_seq == 3
    assert result.acked == {a: 2, b: 3}


def test_nul_in_output_and_reason_is_stored_visibly_on_every_database(store):
    a = dispatched(store, 1)
    commit_batch(
        [
            ("w1", StoreStarted(a, 1, 1.7e9)),
            out(a, 2, "a\x00b\n"),
            ("w1", StoreFinished(a, 3, "failed", 1, "bad\x00", 1.7e9)),
        ]
    )
    assert [c.text for c in queries.read_output(a)] == ["a\ufffdb\n"]
    assert queries.get_run(a).reason == "bad\ufffd"


def test_the_records_of_a_commit_are_what_the_store_then_reads(store):
    """The commit builds the changed runs' records from its one locked read and what it wrote
    (no read-back): they must equal a fresh read, column for column, on every database."""
    queries.set_setting("output_cap_bytes", 1024)
    a, b, c, d = (dispatched(store, m) for m in (1, 2, 3, 4))
    queries.transition_run(d, "cancelled", reason="by hand")
    commit_batch([("w1", StoreStarted(c, 1, 1.7e9 + 0.123456))])
    items = [("w1", StoreStarted(a, 1, 1.7e9 + 0.5)), ("w1", StoreStarted(b, 1, 1e300))]
    items += [out(a, 2, "x" * 1000), out(a, 3, "y" * 100, "stderr"), out(c, 2, "c\n")]
    items += [out(c, 3, "c2\n"), ("w1", StoreStarted(c, 1, 1.7e9))]  # c's started: a replay
    items += [("w1", StoreFinished(a, 4, "failed", -3, "it broke: \x00 " + "r" * 2000, 1.7e9))]
    items += [("w1", StoreFinished(c, 4, "succeeded", 0, "", None))]
    items += [("w1", StoreFinished(d, 1, "succeeded", 0, "", 1.7e9))]  # d keeps "cancelled"
    result = commit_batch(items)
    assert [r.id for r in result.changed] == [a, b, c]
    assert result.changed == queries.runs_by_ids([a, b, c])
    assert [r.id for r in result.ended] == [a, c]
    run_a = result.changed[0]
    assert run_a.output_truncated and run_a.output_bytes == 1000 and run_a.last_seq == 4
    assert (run_a.exit_code, len(run_a.reason)) == (-3, 1000)
    assert queries.get_run(d).state == "cancelled"


def test_the_runs_a_commit_decides_on_are_locked_until_it_ends(pg_schema_url):  # noqa: F811
    """PostgreSQL: another transaction cannot change a run between the commit's read and its
    write (the records are built from that read)."""
    import psycopg2
    import psycopg2.errors

    from desktop.store import scheduling

    database = open_store(pg_schema_url)
    try:
        job = queries.create_job({"name": "j", "script": "a.py", "schedule": {"kind": "manual"}})
        a = dispatched(job.id, 1)
        other = psycopg2.connect(pg_schema_url)
        try:
            with scheduling.transaction():
                assert set(queries.runs_for_reports([a])) == {a}
                with other.cursor() as cur, pytest.raises(psycopg2.errors.LockNotAvailable):
                    cur.execute("SELECT id FROM run WHERE id = %s FOR UPDATE NOWAIT", (a,))
            other.rollback()
            with other.cursor() as cur:  # released with the transaction
                cur.execute("SELECT id FROM run WHERE id = %s FOR UPDATE NOWAIT", (a,))
                assert cur.fetchone() == (a,)
            other.rollback()
        finally:
            other.close()
    finally:
        database.close()
