"""Job definition checks and setting checks: pure functions, no database."""

import pytest

from desktop.store import settings
from desktop.store.errors import ValidationError
from desktop.store.validation import DEFAULTS, normalize_job_spec, script_name_problem


def spec(**overrides):
    data = {"name": "n", "script": "s.py", "schedule": {"kind": "daily", "times": ["09:30"]}}
    data.update(overrides)
    return data


def test_defaults_are_filled_and_schedule_made_canonical():
    clean = normalize_job_spec(spec(), default_tz="Europe/London")
    for key, value in DEFAULTS.items():
        assert clean[key] == value
    assert clean["time_zone"] == "Europe/London"
    assert clean["schedule"] == {"kind": "daily", "times": ["09:30"], "tz": "Europe/London", "v": 1}


def test_time_zone_must_match_the_schedule():
    with pytest.raises(ValidationError) as info:
        normalize_job_spec(spec(time_zone="UTC", schedule={"kind": "manual", "tz": "Asia/Tokyo"}))
    assert "Asia/Tokyo" in info.value.errors["time_zone"]


def test_unknown_time_zone():
    with pytest.raises(ValidationError) as info:
        normalize_job_spec(spec(time_zone="Mars/Olympus"))
    assert "is not a time zone" in info.value.errors["time_zone"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("args", "not a list"),
        ("args", [1, 2]),
        ("env", {"BAD NAME": "x"}),
        ("env", {"OK": 1}),
        ("target_kind", "everywhere"),
        ("enabled", "yes"),
        ("misfire_cap", 0),
        ("timeout_seconds", 0),
        ("timeout_seconds", 1.5),
        ("retry_backoff", 0.5),
        ("concurrency", "parallel"),
        ("description", 5),
    ],
)
def test_each_bad_field_is_named(field, value):
    with pytest.raises(ValidationError) as info:
        normalize_job_spec(spec(**{field: value}))
    assert field in info.value.errors


def test_target_any_clears_target_value_and_worker_needs_one():
    assert normalize_job_spec(spec(target_value="x"))["target_value"] == ""
    with pytest.raises(ValidationError) as info:
        normalize_job_spec(spec(target_kind="worker"))
    assert "worker name" in info.value.errors["target_value"]


def test_not_an_object():
    with pytest.raises(ValidationError) as info:
        normalize_job_spec(["name"])
    assert "job" in info.value.errors


@pytest.mark.parametrize("name", ["backup.py", "report.ps1", "run me.bat", "nightly-v2.sh"])
def test_safe_script_names(name):
    assert script_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "..", "..x", "c:x.py", "x\n.py", None])
def test_unsafe_script_names(name):
    assert script_name_problem(name)


@pytest.mark.parametrize(
    "key, value, ok",
    [
        ("display_tz", "Asia/Hong_Kong", True),
        ("display_tz", "Nowhere/City", False),
        ("hub_port", "0", True),
        ("hub_port", "65536", False),
        ("hub_host", "0.0.0.0", True),
        ("hub_host", "a b", False),
        ("retention_days", "-1", False),
        ("ui.columns", "anything", True),
        ("Bad-Key", "1", False),
    ],
)
def test_setting_checks(key, value, ok):
    assert (settings.check(key, value) is None) is ok
