"""The one time-zone check: every bad name gets the same one-line reason, on the host's zone
files and through the tzdata package (Windows), where folders and data files raise odd errors."""

from __future__ import annotations

import zoneinfo

import pytest

from desktop.core.schedule_fields import check_tz
from desktop.core.zones import is_zone, zone_problem
from desktop.store.errors import ValidationError
from desktop.store.settings import check as check_setting
from desktop.store.validation import normalize_job_spec

BAD = [
    "America",  # a folder of the zone database
    "America/Argentina",  # a folder one level down
    "US",
    "Europe/Lond",  # partial
    "",
    "   ",
    "../etc",
    "../../etc/passwd",
    "/etc/localtime",  # absolute
    "C:\\Windows",
    "america/new_york",  # wrong case
    "utc",
    "zone.tab",  # a data file of the database, not a zone
    "tzdata.zi",
    "America/__init__.py",
    "Europe/London\n",
    None,
    42,
]
GOOD = ["UTC", "Europe/London", "Asia/Hong_Kong", "America/Argentina/Buenos_Aires", "Etc/GMT+5"]


@pytest.mark.parametrize("name", BAD, ids=repr)
def test_every_bad_name_gets_the_same_one_line_reason(zone_source, name):
    problem = zone_problem(name)
    assert problem is not None and "\n" not in problem
    assert problem.endswith("is not a time zone; use a name like Europe/London (IANA)")
    assert not is_zone(name)
    # the schedule check, the settings check and the job spec check say the very same thing
    assert check_tz(name) == (None, problem)
    if isinstance(name, str):
        assert check_setting("display_tz", name) == problem
        spec = {
            "name": "j",
            "script": "j.py",
            "time_zone": name,
            "schedule": {"v": 1, "kind": "manual"},
        }
        with pytest.raises(ValidationError) as info:
            normalize_job_spec(spec)
        assert info.value.errors == {"time_zone": problem}


@pytest.mark.parametrize("name", GOOD)
def test_real_zones_pass_and_load(zone_source, name):
    assert zone_problem(name) is None
    assert check_tz(name) == (name, None)
    assert zoneinfo.ZoneInfo(name).key == name


@pytest.mark.parametrize("zone_source", ["tzdata"], indirect=True)
def test_the_tzdata_path_really_raises_for_a_folder(zone_source):
    """Guards the fixture: through tzdata a folder is an OSError, not ZoneInfoNotFoundError."""
    with pytest.raises(IsADirectoryError):
        zoneinfo.ZoneInfo("America")
