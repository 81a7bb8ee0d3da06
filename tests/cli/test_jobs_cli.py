import json

import pytest

from desktop.cli.jobs import EXPORT_FORMAT
from desktop.store import queries as q
from tests.cli.conftest import read_db, spec, write_json


def test_list_shows_jobs_in_display_time_zone(seeded, cli):
    code, out, _ = cli("jobs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ENABLED", "SCHEDULE", "NEXT", "FIRE", "LAST", "RUN"]
    assert lines[1].startswith("backup") and "failed" in lines[1] and "HKT" in lines[1]
    assert lines[2].startswith("report") and " no " in lines[2]


def test_list_follows_the_display_zone_setting(seeded, cli):
    read_db(seeded["url"], q.set_setting, "display_tz", "UTC")
    _, out, _ = cli("jobs", "list")
    assert "UTC" in out and "HKT" not in out


def test_show(seeded, cli):
    code, out, _ = cli("jobs", "show", "backup")
    assert code == 0
    assert "Daily at 02:30 (Asia/Hong_Kong)" in out
    assert '["--full"]' in out


def test_show_unknown_job(seeded, cli):
    code, _, err = cli("jobs", "show", "nope")
    assert code == 2 and "no job named 'nope'" in err


def test_enable_disable_are_audited(seeded, cli):
    code, out, _ = cli("jobs", "enable", "report")
    assert code == 0 and "enabled 'report'" in out
    code, out, _ = cli("jobs", "enable", "report")
    assert "already enabled" in out
    assert cli("jobs", "disable", "backup")[0] == 0
    jobs = {j.name: j for j in read_db(seeded["url"], q.list_jobs)}
    assert jobs["report"].enabled and not jobs["backup"].enabled
    event = read_db(seeded["url"], q.list_audit)[0]
    assert event.actor.startswith("cli") and event.entity_name == "backup"


def test_export_is_versioned_sorted_and_round_trips(seeded, cli, tmp_path):
    code, out, _ = cli("jobs", "export")
    assert code == 0
    doc = json.loads(out)
    assert doc["format"] == EXPORT_FORMAT and doc["version"] == 2
    assert all(j["notify"] == [] and j["chains"] == [] for j in doc["jobs"])
    assert [j["name"] for j in doc["jobs"]] == ["backup", "report"]
    assert out == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    target = tmp_path / "jobs.json"
    assert cli("jobs", "export", str(target))[0] == 0
    assert target.read_text(encoding="utf-8") == out

    # into an empty database and out again: the same file
    other = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    from desktop.cli import main

    assert main(["--db", other, "jobs", "import", str(target)]) == 0
    specs = [j.to_spec() for j in read_db(other, q.list_jobs)]
    assert specs == [
        {k: v for k, v in j.items() if k not in ("notify", "chains")} for j in doc["jobs"]
    ]


def test_import_dry_run_changes_nothing(seeded, cli, tmp_path):
    doc = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "jobs": [spec("backup", args=["--full"], script="new.py"), spec("fresh")],
    }
    path = write_json(tmp_path / "in.json", doc)
    before = read_db(seeded["url"], q.list_jobs)
    code, out, _ = cli("jobs", "import", path, "--dry-run")
    assert code == 0
    assert "would be added:     fresh" in out
    assert "would be changed:   backup" in out and "new.py" in out
    assert "nothing was changed" in out
    assert read_db(seeded["url"], q.list_jobs) == before
    code, out, _ = cli("jobs", "import", path)
    assert code == 0 and "added:     fresh" in out
    assert read_db(seeded["url"], q.get_job_by_name, "backup").script == "new.py"


def test_import_with_any_error_changes_nothing(seeded, cli, tmp_path):
    doc = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "jobs": [spec("fine"), spec("evil", script="../../etc/passwd"), {"name": "x"}],
    }
    path = write_json(tmp_path / "bad.json", doc)
    before = read_db(seeded["url"], q.list_jobs)
    marker = read_db(seeded["url"], q.change_marker)
    code, _, err = cli("jobs", "import", path)
    assert code == 2
    assert "nothing was changed" in err
    assert "jobs[1] (evil).script" in err and "jobs[2] (x).schedule: is required" in err
    assert read_db(seeded["url"], q.list_jobs) == before
    assert read_db(seeded["url"], q.change_marker) == marker


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON at line 1"),
        ('{"format": "other", "version": 1, "jobs": []}', "not a Job Trigger jobs file"),
        ('{"format": "jobtrigger-jobs", "version": 7, "jobs": []}', "version 7 is not supported"),
        ('{"format": "jobtrigger-jobs", "version": 1, "jobs": {}}', "must be a list"),
    ],
)
def test_import_bad_files(seeded, cli, tmp_path, content, message):
    path = tmp_path / "in.json"
    path.write_text(content, encoding="utf-8")
    code, _, err = cli("jobs", "import", str(path))
    assert code == 2 and message in err


def test_import_missing_file(seeded, cli, tmp_path):
    code, _, err = cli("jobs", "import", str(tmp_path / "absent.json"))
    assert code == 2 and "no such file" in err


def test_corrupt_database_is_one_clear_line(tmp_path, capsys):
    from desktop.cli import main

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 500)
    code = main(["--db", f"sqlite:///{bad}", "jobs", "list"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ") and "not a Job Trigger database" in err
    assert "Traceback" not in err
