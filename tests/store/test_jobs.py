from datetime import timedelta

import pytest

from desktop.store import queries as q
from desktop.store.errors import Conflict, NotFound, ValidationError
from tests.store.helpers import T0, job_spec


def test_create_and_read_back(db):
    job = q.create_job(job_spec(), actor="alice")
    assert job.id > 0
    assert job.args == ("--full",)
    assert job.env == {"MODE": "nightly"}
    assert job.schedule["kind"] == "daily"
    assert job.time_zone == "Asia/Hong_Kong"
    assert job.created_at.tzinfo is not None
    # daily 02:30 Hong Kong = 18:30 UTC, strictly in the future
    assert job.next_fire_at is not None and job.next_fire_at.hour == 18
    assert q.get_job(job.id) == job
    assert q.get_job_by_name("backup") == job
    assert q.get_job(job.id + 1000) is None
    audit = q.list_audit()
    assert (audit[0].actor, audit[0].action, audit[0].entity_name) == ("alice", "created", "backup")


def test_time_zone_defaults_to_display_zone_setting(db):
    q.set_setting("display_tz", "Europe/London")
    spec = job_spec()
    del spec["schedule"]["tz"]
    assert q.create_job(spec).time_zone == "Europe/London"


def test_validation_lists_every_problem_and_changes_nothing(db):
    marker = q.change_marker()
    bad = job_spec(
        name="",
        script="../etc/passwd",
        target_kind="tag",
        misfire_policy="sometimes",
        max_retries=-1,
        retry_backoff=True,
        colour="red",
    )
    with pytest.raises(ValidationError) as info:
        q.create_job(bad)
    errors = info.value.errors
    assert set(errors) >= {
        "name",
        "script",
        "target_value",
        "misfire_policy",
        "max_retries",
        "retry_backoff",
        "colour",
    }
    assert "folders" in errors["script"] or ".." in errors["script"]
    assert q.list_jobs() == []
    assert q.change_marker() == marker


@pytest.mark.parametrize("script", ["a/b.py", "a\\b.py", "..", "x..y.py", "C:evil.py", " x.py"])
def test_unsafe_script_names_are_refused(db, script):
    with pytest.raises(ValidationError) as info:
        q.create_job(job_spec(script=script))
    assert "script" in info.value.errors


def test_bad_schedule_reports_the_schedule_field(db):
    with pytest.raises(ValidationError) as info:
        q.create_job(job_spec(schedule={"kind": "daily", "times": ["25:00"], "tz": "UTC"}))
    assert any(key.startswith("schedule") for key in info.value.errors)


def test_duplicate_name_is_a_validation_error(db):
    q.create_job(job_spec())
    with pytest.raises(ValidationError) as info:
        q.create_job(job_spec())
    assert "already exists" in info.value.errors["name"]


def test_update_changes_only_given_fields_and_audits_a_diff(db):
    job = q.create_job(job_spec())
    before = q.change_marker()
    updated = q.update_job(job.id, {"script": "other.py", "max_retries": 3}, actor="bob")
    assert updated.script == "other.py" and updated.max_retries == 3
    assert updated.args == job.args
    assert q.change_marker() > before
    event = q.list_audit()[0]
    assert event.action == "updated" and event.actor == "bob"
    assert "script" in event.detail and "other.py" in event.detail


def test_update_to_taken_name_or_bad_value_changes_nothing(db):
    q.create_job(job_spec("one"))
    two = q.create_job(job_spec("two"))
    with pytest.raises(ValidationError):
        q.update_job(two.id, {"name": "one"})
    with pytest.raises(ValidationError):
        q.update_job(two.id, {"concurrency": "sometimes"})
    assert q.get_job(two.id) == two


def test_update_missing_job_is_not_found(db):
    with pytest.raises(NotFound):
        q.update_job(12345, {"script": "x.py"})


def test_schedule_change_recomputes_next_fire(db):
    job = q.create_job(job_spec())
    moved = q.update_job(job.id, {"schedule": {"kind": "daily", "times": ["07:00"], "tz": "UTC"}})
    assert moved.time_zone == "UTC"
    assert moved.next_fire_at.hour == 7


def test_disable_clears_next_fire_and_enable_restores_it(db):
    job = q.create_job(job_spec())
    off = q.set_job_enabled(job.id, False, actor="cli")
    assert not off.enabled and off.next_fire_at is None
    on = q.set_job_enabled(job.id, True, actor="cli")
    assert on.enabled and on.next_fire_at is not None
    assert [e.action for e in q.list_audit()[:2]] == ["updated", "updated"]


