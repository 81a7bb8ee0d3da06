from datetime import timedelta

import pytest

from desktop.store import queries as q
from desktop.store.errors import ValidationError
from desktop.store.queries import retention
from desktop.store.records import OutputChunk
from tests.store.helpers import T0, job_spec


def test_settings_defaults_and_overrides(db):
    assert q.get_setting("display_tz") == "Asia/Hong_Kong"
    assert q.get_setting("unknown.key") is None
    assert q.get_setting("unknown.key", "fallback") == "fallback"
    q.set_setting("hub_port", 9000, actor="alice")
    q.set_setting("ui.splitter", "1,2")
    values = q.all_settings()
    assert values["hub_port"] == "9000" and values["ui.splitter"] == "1,2"
    assert values["retention_days"] == "90"
    event = q.list_audit()[1]
    assert event.entity_name == "hub_port" and "9000" in event.detail


@pytest.mark.parametrize(
    "key, value",
    [
        ("hub_port", "70000"),
        ("display_tz", "Mars/Base"),
        ("output_cap_bytes", "lots"),
        ("A B", "1"),
    ],
)
def test_bad_settings_are_refused(db, key, value):
    with pytest.raises(ValidationError):
        q.set_setting(key, value)
    assert key not in {k for k, v in q.all_settings().items() if v == value}


def test_prune_by_age_keeps_active_runs(db):
    job = q.create_job(job_spec())
    old_done = q.create_run(job.id, T0, state="missed")
    old_active = q.create_run(job.id, T0 + timedelta(minutes=1))
    q.append_output([OutputChunk(old_active.id, 1, "stdout", "still going")])
    now = old_done.created_at + timedelta(days=91)
    counts = q.prune(now)
    assert counts["runs_by_age"] == 1
    assert q.get_run(old_done.id) is None
    assert q.get_run(old_active.id) is not None
    assert q.read_output(old_active.id)
    # younger than the limit: kept
    assert q.prune(now, max_age_days=1000)["runs_by_age"] == 0


def test_prune_by_count_per_job_with_output(db, monkeypatch):
    monkeypatch.setattr(retention, "PRUNE_BATCH", 3)  # exercise several batches
    a = q.create_job(job_spec("a"))
    b = q.create_job(job_spec("b"))
    a_runs = [q.create_run(a.id, T0 + timedelta(minutes=i), state="missed") for i in range(10)]
    q.append_output([OutputChunk(a_runs[0].id, 1, "stdout", "old output")])
    active = q.create_run(a.id, T0 - timedelta(days=1))  # oldest by time but newest id
    q.transition_run(active.id, "running")
    b_runs = [q.create_run(b.id, T0 + timedelta(minutes=i), state="missed") for i in range(2)]
    counts = q.prune(T0, max_age_days=0, max_runs_per_job=4)
    assert counts["runs_by_count"] == 7
    assert counts["output_rows"] == 1
    kept = {r.id for r in q.list_runs(a.id, limit=100)}
    assert kept == {active.id, *(r.id for r in a_runs[-3:])}
    assert q.count_runs(b.id) == len(b_runs)


def test_prune_rules_off_with_zero(db):
    job = q.create_job(job_spec())
    q.create_run(job.id, T0, state="missed")
    assert q.prune(T0 + timedelta(days=10_000), max_age_days=0, max_runs_per_job=0) == {
        "runs_by_age": 0,
        "runs_by_count": 0,
        "output_rows": 0,
    }
