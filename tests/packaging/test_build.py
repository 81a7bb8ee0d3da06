"""The PyInstaller programs, built from build.spec and run as an admin would run them.

The frozen worker runs test_job.py through a headless console (real sockets on 127.0.0.1, the CLI
adding the worker with --write-ini and starting the run), from a folder with spaces in its path;
the frozen console opens its window offscreen and runs the sample
job on its own bundled worker.  Run with ``python -m pytest -m packaging tests/packaging``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from desktop import __version__ as console_version
from desktop.localworker import local_name
from desktop.store import queries
from desktop.store.db import open_store
from tests.conftest import timeout
from tests.packaging.conftest import ROOT, Build
from worker import __version__ as worker_version

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

SAMPLE = ROOT / "resources" / "scripts" / "test_job.py"
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "lost"}


def isolated_env(base: Path) -> dict[str, str]:
    """No Python on PATH, and the per-user folders (database, logs, local worker) under BASE."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "JOBTRIGGER_", "VIRTUAL_ENV", "XDG_"))
    }
    env["PATH"] = os.pathsep.join(["/usr/bin", "/bin"]) if os.name == "posix" else env["PATH"]
    env["QT_QPA_PLATFORM"] = "offscreen"
    for name in ("DATA", "STATE", "CONFIG", "CACHE"):
        env[f"XDG_{name}_HOME"] = str(base / "user" / name.lower())
    # Where one-file programs unpack themselves.  A program killed while unpacking leaves its
    # folder behind (the smoke test stops its local worker within a second of starting it).
    temp = base / "temp"
    temp.mkdir(exist_ok=True)
    for name in ("TMPDIR", "TEMP", "TMP"):
        env[name] = str(temp)
    return env


class Proc:
    """A program whose stderr (and stdout) lines are collected by a thread, so a test can wait
    for a line instead of sleeping."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    @property
    def text(self) -> str:
        with self.changed:
            return "".join(self.lines)

    def wait_for(self, pattern: str, seconds: float, count: int = 1) -> re.Match:
        """The COUNTth line matching PATTERN, waiting for it to be printed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout(seconds)
        with self.changed:
            while True:
                found = [m for line in self.lines if (m := regex.search(line))]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(
                        f"{Path(self.argv[0]).name} never printed /{pattern}/ "
                        f"(exit code {self.proc.poll()}):\n{''.join(self.lines)}"
                    )
                self.changed.wait(min(left, 1.0))

    def stop(self, seconds: float = 30) -> int:
        """SIGTERM (what a service manager sends) and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout(seconds))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.reader.join(timeout(10))
            self.proc.stdout.close()
        return code


def run(argv: list, *, env: dict[str, str], cwd: Path, seconds: float = 60):
    """Run to the end; on a timeout kill the whole tree (a one-file program is a bootloader
    with a child, and a hung job may have pool processes) so nothing outlives the test."""
    proc = subprocess.Popen(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    try:
        out, err = proc.communicate(timeout=timeout(seconds))
    except subprocess.TimeoutExpired:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def python_cli(url: str, *args, env: dict[str, str], cwd: Path):
    """The unfrozen console's CLI (the test's Python runs it; the worker is the frozen part)."""
    env = {**env, "PYTHONPATH": str(ROOT)}
    result = run([sys.executable, "-m", "desktop", "--db", url, *args], env=env, cwd=cwd)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


def wait_for_run_end(url: str, run_id: int, seconds: float):
    """The run is written by other processes; there is no event to await across them."""
    deadline = time.monotonic() + timeout(seconds)
    database = open_store(url)
    try:
        while True:
            record = queries.get_run(run_id)
            if record is not None and record.state in TERMINAL:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {record and record.state}")
            time.sleep(0.2)
    finally:
        database.close()


def install_worker(build: Build, folder: Path) -> Path:
    """What an admin does on a host: copy the one file (and a scripts folder) somewhere."""
    folder.mkdir(parents=True)
    exe = folder / build.worker.name
    shutil.copy2(build.worker, exe)
    return exe


# --- the worker ---------------------------------------------------------------------------------


def test_worker_version(built, tmp_path):
    result = run([built.worker, "--version"], env=isolated_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Job Trigger worker {worker_version}"


def test_worker_first_start_writes_the_template_next_to_itself(built, tmp_path):
    exe = install_worker(built, tmp_path / "Job Trigger Worker")  # a path with spaces
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = run([exe], env=isolated_env(tmp_path), cwd=elsewhere)
    ini = exe.parent / "worker.ini"
    assert result.returncode == 1
    assert f"A template was written to {ini}" in result.stderr
    assert "fill in `token`" in result.stderr
    assert "Traceback" not in result.stderr
    text = ini.read_text(encoding="utf-8")
    assert "[worker]" in text and "\ntoken =\n" in text
    assert not (elsewhere / "worker.ini").exists()
    # The template itself is refused until a token is filled in, with the key named.
    result = run([exe], env=isolated_env(tmp_path), cwd=elsewhere)
    assert result.returncode == 2
    assert "Configuration error" in result.stderr and "token is empty" in result.stderr


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("token = abc\n", "comes before any section"),
        ("[worker]\ntoken = abc\nslots = many\n", "slots = 'many' is not an integer"),
        ("[worker]\ntoken = abc\nserver_url = http://x:8000\n", "must start with ws:// or wss://"),
    ],
)
def test_worker_broken_ini_is_exit_code_2_with_the_reason(built, tmp_path, ini, message):
    exe = install_worker(built, tmp_path / "w")
    (exe.parent / "worker.ini").write_text(ini, encoding="utf-8")
    result = run([exe], env=isolated_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("Configuration error: ")
    assert message in result.stderr
    assert str(exe.parent / "worker.ini") in result.stderr
    assert "Traceback" not in result.stderr


PROBE = r"""
import importlib, json, sys
forbidden = {}
for name in ("PySide6", "shiboken6", "qasync", "peewee", "psycopg2", "desktop"):
    try:
        importlib.import_module(name)
        forbidden[name] = "imported"
    except ImportError:
        pass
