from datetime import timedelta

import pytest

from desktop.core.runs import TransitionError
from desktop.store import queries as q
from desktop.store.errors import NotFound
from tests.store.helpers import T0, job_spec


@pytest.fixture
def job(db):
    return q.create_job(job_spec())


def test_create_run_and_the_unique_occurrence_guard(job):
    run = q.create_run(job.id, T0, args=["--dry"], reason="first")
    assert run.state == "queued" and run.attempt == 1 and run.trigger == "schedule"
    assert run.args == ("--dry",) and run.job_name == "backup"
    assert run.scheduled_at == T0
    assert q.create_run(job.id, T0) is None  # the same occurrence cannot be recorded twice
    retry = q.create_run(job.id, T0, attempt=2, trigger="retry", not_before=T0)
    assert retry is not None and retry.not_before == T0
    assert q.count_runs(job.id) == 2


def test_create_run_for_unknown_job_is_not_found(db):
    with pytest.raises(NotFound):
        q.create_run(999, T0)


def test_create_manual_runs_many_in_one_go(job):
    other = q.create_job(job_spec(name="other"))
    at = [T0 + timedelta(microseconds=i) for i in range(4)]
    made = q.create_manual_runs(
        [
            (job.id, at[0], None, "run now"),
            (999, at[1], None, "gone"),
            (other.id, at[2], ["-x", "ü"], "with args"),
            (job.id, at[3], None, "again"),
        ],
        "manual",
    )
    assert isinstance(made[1], NotFound)
    first, second, third = made[0], made[2], made[3]
    assert [r.job_id for r in (first, second, third)] == [job.id, other.id, job.id]
    assert [r.scheduled_at for r in (first, second, third)] == [at[0], at[2], at[3]]
    assert first.id < second.id < third.id
    assert second.args == ("-x", "ü") and second.reason == "with args"
    assert all(r.state == "queued" and r.trigger == "manual" and r.attempt == 1 for r in made[::2])
    assert (third.last_seq, third.output_bytes, third.output_truncated) == (0, 0, False)
    assert [q.get_run(r.id) for r in (first, second, third)] == [first, second, third]


def test_create_manual_runs_skips_an_occurrence_already_taken(job):
    taken = q.create_run(job.id, T0 + timedelta(microseconds=1), trigger="manual")
    requests = [(job.id, T0 + timedelta(microseconds=i), None, "r") for i in range(3)]
    first, skipped, third = q.create_manual_runs(requests, "manual")
    assert skipped is None  # the caller records it with create_run, which bumps it
    assert (first.scheduled_at, third.scheduled_at) == (T0, T0 + timedelta(microseconds=2))
    assert q.count_runs(job.id) == 3 and q.get_run(taken.id) == taken


def test_manual_runs_go_one_by_one_past_a_taken_occurrence(job):
    from desktop.scheduler import firing

    q.create_run(job.id, T0 + timedelta(microseconds=1), trigger="manual")
    made = firing.manual_runs([(job.id, None), (job.id, ["a"]), (999, None)], T0)
    assert isinstance(made[2], NotFound)
    assert made[0].scheduled_at == T0 and made[1].args == ("a",)
    assert made[1].scheduled_at > T0 + timedelta(microseconds=1)  # bumped past the taken one
    assert q.count_runs(job.id) == 3


def test_create_run_refuses_unknown_state_or_trigger(job):
    with pytest.raises(ValueError):
        q.create_run(job.id, T0, state="sleeping")
    with pytest.raises(ValueError):
        q.create_run(job.id, T0, trigger="whim")


def test_terminal_state_at_creation_gets_finished_at(job):
    run = q.create_run(job.id, T0, state="skipped", reason="previous run still going")
    assert run.finished_at is not None and run.reason == "previous run still going"


def test_record_missed_ignores_existing_occurrences(job):
    q.create_run(job.id, T0)
    times = [T0 + timedelta(hours=h) for h in range(3)]
    assert q.record_missed(job.id, times, "console was off") == 2
    assert q.record_missed(job.id, times, "again") == 0
    assert q.count_runs(job.id, state="missed") == 2
    assert q.count_runs(job.id, state="queued") == 1


