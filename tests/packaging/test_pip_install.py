"""`pip install .` (what `pipx install .` does in its own venv) gives working `jobtrigger` and
`jobtrigger-worker` commands, with the resources inside the installed package.  The venv sees
this interpreter's packages for the dependencies; the project itself is installed --no-deps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_gives_both_commands(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)],
        check=True,
        timeout=timeout(600),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "elsewhere"  # not the checkout: the installed package must be used
    out.mkdir()
    console = subprocess.run(
        [str(bindir / "jobtrigger"), "jobs", "--help"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert console.returncode == 0, console.stderr
    assert "usage: jobtrigger jobs" in console.stdout
    worker = subprocess.run(
        [str(bindir / "jobtrigger-worker"), "--version"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert worker.returncode == 0 and "Job Trigger worker" in worker.stdout, worker.stderr
    where = subprocess.run(
        [str(py), "-c", "import desktop.paths as p; print(p.resources_dir())"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    resources = Path(where)
    assert resources.is_relative_to(venv), where
    assert (resources / "icons" / "console.png").is_file()
    assert (resources / "scripts" / "test_job.py").is_file()
