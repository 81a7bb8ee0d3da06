"""``secrets`` and the import/export rules: values from stdin or a file (never argv), export
writes a placeholder, import refuses values, and ``rotate-key`` killed with SIGKILL at its
hooks (a real process) loses nothing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.core.secretbox import SecretBox, new_key, sealed_key_id
from desktop.store import secretkey
from desktop.store import secrets as js
from desktop.store.models import JobSecret
from tests.cli.conftest import read_db, spec, write_json
from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
VALUE = "s3cret-from-stdin"


@pytest.fixture
def stdin(monkeypatch):
    def feed(data: bytes) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    return feed


def test_set_from_stdin_or_a_file_list_and_unset(seeded, cli, stdin, tmp_path):
    stdin(VALUE.encode() + b"\n")
    code, out, _ = cli("secrets", "set", "backup", "DB_PASSWORD")
    assert code == 0 and VALUE not in out
    (tmp_path / "v.txt").write_bytes(b"from-a-file\n")
    code, _, err = cli("secrets", "set", "backup", "PATH", "--file", str(tmp_path / "v.txt"))
    assert code == 0 and "workers refuse PATH by default" in err
    values = read_db(seeded["url"], js.values_for_job, 1)
    assert values == {"DB_PASSWORD": VALUE, "PATH": "from-a-file"}  # one newline dropped
    code, out, _ = cli("secrets", "list", "backup")
    assert "DB_PASSWORD" in out and VALUE not in out
    code, out, _ = cli("secrets", "unset", "backup", "PATH")
    assert code == 0
    assert read_db(seeded["url"], js.values_for_job, 1) == {"DB_PASSWORD": VALUE}


def test_a_bad_name_or_a_value_too_large_is_refused(seeded, cli, stdin, tmp_path):
    stdin(VALUE.encode())
    code, _, err = cli("secrets", "set", "backup", "9LIVES")
    assert code == 2 and "not a valid environment variable name" in err
    (tmp_path / "big").write_bytes(b"x" * (64 * 1024 + 1))
    code, _, err = cli("secrets", "set", "backup", "BIG", "--file", str(tmp_path / "big"))
    assert code == 2 and "64 KiB" in err
    assert read_db(seeded["url"], js.values_for_job, 1) == {}


def test_export_writes_a_placeholder_and_import_refuses_values(seeded, cli, stdin, tmp_path):
    stdin(VALUE.encode())
    cli("secrets", "set", "backup", "DB_PASSWORD")
    code, out, _ = cli("jobs", "export")
    assert code == 0 and VALUE not in out
    doc = json.loads(out)
    backup = next(j for j in doc["jobs"] if j["name"] == "backup")
    assert backup["secrets"] == {"DB_PASSWORD": js.PLACEHOLDER}
    # the same file imports (the placeholder keeps the secret as it is)...
    code, out, _ = cli("jobs", "import", write_json(tmp_path / "same.json", doc))
    assert code == 0, out
    assert read_db(seeded["url"], js.values_for_job, 1) == {"DB_PASSWORD": VALUE}
    # ...a new job's secret is pointed out...
    new = spec("fresh", secrets={"TOKEN": js.PLACEHOLDER})
    doc2 = {**doc, "jobs": [new]}
    code, out, _ = cli("jobs", "import", write_json(tmp_path / "new.json", doc2))
    assert code == 0 and "job 'fresh' needs secret TOKEN" in out
    # ...a value or a bad name is refused, and nothing changes
    bad = {**doc, "jobs": [spec("evil", secrets={"TOKEN": "plain-value", "1X": js.PLACEHOLDER})]}
    code, _, err = cli("jobs", "import", write_json(tmp_path / "bad.json", bad))
    assert code == 2
    assert "secret values are not imported" in err and "not a valid environment" in err
    assert "plain-value" not in err
    code, out, _ = cli("jobs", "show", "evil")
    assert code == 2


def _rows(url):
    return read_db(url, lambda: {r.secret_name: (r.sealed, r.key_id) for r in JobSecret.select()})


def _kill_rotation_at(url: str, stage: str, tmp_path: Path) -> None:
    marker = tmp_path / f"at-{stage}"
    env = {**os.environ, "JOBTRIGGER_TEST_ROTATE_HOOK": f"{stage}:{marker}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "--db", url, "secrets", "rotate-key"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout(30)
        while not marker.exists():  # the process says where it is by writing the file
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "rotate-key never reached its hook"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _all_open(url) -> dict[str, str]:
    return read_db(url, js.values_for_job, 1)


@pytest.mark.parametrize("stage", ["mid", "committed"])
def test_rotation_killed_at_any_point_loses_nothing(seeded, cli, stdin, tmp_path, stage):
    url = seeded["url"]
    for name in ("A_SECRET", "B_SECRET", "C_SECRET", "D_SECRET"):
        stdin(f"value-of-{name}".encode())
        assert cli("secrets", "set", "backup", name)[0] == 0
    expected = {n: f"value-of-{n}" for n in ("A_SECRET", "B_SECRET", "C_SECRET", "D_SECRET")}
    before = _rows(url)
    (old_id,) = {k for _, k in before.values()}
    _kill_rotation_at(url, stage, tmp_path)
    keys = read_db(url, secretkey.read_keys)
    assert len(keys) == 2 and SecretBox(keys).key_id == old_id  # the old key still seals
    after = _rows(url)
    if stage == "mid":
        assert after == before  # the transaction never committed
    else:
        new_id = SecretBox(keys[1:]).key_id
        assert {k for _, k in after.values()} == {new_id}  # committed under the new key
        assert {sealed_key_id(s) for s, _ in after.values()} == {new_id}
    assert _all_open(url) == expected  # every value opens after the kill
    # running it again finishes the job: one key, everything under it
    code, out, _ = cli("secrets", "rotate-key")
    assert code == 0 and "re-encrypted 4 values" in out
    keys = read_db(url, secretkey.read_keys)
    assert len(keys) == 1
    assert {k for _, k in _rows(url).values()} == {SecretBox(keys).key_id}
    assert _all_open(url) == expected


def test_rotation_with_a_wrong_key_changes_nothing(seeded, cli, stdin):
    stdin(VALUE.encode())
    cli("secrets", "set", "backup", "DB_PASSWORD")
    url = seeded["url"]
    before = _rows(url)
    wrong = [new_key()]
    read_db(url, secretkey.write_keys, wrong)
    code, _, err = cli("secrets", "rotate-key")
    assert code == 2 and "sealed with key" in err and "nothing was changed" in err
    assert _rows(url) == before
    assert read_db(url, secretkey.read_keys) == wrong


def test_the_key_moves_to_a_second_host_by_export_and_import(
    seeded, cli, stdin, tmp_path, monkeypatch
):
    """Two consoles on one server database: the second host imports the first one's key (here:
    the same database, a different key file standing for the other host's place)."""
    stdin(VALUE.encode())
    cli("secrets", "set", "backup", "DB_PASSWORD")
    exported = tmp_path / "moved.key"
    code, _, _ = cli("secrets", "export-key", str(exported))
    assert code == 0 and oct(exported.stat().st_mode & 0o777) == "0o600"
    assert cli("secrets", "export-key", str(exported))[0] == 2  # never over an existing file
    other_host = tmp_path / "other-host.key"
    os.environ["JOBTRIGGER_SECRET_KEY_FILE"] = str(other_host)
    try:
        code, _, err = cli("secrets", "import-key", str(exported))
        assert code == 0, err
        assert read_db(seeded["url"], js.values_for_job, 1) == {"DB_PASSWORD": VALUE}
        wrong = tmp_path / "wrong.key"
        read_db(
            seeded["url"], secretkey.write_keys, [new_key()], secretkey.KeyPlace("file", str(wrong))
        )
        code, _, err = cli("secrets", "import-key", str(wrong), "--replace")
        assert code == 2 and "restore the right key" in err
        assert read_db(seeded["url"], js.values_for_job, 1) == {"DB_PASSWORD": VALUE}
    finally:
        del os.environ["JOBTRIGGER_SECRET_KEY_FILE"]