def test_transitions_follow_the_run_model(job):
    run = q.create_run(job.id, T0)
    run = q.transition_run(run.id, "dispatched", worker_name="w1", dispatched_at=T0)
    run = q.transition_run(run.id, "running", started_at=T0, seq=1)
    assert run.last_seq == 1 and run.worker_name == "w1"
    done = q.transition_run(run.id, "succeeded", exit_code=0, seq=5)
    assert done.state == "succeeded" and done.exit_code == 0 and done.last_seq == 5
    assert done.finished_at is not None
    # a stale writer cannot overwrite the result
    with pytest.raises(TransitionError):
        q.transition_run(run.id, "lost")
    assert q.get_run(run.id).state == "succeeded"


def test_real_result_replaces_lost(job):
    run = q.create_run(job.id, T0)
    q.transition_run(run.id, "running")
    q.transition_run(run.id, "lost", reason="worker silent")
    back = q.transition_run(run.id, "failed", exit_code=3)
    assert back.state == "failed" and back.exit_code == 3


def test_transition_unknown_run_or_field(job):
    with pytest.raises(NotFound):
        q.transition_run(424242, "running")
    run = q.create_run(job.id, T0)
    with pytest.raises(TypeError):
        q.transition_run(run.id, "running", colour="red")


def test_advance_seq_only_goes_up(job):
    run = q.create_run(job.id, T0)
    assert q.advance_seq(run.id, 4) == 4
    assert q.advance_seq(run.id, 2) == 4
    with pytest.raises(NotFound):
        q.advance_seq(999999, 1)


def test_list_runs_is_keyset_paged_newest_first(db):
    a = q.create_job(job_spec("a"))
    b = q.create_job(job_spec("b"))
    ids = []
    for i in range(7):
        ids.append(q.create_run(a.id, T0 + timedelta(minutes=i)).id)
        q.create_run(b.id, T0 + timedelta(minutes=i))
    page1 = q.list_runs(a.id, limit=3)
    page2 = q.list_runs(a.id, limit=3, before_id=page1[-1].id)
    page3 = q.list_runs(a.id, limit=3, before_id=page2[-1].id)
    got = [r.id for r in page1 + page2 + page3]
    assert got == sorted(ids, reverse=True)
    assert q.list_runs(a.id, limit=3, before_id=page3[-1].id) == []
    assert len(q.list_runs(limit=100)) == 14
    assert q.count_runs() == 14 and q.count_runs(b.id) == 7


def test_active_runs(job):
    r1 = q.create_run(job.id, T0)
    r2 = q.create_run(job.id, T0 + timedelta(minutes=1))
    r3 = q.create_run(job.id, T0 + timedelta(minutes=2))
    q.transition_run(r2.id, "running")
    q.transition_run(r3.id, "cancelled")
    assert [r.id for r in q.active_runs()] == [r1.id, r2.id]


def test_manual_runs_one_by_one_without_insert_returning(job, monkeypatch):
    """An older SQLite (before 3.35) has no INSERT ... RETURNING: one create_run each."""
    from desktop.scheduler import firing
    from desktop.store.queries import runs as runs_module

    monkeypatch.setattr(runs_module, "returning_supported", lambda: False)
    assert q.create_manual_runs([(job.id, T0, None, "r")], "manual") is None
    q.create_run(job.id, T0 + timedelta(microseconds=1), trigger="manual")
    made = firing.manual_runs([(job.id, None), (job.id, ["a"]), (999, None)], T0)
    assert isinstance(made[2], NotFound)
    assert made[0].scheduled_at == T0 and made[1].args == ("a",)
    assert made[1].scheduled_at > T0 + timedelta(microseconds=1)
    assert q.count_runs(job.id) == 3


@pytest.mark.parametrize("returning", [True, False])
def test_dispatch_moves_only_queued_runs_and_returns_what_a_read_gives(job, monkeypatch, returning):
    """scheduling.dispatch_runs: one UPDATE ... FROM (VALUES) RETURNING per batch where the
    database has it (batches of 2 here), else the update per pair and a read-back; either
    way the records are the runs as a fresh read gives them."""
    from desktop.store import scheduling
    from desktop.store.queries import runs as runs_module

    monkeypatch.setattr(runs_module, "DISPATCH_BATCH", 2)
    if not returning:
        monkeypatch.setattr(runs_module, "returning_supported", lambda: False)
    other = q.create_job(job_spec(name="other"))
    runs = [q.create_run(j, T0 + timedelta(minutes=m)) for m, j in enumerate([job.id] * 4)]
    runs.append(q.create_run(other.id, T0, args=["-x"]))
    q.transition_run(runs[1].id, "cancelled")  # no longer queued: left alone
    choices = [(r.id, f"w{i}") for i, r in enumerate(runs)]
    at = T0 + timedelta(hours=1, microseconds=7)
    with scheduling.transaction():
        moved = scheduling.dispatch_runs(choices, at)
    assert [r.id for r in moved] == [runs[i].id for i in (0, 2, 3, 4)]
    assert moved == q.runs_by_ids(r.id for r in moved)
    assert [(r.state, r.worker_name, r.dispatched_at) for r in moved] == [
        ("dispatched", f"w{i}", at) for i in (0, 2, 3, 4)
    ]
    assert moved[-1].job_name == "other" and moved[-1].args == ("-x",)
    assert q.get_run(runs[1].id).state == "cancelled"
    assert scheduling.dispatch_runs([], at) == []