def test_delete_removes_runs_and_output_but_not_while_active(db):
    job = q.create_job(job_spec())
    run = q.create_run(job.id, T0)
    with pytest.raises(Conflict):
        q.delete_job(job.id)
    q.transition_run(run.id, "cancelled")
    q.delete_job(job.id, actor="carol")
    assert q.get_job(job.id) is None
    assert q.get_run(run.id) is None
    assert q.list_audit()[0].action == "deleted"


def test_list_jobs_carries_the_newest_run(db):
    a = q.create_job(job_spec("a"))
    q.create_job(job_spec("b"))
    q.create_run(a.id, T0)
    newest = q.create_run(a.id, T0 + timedelta(hours=1))
    q.transition_run(newest.id, "running", started_at=T0 + timedelta(hours=1, seconds=5))
    jobs = q.list_jobs()
    assert [j.name for j in jobs] == ["a", "b"]
    assert jobs[0].last_run_id == newest.id
    assert jobs[0].last_run_state == "running"
    assert jobs[0].last_run_at == T0 + timedelta(hours=1, seconds=5)
    assert jobs[1].last_run_id is None and jobs[1].last_run_state is None


def test_due_jobs_and_earliest_next_fire(db):
    a = q.create_job(job_spec("a"))
    b = q.create_job(job_spec("b"))
    c = q.create_job(job_spec("c"))
    q.set_next_fire(a.id, T0, last_scheduled_at=T0 - timedelta(days=1))
    q.set_next_fire(b.id, T0 + timedelta(minutes=1), None)
    q.set_next_fire(c.id, T0 - timedelta(minutes=1), None)
    q.set_job_enabled(c.id, False)
    assert q.earliest_next_fire() == T0
    assert [j.name for j in q.due_jobs(T0)] == ["a"]
    assert [j.name for j in q.due_jobs(T0 + timedelta(minutes=1))] == ["a", "b"]
    assert q.get_job(a.id).last_scheduled_at == T0 - timedelta(days=1)
    with pytest.raises(NotFound):
        q.set_next_fire(9999, T0, None)


def test_earliest_next_fire_is_none_without_enabled_jobs(db):
    assert q.earliest_next_fire() is None


def test_change_marker_counts_job_worker_and_setting_changes(db):
    m0 = q.change_marker()
    job = q.create_job(job_spec())
    m1 = q.change_marker()
    q.add_worker("w1")
    m2 = q.change_marker()
    q.set_setting("retention_days", "30")
    m3 = q.change_marker()
    assert m0 < m1 < m2 < m3
    # scheduler bookkeeping is not a definition change
    q.set_next_fire(job.id, T0, None)
    assert q.change_marker() == m3


def test_to_spec_round_trips_through_create(db):
    job = q.create_job(job_spec(timeout_seconds=60, target_kind="tag", target_value="win"))
    spec = job.to_spec()
    spec["name"] = "copy"
    copy = q.create_job(spec)
    assert {**copy.to_spec(), "name": "backup"} == job.to_spec()


def test_import_all_or_nothing(db):
    q.create_job(job_spec("keep"))
    q.create_job(job_spec("change"))
    specs = [job_spec("keep"), job_spec("change", script="new.py"), job_spec("add")]
    preview = q.import_jobs(specs, dry_run=True)
    assert preview["added"] == ["add"]
    assert [name for name, _ in preview["changed"]] == ["change"]
    assert preview["unchanged"] == ["keep"]
    assert q.get_job_by_name("add") is None  # dry run changed nothing

    bad = [*specs, job_spec("broken", script="../x")]
    with pytest.raises(ValidationError) as info:
        q.import_jobs(bad)
    assert any("broken" in key for key in info.value.errors)
    assert q.get_job_by_name("add") is None
    assert q.get_job_by_name("change").script == "backup.py"

    done = q.import_jobs(specs)
    assert done == preview
    assert q.get_job_by_name("add") is not None
    assert q.get_job_by_name("change").script == "new.py"
    assert q.import_jobs(specs)["unchanged"] == ["keep", "change", "add"]


def test_import_refuses_duplicate_names_in_one_file(db):
    with pytest.raises(ValidationError) as info:
        q.import_jobs([job_spec("x"), job_spec("x")])
    assert "jobs[1] (x).name" in info.value.errors


def test_max_retries_of_reads_only_the_jobs_that_exist(db):
    """What a scheduler pass asks of the jobs of runs that ended: the same numbers as the
    whole records, missing jobs left out."""
    a = q.create_job(job_spec(name="a", max_retries=3))
    b = q.create_job(job_spec(name="b"))
    got = q.max_retries_of([a.id, b.id, 999_999])
    assert got == {j.id: j.max_retries for j in q.jobs_by_ids([a.id, b.id]).values()}
    assert got[a.id] == 3
    assert q.max_retries_of([]) == {}
