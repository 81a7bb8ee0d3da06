"""A few commands as a real `python -m desktop` process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]


def run(*argv, env_url=None):
    import os

    env = {**os.environ}
    env.pop("JOBTRIGGER_DB_URL", None)
    env.pop("REFLEX_DB_URL", None)
    if env_url:
        env["JOBTRIGGER_DB_URL"] = env_url
    return subprocess.run(
        [sys.executable, "-m", "desktop", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "--help"],
        ["jobs", "list", "--help"],
        ["jobs", "show", "--help"],
        ["jobs", "export", "--help"],
        ["jobs", "import", "--help"],
        ["jobs", "enable", "--help"],
        ["jobs", "disable", "--help"],
        ["runs", "--help"],
        ["runs", "list", "--help"],
        ["runs", "show", "--help"],
    ],
)
def test_help_everywhere(argv):
    result = run(*argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m desktop")


def test_url_from_environment_and_export(seeded):
    result = run("jobs", "export", env_url=seeded["url"])
    assert result.returncode == 0, result.stderr
    assert [j["name"] for j in json.loads(result.stdout)["jobs"]] == ["backup", "report"]


def test_missing_subcommand_and_unknown_job_exit_non_zero(seeded):
    assert run("--db", seeded["url"], "jobs").returncode == 2
    result = run("--db", seeded["url"], "jobs", "disable", "ghost")
    assert result.returncode == 2 and "no job named 'ghost'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_qt_is_imported_by_the_cli(seeded):
    code = (
        "import sys; from desktop.cli import main; "
        f"rc = main(['--db', {seeded['url']!r}, 'runs', 'list']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'qasync')]; "
        "print(bad); sys.exit(rc or (1 if bad else 0))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout(60)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("[]")


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("where", ["time_zone", "schedule.tz"])
def test_import_of_a_zone_folder_through_tzdata_is_a_one_line_reason(tmp_path, dry_run, where):
    """PYTHONTZPATH='' makes zoneinfo read the tzdata package, as on Windows, where 'America'
    is a folder and used to end in an IsADirectoryError traceback."""
    import os

    from desktop.core.zones import zone_problem

    job = {"name": "j", "script": "j.py", "schedule": {"v": 1, "kind": "daily", "times": ["09:00"]}}
    if where == "time_zone":
        job["time_zone"] = "America"
    else:
        job["schedule"]["tz"] = "America"
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"format": "jobtrigger-jobs", "version": 1, "jobs": [job]}))
    db = tmp_path / "x.db"
    url = f"sqlite:///{db.as_posix()}"
    assert run("jobs", "list", env_url=url).returncode == 0
    before = db.read_bytes()
    env = {**os.environ, "PYTHONTZPATH": "", "JOBTRIGGER_DB_URL": url}
    argv = ["jobs", "import", str(path)] + (["--dry-run"] if dry_run else [])
    done = subprocess.run(
        [sys.executable, "-m", "desktop", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{where}: {zone_problem('America')}" in done.stderr
    assert db.read_bytes() == before
