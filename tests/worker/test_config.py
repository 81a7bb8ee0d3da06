"""worker.ini: template when missing, clear errors naming file and key, env overrides."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, timeout
from tests.worker.hubfixture import start_worker, stop_worker, write_config
from worker.config import (
    DEFAULT_SERVER_URL,
    ConfigError,
    ConfigMissing,
    load,
    plain_ws_off_host,
    split_command,
)


def run_worker(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )


def test_missing_config_writes_template_and_exits_nonzero(tmp_path):
    result = run_worker(cwd=tmp_path)
    ini = tmp_path / "worker.ini"
    assert result.returncode == 1
    assert str(ini) in result.stderr and "token" in result.stderr
    text = ini.read_text()
    assert "server_url = ws://localhost:8000/ws/heartbeat" in text
    assert "token =" in text and text.lstrip().startswith(";")
    # the template is a valid config once the token is filled in
    ini.write_text(text.replace("token =", "token = abc", 1))
    cfg = load(ini, environ={})
    assert (cfg.token, cfg.scripts_dir, cfg.slots) == ("abc", tmp_path / "scripts", 1)
    assert cfg.interpreters[".ps1"][0] == "powershell"


def test_template_never_overwrites(tmp_path):
    ini = tmp_path / "given.ini"
    with pytest.raises(ConfigMissing):
        load(ini, environ={})
    ini.write_text("[worker]\ntoken = mine\n")
    assert load(ini, environ={}).token == "mine"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("token = x\n", "must start with [worker]"),
        ("[other]\ntoken = x\n", "no [worker] section"),
        (b"[worker]\ntoken = \xff\n", "cannot be read"),
        ("[worker\ntoken = x\n", "line 1 comes before any section"),
        ("[worker]\ntoken = x\nslots = many\n", "slots = 'many' is not an integer"),
        ("[worker]\ntoken = x\nslots = 0\n", "slots must be at least 1"),
        ("[worker]\ntoken = x\nheartbeat_interval = soon\n", "heartbeat_interval"),
        ("[worker]\ntoken = x\nserver_url = http://hub\n", "must start with ws://"),
        ("[worker]\ntoken =\n", "token is empty"),
        ("[worker]\ntoken = x\n[interpreters]\nps1 = pwsh\n", "must be a file extension"),
    ],
)
def test_broken_config_names_file_and_key(tmp_path, content, expected):
    ini = tmp_path / "worker.ini"
    ini.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as err:
        load(ini, environ={})
    assert str(ini) in str(err.value) and expected in str(err.value)


def test_broken_config_exits_2_with_the_file_named(tmp_path):
    ini = tmp_path / "custom.ini"
    ini.write_text("[worker]\ntoken = x\nslots = lots\n")
    result = run_worker("--config", str(ini), cwd=tmp_path)
    assert result.returncode == 2
    assert str(ini) in result.stderr and "slots" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_overrides_and_old_variable_name(tmp_path):
    ini = tmp_path / "worker.ini"
    ini.write_text("[worker]\nserver_url = ws://ini:1/ws\ntoken = from-ini\ntags = a, b,,c\n")
    assert load(ini, environ={}).server_url == "ws://ini:1/ws"
    assert load(ini, environ={}).tags == ["a", "b", "c"]
    old = load(ini, environ={"REFLEX_SERVER_URL": "ws://old:2/ws"})
    assert old.server_url == "ws://old:2/ws"
    both = load(
        ini,
        environ={
            "REFLEX_SERVER_URL": "ws://old:2/ws",
            "JOBTRIGGER_SERVER_URL": "ws://new:3/ws",
            "JOBTRIGGER_TOKEN": "from-env",
        },
    )
    assert (both.server_url, both.token) == ("ws://new:3/ws", "from-env")
    ini.write_text("[worker]\n")
    assert load(ini, environ={"JOBTRIGGER_TOKEN": "t"}).server_url == DEFAULT_SERVER_URL


def test_interpreter_lines_keep_quoted_windows_paths():
    assert split_command('"C:\\Program Files\\PowerShell\\7\\pwsh.exe" -NoProfile -File') == [
        "C:\\Program Files\\PowerShell\\7\\pwsh.exe",
        "-NoProfile",
        "-File",
    ]


@pytest.mark.asyncio
async def test_env_server_url_and_token_reach_the_hub(hub, worker_dir):
    config = write_config(worker_dir, "ws://127.0.0.1:9/nowhere", token="ini-token")
    proc = await start_worker(
        config, env={"JOBTRIGGER_SERVER_URL": hub.url, "JOBTRIGGER_TOKEN": "env-token"}
    )
    try:
        await hub.connected()
        assert hub.hellos[0]["token"] == "env-token"
    finally:
        await stop_worker(proc)


@pytest.mark.asyncio
async def test_version_flag():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "--version", cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout(30))
    assert proc.returncode == 0 and out.decode().startswith("Job Trigger worker ")


def test_unwritable_spool_folder_is_explained(tmp_path):
    (tmp_path / "blocker").write_text("a file where the spool folder should be")
    ini = tmp_path / "worker.ini"
    ini.write_text("[worker]\ntoken = x\nspool_dir = blocker/spool\n")
    result = run_worker("--config", str(ini), "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert "Cannot use the spool folder" in result.stderr and str(ini) in result.stderr
    assert "Traceback" not in result.stderr


def test_log_file_receives_the_log(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{s.getsockname()[1]}/ws"
    ini = tmp_path / "worker.ini"
    ini.write_text(f"[worker]\ntoken = x\nserver_url = {url}\nlog_file = logs.txt\n")
    result = run_worker("--config", str(ini), "--once", cwd=tmp_path)
    assert result.returncode == 1
    logged = (tmp_path / "logs.txt").read_text()
    assert f"Cannot reach the console at {url}" in logged
    assert "scripts folder" in logged  # the missing folder is reported too


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[env]\nallow = PATH, LD PRELOAD\n", "[env] allow: 'LD PRELOAD' is not a variable name"),
        ("[env]\ndeny = *\n", "[env] deny: '*' is not a variable name"),
        ("[env]\npermit = PATH\n", "[env] has unknown key permit"),
        ("require_tls = maybe\n", "require_tls = 'maybe' must be true or false"),
        ("require_tls = yes\n", "require_tls is on but server_url"),
    ],
)
def test_broken_env_and_tls_settings_stop_the_worker_at_start(tmp_path, content, expected):
    ini = tmp_path / "worker.ini"
    ini.write_text("[worker]\ntoken = x\nserver_url = ws://127.0.0.1:1/ws\n" + content)
    with pytest.raises(ConfigError) as err:
        load(ini, environ={})
    assert str(ini) in str(err.value) and expected in str(err.value)


def test_env_section_and_require_tls_are_read_and_the_template_documents_them(tmp_path):
    ini = tmp_path / "worker.ini"
    with pytest.raises(ConfigMissing):
        load(ini, environ={})
    text = ini.read_text()
    assert "[env]" in text and "allow =" in text and "deny =" in text
    assert "require_tls = false" in text and "JOBTRIGGER_REQUIRE_TLS" in text
    ini.write_text(text.replace("token =", "token = t", 1))
    cfg = load(ini, environ={})
    assert (cfg.env_policy.allow, cfg.env_policy.deny, cfg.require_tls) == ((), (), False)
    assert "PATH" in cfg.env_policy.check({"PATH": "/tmp"})
    ini.write_text(
        "[worker]\ntoken = t\nserver_url = wss://hub:1/ws\nrequire_tls = true\n"
        "[env]\nallow = PythonPath\ndeny = SECRET_*, proxy\n"
    )
    cfg = load(ini, environ={})
    assert cfg.require_tls and cfg.env_policy.allow == ("PYTHONPATH",)
    assert cfg.env_policy.deny == ("SECRET_*", "PROXY")
    # the environment override, consistent with the other JOBTRIGGER_* ones, both ways
    plain = "[worker]\ntoken = t\nserver_url = ws://hub:1/ws\nrequire_tls = true\n"
    ini.write_text(plain)
    assert not load(ini, environ={"JOBTRIGGER_REQUIRE_TLS": "0"}).require_tls
    ini.write_text(plain.replace("true", "false"))
    with pytest.raises(ConfigError, match="JOBTRIGGER_REQUIRE_TLS"):
        load(ini, environ={"JOBTRIGGER_REQUIRE_TLS": "true"})


@pytest.mark.parametrize(
    ("url", "off_host"),
    [
        ("ws://hub.example:8000/ws", True),
        ("ws://10.0.0.5:8000/ws", True),
        ("ws://0.0.0.0:8000/ws", True),
        ("ws://[2001:db8::1]:8000/ws", True),
        ("ws://127.0.0.1:8000/ws", False),
        ("ws://127.8.9.10/ws", False),
        ("ws://[::1]:8000/ws", False),
        ("ws://LocalHost:8000/ws", False),
        ("wss://hub.example/ws", False),
    ],
)
def test_plain_ws_to_another_computer_is_recognised_without_name_lookups(url, off_host):
    assert plain_ws_off_host(url) is off_host
