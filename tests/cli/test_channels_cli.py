"""`channels` and the links in `jobs`: bad input refused with nothing stored, secrets never on
the command line, rules and chains in `jobs show`, and export format 2 round trips them while
version 1 files still import."""

from __future__ import annotations

import io
import json
import sys

from desktop.cli import main
from desktop.cli.jobs import EXPORT_FORMAT
from desktop.store import chains, channels
from desktop.store import queries as q
from desktop.store import secrets as js
from tests.cli.conftest import read_db, spec, write_json


def test_bad_channels_are_refused_and_nothing_is_stored(seeded, cli):
    for argv, message in [
        (["--webhook", "file:///etc/passwd"], "only http:// and https://"),
        (["--webhook", "ftp://example.com/"], "only http:// and https://"),
        (["--email", "--host", "smtp.x", "--sender", "me", "--to", "a@b.c"], "not an e-mail"),
        (
            ["--email", "--host", "smtp.x", "--sender", "me@x.y", "--to", "a@b.c\nBcc: x@y.z"],
            "not an e-mail",
        ),
        ([], "either --email or --webhook"),
    ]:
        code, _, err = cli("channels", "add", "c1", *argv)
        assert code == 2 and message in err, (argv, err)
    assert read_db(seeded["url"], channels.list_channels) == []


def test_secret_comes_from_the_environment_and_is_kept_apart(seeded, cli, monkeypatch):
    monkeypatch.setenv("HOOK_KEY", "k-123")
    code, out, _ = cli(
        "channels",
        "add",
        "hook",
        "--webhook",
        "https://hooks.example/services/T/B/PATHSECRET",
        "--secret-env",
        "HOOK_KEY",
    )
    assert code == 0 and "saved channel 'hook'" in out
    code, out, _ = cli("channels", "list")
    assert "hook" in out and "PATHSECRET" not in out and "k-123" not in out
    record = read_db(seeded["url"], channels.get_channel, "hook")
    assert "k-123" not in json.dumps(record.config)  # not in the config column
    assert read_db(seeded["url"], channels.channel_secret, record.id) == "k-123"
    code, _, err = cli("channels", "add", "h2", "--webhook", "https://x.y/", "--secret-env", "NOPE")
    assert code == 2 and "NOPE is not set" in err


def test_rules_and_chains_in_jobs_show_and_refusals(seeded, cli):
    assert cli("channels", "add", "hook", "--webhook", "http://127.0.0.1:9/x")[0] == 0
    code, out, _ = cli("jobs", "notify", "backup", "hook:failed,lost")
    assert code == 0 and "hook on failed, lost" in out
    code, _, err = cli("jobs", "notify", "backup", "ghost:failed")
    assert code == 2 and "no channel 'ghost'" in err
    code, _, err = cli("jobs", "chains", "backup", "nowhere:success")
    assert code == 2 and "no job 'nowhere'" in err
    assert cli("jobs", "chains", "backup", "report:end")[0] == 0
    code, _, err = cli("jobs", "chains", "report", "backup:failure")
    assert code == 2 and "chains would loop" in err and "nothing was changed" in err
    code, out, _ = cli("jobs", "show", "backup")
    assert "hook on failed, lost" in out and "on end -> report" in out
    code, out, _ = cli("jobs", "show", "report")
    assert "backup (on end)" in out
    assert cli("jobs", "notify", "--default", "hook:missed")[0] == 0
    assert read_db(seeded["url"], channels.rules_spec, None) == [
        {"channel": "hook", "on": ["missed"]}
    ]