wanted = %s
missing = {}
for name in wanted:
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing[name] = repr(exc)
import bz2, datetime, decimal, hashlib, lzma, sqlite3, ssl, unicodedata, zoneinfo
hk = datetime.datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Hong_Kong"))
checks = {
    "sqlite": sqlite3.connect(":memory:").execute("select 6 * 7").fetchone()[0],
    "ssl": ssl.create_default_context().protocol.name,
    "sha256": hashlib.sha256(b"").hexdigest()[:8],
    "zone": hk.utcoffset().total_seconds(),
    "lzma": lzma.decompress(lzma.compress(b"x")) == b"x",
    "bz2": bz2.decompress(bz2.compress(b"x")) == b"x",
    "decimal": str(decimal.Decimal("0.1") + decimal.Decimal("0.2")),
    "unicode": unicodedata.name("\u00e9"),
    "utf8_mode": sys.flags.utf8_mode,
    "argv": sys.argv[1:],
}
print("h\u00e9llo \u2713")
print(json.dumps({"forbidden": forbidden, "missing": missing, "checks": checks}))
"""

# What a .py job typically imports; docs/PACKAGING.md promises all of it.
TYPICAL_STDLIB = [
    "argparse", "asyncio", "base64", "calendar", "collections", "concurrent.futures",
    "configparser", "contextlib", "csv", "ctypes", "dataclasses", "difflib", "email.mime.text",
    "email.utils", "fnmatch", "ftplib", "getpass", "glob", "gzip", "hmac", "html.parser",
    "http.client", "http.server", "imaplib", "ipaddress", "itertools", "json", "locale",
    "logging.handlers", "mimetypes", "multiprocessing", "netrc", "pathlib", "pickle", "platform",
    "poplib", "pprint", "queue", "random", "secrets", "shelve", "shlex", "shutil", "smtplib",
    "socket", "socketserver", "statistics", "string", "struct", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "traceback", "typing", "unittest",
    "urllib.parse", "urllib.request", "uuid", "wsgiref.simple_server", "xml.dom.minidom",
    "xml.etree.ElementTree", "xml.sax", "xmlrpc.client", "zipfile", "zlib",
]  # fmt: skip


def test_worker_runs_scripts_with_its_bundled_python_and_no_console_stack(built, tmp_path):
    probe = tmp_path / "probe dir" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(PROBE % json.dumps(TYPICAL_STDLIB), encoding="utf-8")
    result = subprocess.run(
        [str(built.worker), "--run-script", str(probe), "--flag", "two words"],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        capture_output=True,
        timeout=timeout(60),
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    first, report = result.stdout.decode("utf-8").splitlines()[-2:]
    assert first == "h\u00e9llo \u2713"  # UTF-8 on the pipe, whatever the locale
    data = json.loads(report)
    assert data["forbidden"] == {}, "the worker bundle must hold no console modules"
    assert data["missing"] == {}
    assert data["checks"] == {
        "sqlite": 42,
        "ssl": "PROTOCOL_TLS_CLIENT",
        "sha256": "e3b0c442",
        "zone": 8 * 3600.0,  # the bundled tzdata
        "lzma": True,
        "bz2": True,
        "decimal": "0.3",
        "unicode": "LATIN SMALL LETTER E WITH ACUTE",
        "utf8_mode": 1,
        "argv": ["--flag", "two words"],  # arguments that look like options reach the script
    }


MULTIPROCESSING = """
import multiprocessing, sys


