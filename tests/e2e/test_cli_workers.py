"""`workers ...` commands as a person runs them (subprocesses on a real SQLite file)."""

from __future__ import annotations

from desktop.store import queries
from desktop.store.db import open_store
from tests.e2e.conftest import cli
from worker.config import load


def test_workers_add_list_disable_revoke(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    result = cli(url, "workers", "add", "alpha", "--tags", "sql, win", "--slots", "3")
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[1].strip()
    database = open_store(url)
    try:
        assert queries.authenticate_worker("alpha", token).tags == ("sql", "win")
    finally:
        database.close()

    ini = tmp_path / "beta" / "worker.ini"
    result = cli(
        url,
        "workers",
        "add",
        "beta",
        "--write-ini",
        str(ini),
        "--server-url",
        "ws://10.0.0.5:8000/ws/heartbeat",
    )
    assert result.returncode == 0, result.stderr
    cfg = load(ini, environ={})  # the worker accepts the file as written
    assert (cfg.name, cfg.server_url) == ("beta", "ws://10.0.0.5:8000/ws/heartbeat")
    database = open_store(url)
    try:
        assert queries.authenticate_worker("beta", cfg.token).name == "beta"
    finally:
        database.close()
    assert cfg.token not in result.stdout  # written to the file, not printed

    again = cli(url, "workers", "add", "beta", "--write-ini", str(tmp_path / "other.ini"))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not (tmp_path / "other.ini").exists()
    exists = cli(url, "workers", "add", "gamma", "--write-ini", str(ini))
    assert exists.returncode == 2 and "already exists" in exists.stderr

    assert cli(url, "workers", "disable", "alpha").returncode == 0
    assert cli(url, "workers", "revoke", "beta").returncode == 0
    listing = cli(url, "workers", "list").stdout
    rows = {line.split()[0]: line.split()[1] for line in listing.splitlines()[1:]}
    assert rows == {"alpha": "disabled", "beta": "revoked"}

    bad = cli(url, "workers", "revoke", "nobody")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: there is no worker named 'nobody'; `workers list` shows the names"
    )
    bad_slots = cli(url, "workers", "add", "delta", "--slots", "0")
    assert bad_slots.returncode == 2 and "must be from 1 to 1000" in bad_slots.stderr


def test_workers_set_changes_tags_and_slots_and_refuses_bad_input(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert cli(url, "workers", "add", "alpha", "--tags", "win", "--slots", "2").returncode == 0
    result = cli(url, "workers", "set", "alpha", "--tags", "prod, sql", "--slots", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "worker alpha: tags prod,sql, slots 4"
    assert cli(url, "workers", "set", "alpha", "--slots", "5").returncode == 0  # tags kept
    for args, message in (
        (["--slots", "0"], "must be from 1 to 1000"),
        ([], "nothing to change"),
        (["--tags", "x" * 101], "at most 100 characters"),
    ):
        bad = cli(url, "workers", "set", "alpha", *args)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    nobody = cli(url, "workers", "set", "nobody", "--slots", "2")
    assert nobody.returncode == 2 and "no worker named 'nobody'" in nobody.stderr
    database = open_store(url)
    try:
        record = queries.get_worker("alpha")
        assert (record.tags, record.slots) == (("prod", "sql"), 5)
        assert cli(url, "workers", "set", "alpha", "--tags", "").returncode == 0
    finally:
        database.close()
    database = open_store(url)
    try:
        assert queries.get_worker("alpha").tags == ()
    finally:
        database.close()


def test_write_ini_names_the_port_the_running_console_listens_on(tmp_path):
    """A console started with --port listens where the settings do not say: the worker.ini
    written meanwhile points at the running hub, and the worker it describes comes online."""
    from tests.e2e.conftest import free_port, prepare_db
    from tests.e2e.test_headless import Console

    url = f"sqlite:///{tmp_path / 'w.db'}"
    prepare_db(url)
    port = free_port()
    console = Console(url, port, tmp_path / "console.log")
    try:
        console.wait_ready()
        ini = tmp_path / "gamma" / "worker.ini"
        result = cli(url, "workers", "add", "gamma", "--write-ini", str(ini))
        assert result.returncode == 0, result.stderr
        cfg = load(ini, environ={})
        assert cfg.server_url == f"ws://127.0.0.1:{port}/ws/heartbeat"
    finally:
        console.stop()
    # with no console running, the settings decide (the default port)
    ini = tmp_path / "delta" / "worker.ini"
    assert cli(url, "workers", "add", "delta", "--write-ini", str(ini)).returncode == 0
    assert load(ini, environ={}).server_url == "ws://127.0.0.1:8000/ws/heartbeat"