def _ended(job_id, outcome, at=T0, attempt=1):
    run = q.create_run(job_id, at, attempt=attempt)
    q.transition_run(run.id, "running", worker_name="w1")
    return q.transition_run(run.id, outcome, worker_name="w1")


def test_runs_owed_a_retry(db):
    """Ended in an outcome worth a retry, attempts left, no next attempt, within the window."""
    job = q.create_job(job_spec(max_retries=2))
    owed = _ended(job.id, "failed", T0)
    timed_out = _ended(job.id, "timed_out", T0 + timedelta(minutes=1))
    retried = _ended(job.id, "lost", T0 + timedelta(minutes=2))
    q.create_run(job.id, retried.scheduled_at, attempt=2, trigger="retry")
    _ended(job.id, "cancelled", T0 + timedelta(minutes=3))
    _ended(job.id, "succeeded", T0 + timedelta(minutes=4))
    last = _ended(job.id, "failed", T0 + timedelta(minutes=5), attempt=3)  # none left
    none_left = q.create_job(job_spec(name="once", max_retries=0))
    _ended(none_left.id, "failed")
    since = owed.finished_at - timedelta(minutes=1)
    assert [r.id for r in q.runs_owed_a_retry(since)] == [owed.id, timed_out.id]
    assert q.runs_owed_a_retry(since)[0] == q.get_run(owed.id)
    assert [r.id for r in q.runs_owed_a_retry(since, limit=1)] == [owed.id]
    assert q.runs_owed_a_retry(last.finished_at + timedelta(seconds=1)) == []


def test_failures_from_before_a_job_was_changed_or_of_a_disabled_job_are_not_owed(db):
    """Found in review: raising max_retries (or switching the job off) after a week of
    failures brought every one of them back as a retry at the next start."""
    job = q.create_job(job_spec(max_retries=0))
    for i in range(5):
        _ended(job.id, "failed", T0 + timedelta(minutes=i))
    q.update_job(job.id, {"max_retries": 1})
    since = T0 - timedelta(days=1)
    assert q.runs_owed_a_retry(since) == []  # they ended under the old settings
    later = _ended(job.id, "failed", T0 + timedelta(minutes=10))
    assert [r.id for r in q.runs_owed_a_retry(since)] == [later.id]  # under the new ones
    q.set_job_enabled(job.id, False)
    assert q.runs_owed_a_retry(since) == []


def test_a_stale_list_of_owed_retries_plans_each_once(db):
    """Two passes (or consoles) with the same candidates: the second plans nothing."""
    from desktop.scheduler import firing

    job = q.create_job(job_spec(max_retries=1))
    ended = _ended(job.id, "failed")
    stale = q.runs_owed_a_retry(T0 - timedelta(days=1))
    assert [r.id for r in stale] == [ended.id]
    made = firing.plan_retries(stale, T0, from_end=True)
    assert [(r.attempt, r.trigger, r.state) for r in made] == [(2, "retry", "queued")]
    assert firing.plan_retries(stale, T0, from_end=True) == []
    assert firing.sweep_retries(T0 - timedelta(days=1), T0) == ([], False)
    assert q.count_runs(job.id) == 2