def test_export_2_round_trips_rules_and_chains_and_version_1_still_imports(seeded, cli, tmp_path):
    assert cli("channels", "add", "hook", "--webhook", "http://127.0.0.1:9/x")[0] == 0
    assert cli("jobs", "notify", "backup", "hook:failed")[0] == 0
    assert cli("jobs", "chains", "backup", "report:success")[0] == 0
    code, out, _ = cli("jobs", "export")
    doc = json.loads(out)
    backup = next(j for j in doc["jobs"] if j["name"] == "backup")
    assert backup["notify"] == [{"channel": "hook", "on": ["failed"]}]
    assert backup["chains"] == [{"then": "report", "on": "success"}]

    # a version 1 file (no links) changes a job and leaves its links alone
    v1 = {"format": EXPORT_FORMAT, "version": 1, "jobs": [spec("backup", script="v1.py")]}
    assert cli("jobs", "import", write_json(tmp_path / "v1.json", v1))[0] == 0
    job = read_db(seeded["url"], q.get_job_by_name, "backup")
    assert job.script == "v1.py"
    assert [c.target for c in read_db(seeded["url"], chains.list_chains, job.id)] == ["report"]

    # a version 2 file with a cycle: refused, nothing changed
    cyc = json.loads(out)
    for j in cyc["jobs"]:
        if j["name"] == "report":
            j["chains"] = [{"then": "backup", "on": "end"}]
            j["script"] = "changed.py"
    marker = read_db(seeded["url"], q.change_marker)
    code, _, err = cli("jobs", "import", write_json(tmp_path / "cyc.json", cyc))
    assert code == 2 and "loop" in err and "nothing was changed" in err
    assert read_db(seeded["url"], q.get_job_by_name, "report").script == "report.py"
    assert read_db(seeded["url"], q.change_marker) == marker

    # into an empty database (channel first): the same links come out
    other = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    from desktop.cli import main

    assert (
        main(["--db", other, "channels", "add", "hook", "--webhook", "http://127.0.0.1:9/x"]) == 0
    )
    path = write_json(tmp_path / "v2.json", doc)
    assert main(["--db", other, "jobs", "import", path]) == 0
    job = read_db(other, q.get_job_by_name, "backup")
    assert read_db(other, channels.rules_spec, job.id) == [{"channel": "hook", "on": ["failed"]}]
    assert [c.spec() for c in read_db(other, chains.list_chains, job.id)] == [
        {"then": "report", "on": "success"}
    ]


def test_runs_show_lists_notifications_and_chained_runs(seeded, cli):
    assert cli("channels", "add", "hook", "--webhook", "http://127.0.0.1:9/x")[0] == 0
    assert cli("jobs", "notify", "backup", "hook:failed")[0] == 0
    assert cli("jobs", "chains", "backup", "report:failure")[0] == 0

    def fail_again():
        job = q.get_job_by_name("backup")
        run = q.create_run(job.id, q.get_run(seeded["run_id"]).scheduled_at.replace(minute=5))
        q.transition_run(run.id, "running", worker_name="w1")
        q.transition_run(run.id, "failed", exit_code=2)
        return run.id

    run_id = read_db(seeded["url"], fail_again)
    code, out, _ = cli("runs", "show", str(run_id), "--no-output")
    assert code == 0
    assert "failed to hook: pending" in out and "chained" in out and "report run" in out
    code, out, _ = cli("channels", "log")
    assert "hook" in out and "pending" in out


def test_export_carries_secrets_placeholders_and_links_together(
    seeded, cli, tmp_path, monkeypatch, capsys
):
    """Both additions to the export (issue 17's secret names, issue 18's rules and chains) on one
    job: a fresh database gets the links and is told which secret to set, never a value."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"pw-123")))
    assert cli("secrets", "set", "backup", "DB_PASSWORD")[0] == 0
    assert cli("channels", "add", "hook", "--webhook", "http://127.0.0.1:9/x")[0] == 0
    assert cli("jobs", "notify", "backup", "hook:failed")[0] == 0
    assert cli("jobs", "chains", "backup", "report:success")[0] == 0
    code, out, _ = cli("jobs", "export")
    assert code == 0 and "pw-123" not in out
    backup = next(j for j in json.loads(out)["jobs"] if j["name"] == "backup")
    assert backup["secrets"] == {"DB_PASSWORD": js.PLACEHOLDER}
    assert backup["notify"] == [{"channel": "hook", "on": ["failed"]}]
    assert backup["chains"] == [{"then": "report", "on": "success"}]

    fresh = f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}"
    path = tmp_path / "all.json"
    path.write_text(out, encoding="utf-8")
    assert (
        main(["--db", fresh, "channels", "add", "hook", "--webhook", "http://127.0.0.1:9/x"]) == 0
    )
    capsys.readouterr()
    assert main(["--db", fresh, "jobs", "import", str(path)]) == 0
    assert "job 'backup' needs secret DB_PASSWORD" in capsys.readouterr().out
    job = read_db(fresh, q.get_job_by_name, "backup")
    assert [(c.target, c.on) for c in read_db(fresh, chains.list_chains, job.id)] == [
        ("report", "success")
    ]
    assert read_db(fresh, channels.rules_spec, job.id) == [{"channel": "hook", "on": ["failed"]}]
    assert read_db(fresh, js.list_secrets, job.id) == []  # a value is never imported