def square(x):
    return x * x


if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    with multiprocessing.Pool(2) as pool:
        print(pool.map(square, [1, 2, 3]))
"""


@pytest.mark.parametrize("method", ["spawn", "fork"] if os.name == "posix" else ["spawn"])
def test_worker_scripts_may_use_multiprocessing(built, tmp_path, method):
    """spawn (the Windows default) restarts the worker executable for each pool process."""
    script = tmp_path / "pool.py"
    script.write_text(MULTIPROCESSING, encoding="utf-8")
    result = run(
        [built.worker, "--run-script", script, method], env=isolated_env(tmp_path), cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (0, "[1, 4, 9]\n"), result.stderr


def test_worker_run_script_passes_output_and_exit_code(built, tmp_path):
    result = run(
        [built.worker, "--run-script", SAMPLE, "3", "2", "0"],
        env=isolated_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 3
    assert result.stdout.splitlines() == [
        "test_job starting (exit code will be 3)",
        "line 1 of 2",
        "line 2 of 2",
        "test_job done",
    ]
    assert result.stderr == "test_job: this line goes to stderr\n"


def start_headless(url: str, port: int, env: dict[str, str]) -> Proc:
    """The unfrozen headless console (the frozen one is tested below)."""
    options = ["--headless", "--host", "127.0.0.1", "--port", str(port), "--no-local-worker"]
    console = Proc(
        [sys.executable, "-m", "desktop", "--db", url, *options],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    console.wait_for(r"Job Trigger headless: hub at ws://", 60)
    return console


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SAMPLE_JOB = {
    "format": "jobtrigger-jobs",
    "version": 1,
    "jobs": [
        {
            "name": "sample",
            "script": "test_job.py",
            "args": ["3", "4", "0.05"],
            "schedule": {"kind": "manual"},
            "target_kind": "tag",
            "target_value": "win",
        }
    ],
}


def run_sample(url: str, env: dict[str, str], cwd: Path) -> str:
    """Run the job through the CLI; check the outcome and every line; return `runs show`."""
    out = python_cli(url, "run", "sample", env=env, cwd=cwd)
    run_id = int(re.search(r"run (\d+)", out).group(1))
    record = wait_for_run_end(url, run_id, 60)
    assert (record.state, record.exit_code, record.worker_name) == ("failed", 3, "host-01")
    shown = python_cli(url, "runs", "show", str(run_id), env=env, cwd=cwd)
    output = shown.split("--- output", 1)[1].splitlines()[1:]
    # stdout and stderr are separate pipes, so only each stream's own order is fixed
    assert [line for line in output if not line.startswith("[stderr]")] == [
        "test_job starting (exit code will be 3)",
        "line 1 of 4",
        "line 2 of 4",
        "line 3 of 4",
        "line 4 of 4",
        "test_job done",
    ]
    assert [line for line in output if line.startswith("[stderr]")] == [
        "[stderr] test_job: this line goes to stderr"
    ]
    assert re.search(r"exit code\s+3", shown)
    return shown


def test_frozen_worker_runs_test_job_for_a_headless_console(built, tmp_path):
    """The issue's scenario: the admin adds the worker with --write-ini and imports a job, the
    frozen worker is started from its folder with no arguments (a double-click) before the
    console is up and keeps retrying; the console starts on 127.0.0.1, the job runs through the
    CLI; the console restarts and the worker reconnects and runs it again; SIGTERM stops it."""
    env = isolated_env(tmp_path)
    url = f"sqlite:///{tmp_path / 'jt.db'}"
    port = free_port()
    hub = f"ws://127.0.0.1:{port}/ws/heartbeat"
    exe = install_worker(built, tmp_path / "Program Files" / "Job Trigger Worker")
    (exe.parent / "scripts").mkdir()
    shutil.copy2(SAMPLE, exe.parent / "scripts")
    out = python_cli(
        url, "workers", "add", "host-01", "--tags", "win",
        "--write-ini", exe.parent / "worker.ini", "--server-url", hub,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "host-01 added" in out
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps(SAMPLE_JOB), encoding="utf-8")
    assert "added:     sample" in python_cli(url, "jobs", "import", jobs, env=env, cwd=tmp_path)

    worker = Proc([str(exe)], cwd=tmp_path, env=env)
    console = None
    try:
        worker.wait_for(r"Cannot reach the console at ws://127\.0\.0\.1:\d+.*; retrying", 60)
        console = start_headless(url, port, env)
        worker.wait_for(r"Connected to ws://127\.0\.0\.1", 60)
        run_sample(url, env, tmp_path)

        assert console.stop() == 0, console.text
        worker.wait_for(r"Connection to .* closed .*; reconnecting", 60)
        console = start_headless(url, port, env)
        worker.wait_for(r"Connected to ws://127\.0\.0\.1", 60, count=2)
        run_sample(url, env, tmp_path)

        assert worker.stop() == 0  # clean shutdown on SIGTERM
        assert "Worker stopped" in worker.text
        assert "Traceback" not in worker.text
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.stop()
        code = console.stop() if console is not None else 0
    assert code == 0, console.text


# --- the console --------------------------------------------------------------------------------


def test_console_version_from_both_executables(built, tmp_path):
    for exe in (built.cli, built.console):
        result = run([exe, "--version"], env=isolated_env(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"Job Trigger {console_version}"


def test_console_bad_database_is_one_clear_line(built, tmp_path):
    result = run(
        [built.cli, "--db", "mysql://x/y", "--headless", "--port", "0"],
        env=isolated_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: cannot open the database: database URL scheme 'mysql' is not supported; "
        "use sqlite:/// or postgresql://"
    )


def test_console_smoke_test_opens_the_window_offscreen(built, tmp_path):
    env = isolated_env(tmp_path)
    result = run([built.console, "--smoke-test", "--port", "0"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"smoke test: window \d+x\d+, 1 job, hub ws://", result.stdout)
    # its database in the user's data folder, and its log in the user's log folder
    data = Path(env["XDG_DATA_HOME"]) / "JobTrigger"
    assert list(data.glob("*.db")), sorted(p.name for p in data.iterdir())
    assert list((Path(env["XDG_STATE_HOME"]) / "JobTrigger").rglob("console.log"))


def test_frozen_console_runs_the_sample_job_on_its_bundled_worker(built, tmp_path):
    """No --db, no Python: the console's defaults, its resources (the seeded sample script) and
    the worker executable next to it; then SIGTERM stops the console and its worker."""
    env = isolated_env(tmp_path)
    console = Proc([str(built.cli), "--headless", "--port", "0"], cwd=tmp_path, env=env)
    children: list[psutil.Process] = []
    try:
        console.wait_for(r"hub at ws://", 60)
        dbs = list((Path(env["XDG_DATA_HOME"]) / "JobTrigger").glob("*.db"))
        assert len(dbs) == 1
        url = f"sqlite:///{dbs[0]}"
        result = run([built.cli, "run", "test_job"], env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        run_id = int(re.search(r"run (\d+)", result.stdout).group(1))
        record = wait_for_run_end(url, run_id, 90)
        assert (record.state, record.exit_code) == ("succeeded", 0)
        assert record.worker_name == local_name()
        children = psutil.Process(console.proc.pid).children(recursive=True)
        assert any(built.worker.name in " ".join(c.cmdline()) for c in children), children
        shown = run([built.cli, "runs", "show", str(run_id)], env=env, cwd=tmp_path).stdout
        assert "line 3 of 3" in shown and "test_job done" in shown
    finally:
        code = console.stop()
    assert code == 0, console.text
    _gone, alive = psutil.wait_procs(children, timeout(15))
    assert not alive, f"left running after the console stopped: {alive}"
    assert "Traceback" not in console.text