def test_two_consoles_sweeping_at_once_plan_one_retry(pg_schema_url):
    """PostgreSQL: two consoles' sweeps both read the run as owed, then both plan it; the
    unique (job, occurrence, attempt) index lets one win and the other plans nothing."""
    import threading
    from unittest import mock

    from desktop.scheduler import firing
    from desktop.store import db as store_db
    from desktop.store import scheduling

    database = store_db.open_store(pg_schema_url)
    try:
        job = q.create_job(job_spec(max_retries=3))
        _ended(job.id, "failed")
        both_read = threading.Barrier(2, timeout=20)
        real = q.runs_owed_a_retry

        def read_then_wait(*args):
            owed = real(*args)
            both_read.wait()
            return owed

        made: list = []
        errors: list = []

        def console():
            try:
                with scheduling.transaction():
                    made.extend(firing.sweep_retries(T0 - timedelta(days=1), T0)[0])
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                database.close()  # this thread's connection

        with mock.patch.object(firing.queries, "runs_owed_a_retry", read_then_wait):
            threads = [threading.Thread(target=console) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert errors == []
        assert [r.attempt for r in made] == [2]
        assert sorted(r.attempt for r in q.list_runs(job.id)) == [1, 2]
    finally:
        database.close()


def test_a_job_deleted_after_the_group_read_fails_only_its_own_run_now(job, monkeypatch):
    """A grouped run-now read the jobs, then one was deleted before the INSERT (a stale read):
    its foreign key must not fail the others' requests; it gets the error of a missing job."""
    from desktop.scheduler import firing
    from desktop.store.queries import runs as runs_module

    gone = q.create_job(job_spec(name="gone"))
    other = q.create_job(job_spec(name="other"))
    stale = [{"id": gone.id, "name": gone.name}]
    q.delete_job(gone.id)
    real = runs_module._by_ids

    def read_before_the_delete(name, build, ids):
        rows = real(name, build, ids)
        if name == "job_names" and stale:
            rows += [stale.pop()]  # as the read saw it, before the delete committed
        return rows

    monkeypatch.setattr(runs_module, "_by_ids", read_before_the_delete)
    made = firing.manual_runs([(job.id, None), (gone.id, ["x"]), (other.id, None)], T0)
    assert not stale  # the stale read happened
    assert isinstance(made[1], NotFound)
    assert str(made[1]) == str(NotFound(f"job {gone.id} does not exist (deleted?)"))
    assert [(r.job_id, r.state, r.trigger) for r in (made[0], made[2])] == [
        (job.id, "queued", "manual"),
        (other.id, "queued", "manual"),
    ]
    assert [q.get_run(r.id) for r in (made[0], made[2])] == [made[0], made[2]]
    assert q.count_runs() == 2


def test_a_job_deleted_by_another_console_between_the_read_and_the_insert(pg_schema_url):
    """PostgreSQL, the real race: another connection deletes the job and commits after the
    group read its jobs; the INSERT's foreign key fails; only that job's request fails."""
    import threading
    from unittest import mock

    from desktop.scheduler import firing
    from desktop.store import db as store_db
    from desktop.store.queries import runs as runs_module

    database = store_db.open_store(pg_schema_url)
    try:
        keep = q.create_job(job_spec(name="keep"))
        gone = q.create_job(job_spec(name="gone"))
        real = runs_module._insert_returning
        deleted: list = []

        def delete_then_insert(*args, **kwargs):
            if not deleted:

                def other_console():
                    try:
                        q.delete_job(gone.id, "other console")
                        deleted.append(True)
                    finally:
                        database.close()  # that thread's connection

                thread = threading.Thread(target=other_console)
                thread.start()
                thread.join(30)
                assert deleted, "the other console's delete did not commit"
            return real(*args, **kwargs)

        with mock.patch.object(runs_module, "_insert_returning", delete_then_insert):
            made = firing.manual_runs([(gone.id, None), (keep.id, ["a"])], T0)
        assert deleted
        assert isinstance(made[0], NotFound) and f"job {gone.id} " in str(made[0])
        assert (made[1].job_id, made[1].args) == (keep.id, ("a",))
        assert q.get_run(made[1].id) == made[1]
        assert q.get_job(gone.id) is None and q.count_runs() == 1
    finally:
        database.close()


def test_a_group_whose_jobs_keep_vanishing_fails_as_a_whole_and_writes_nothing(job, monkeypatch):
    from desktop.scheduler import firing
    from desktop.store.errors import JobDeletedMeanwhile
    from desktop.store.queries import runs as runs_module

    gone = q.create_job(job_spec(name="gone"))
    q.delete_job(gone.id)
    real = runs_module._by_ids
    reads: list = []

    def always_stale(name, build, ids):
        reads.append(name)
        rows = real(name, build, ids)
        return [*rows, {"id": gone.id, "name": "gone"}] if name == "job_names" else rows

    monkeypatch.setattr(runs_module, "_by_ids", always_stale)
    with pytest.raises(JobDeletedMeanwhile, match="deleted while its runs were being recorded"):
        firing.manual_runs([(job.id, None), (gone.id, None)], T0)
    assert reads.count("job_names") == firing.MANUAL_TRIES
    assert q.count_runs() == 0  # each try was undone whole
