"""Build both programs once per session with PyInstaller (build.spec) into a temporary folder.

Set JOBTRIGGER_PACKAGING_DIST to the dist folder of an earlier `pyinstaller build.spec` to test
that build instead of making a new one (handy while working on the tests themselves).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
EXE = ".exe" if sys.platform == "win32" else ""


@dataclass(frozen=True)
class Build:
    dist: Path
    seconds: float | None  # None: an earlier build was reused

    @property
    def worker(self) -> Path:
        return self.dist / f"jobtrigger-worker{EXE}"

    @property
    def console_dir(self) -> Path:
        return self.dist / "jobtrigger-console"

    @property
    def console(self) -> Path:
        """The windowed program (no console window on Windows)."""
        return self.console_dir / f"jobtrigger-console{EXE}"

    @property
    def cli(self) -> Path:
        """The same program with a console: CLI, --version, --headless."""
        return self.console_dir / f"jobtrigger{EXE}"


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def report(build: Build) -> str:
    mb = 1024 * 1024
    took = "reused" if build.seconds is None else f"{build.seconds:.0f} s"
    files = sum(1 for f in build.console_dir.rglob("*") if f.is_file() and not f.is_symlink())
    return (
        f"PyInstaller build ({took}): worker one-file {build.worker.stat().st_size / mb:.1f} MB; "
        f"console folder {folder_size(build.console_dir) / mb:.0f} MB in {files} files "
        "(including its copy of the worker)"
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory, request) -> Build:
    reuse = os.environ.get("JOBTRIGGER_PACKAGING_DIST")
    if reuse:
        build = Build(Path(reuse).resolve(), None)
    else:
        base = tmp_path_factory.mktemp("pyinstaller")
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "PyInstaller",
                "--noconfirm",
                "--log-level",
                "WARN",
                "--distpath",
                str(base / "dist"),  # see below: the programs run from a path with spaces
                "--workpath",
                str(base / "work"),
                str(ROOT / "build.spec"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout(900),
        )
        assert result.returncode == 0, f"pyinstaller failed:\n{result.stdout}\n{result.stderr}"
        build = Build(base / "dist", time.monotonic() - started)
        # Admins install under "Program Files": run everything from a folder with spaces.
        spaced = base / "Job Trigger build" / "dist"
        spaced.parent.mkdir()
        (base / "dist").rename(spaced)
        build = Build(spaced, build.seconds)
    for path in (build.worker, build.console, build.cli, build.console_dir / build.worker.name):
        assert path.is_file(), f"the build did not produce {path}"
    line = report(build)
    (build.dist.parent / "build-report.txt").write_text(line + "\n", encoding="utf-8")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    return build
