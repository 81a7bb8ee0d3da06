from desktop.store import queries as q
from tests.cli.conftest import T0, read_db


def _add_runs(url, n):
    def add():
        job = q.get_job_by_name("backup")
        from datetime import timedelta

        return [q.create_run(job.id, T0 + timedelta(hours=i + 1)).id for i in range(n)]

    return read_db(url, add)


def test_runs_list_newest_first_with_paging_hint(seeded, cli):
    ids = _add_runs(seeded["url"], 3)
    code, out, _ = cli("runs", "list", "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [str(ids[2]), str(ids[1])]
    assert f"--before {ids[1]}" in lines[-1]
    code, out, _ = cli("runs", "list", "--before", str(ids[1]))
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        str(ids[0]),
        str(seeded["run_id"]),
    ]


def test_runs_list_by_job(seeded, cli):
    code, out, _ = cli("runs", "list", "--job", "report")
    assert code == 0 and out.strip() == "no runs"
    code, _, err = cli("runs", "list", "--job", "ghost")
    assert code == 2 and "no job named 'ghost'" in err


def test_runs_show_with_marked_stderr(seeded, cli):
    code, out, _ = cli("runs", "show", str(seeded["run_id"]))
    assert code == 0
    assert "failed" in out and "win-01" in out
    body = out.split("---\n", 1)[1]
    assert body == "copying files\n[stderr] disk almost full\n[stderr] retrying\ndone\n"


def test_runs_show_unknown_and_bad_ids(seeded, cli, capsys):
    code, _, err = cli("runs", "show", "99999")
    assert code == 2 and "no run 99999" in err
    import pytest

    with pytest.raises(SystemExit) as info:
        cli("runs", "show", "abc")
    assert info.value.code == 2
    assert "not a whole number" in capsys.readouterr().err
