"""The console in a real X window (Xvfb, xcb platform, real fonts, 100 %) at 1280x800 and
1920x1080: nothing clipped, no horizontal scrollbar at rest, the editor inside the main window,
the preview shows all its rows, the toolbar stays on the Workers tab, no 'is required' before
input, a one-run chart that reads.  The checks run in a child process (tests/ui/
realwindow_probe.py), since this process's QApplication is offscreen.

JOBTRIGGER_SCREENSHOTS=1 writes the 1280x800 pictures to docs/screenshots/ for the README.
Xvfb is required: .ci/run installs it; its absence is a set-up error, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "screenshots"


@pytest.fixture
def xvfb(request, tmp_path):
    """An Xvfb server of the given size on a display number it picks itself (-displayfd)."""
    size = request.param
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.fail(
            "Xvfb is not installed; the real-window tests need it (Debian: apt-get install "
            "xvfb; .ci/run installs it)"
        )
    read, write = os.pipe()
    log = (tmp_path / "xvfb.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "-displayfd",
            str(write),
            "-screen",
            "0",
            f"{size}x24",
            "-nolisten",
            "tcp",
            "-dpi",
            "96",
        ],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number:
            proc.kill()
            proc.wait()
            text = (tmp_path / "xvfb.log").read_text(errors="replace")[-500:]
            raise AssertionError(f"Xvfb did not start: {text}")
        yield size, f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("xvfb", ["1280x800", "1920x1080"], indirect=True)
def test_the_console_in_a_real_window(xvfb, tmp_path):
    size, display = xvfb
    shots = (
        DOCS
        if os.environ.get("JOBTRIGGER_SCREENSHOTS") == "1" and size == "1280x800"
        else (tmp_path / "shots")
    )
    shots.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("QT_") and k not in ("WAYLAND_DISPLAY", "PYTEST_ADDOPTS")
    }
    env.update(
        DISPLAY=display,
        QT_QPA_PLATFORM="xcb",
        QT_SCALE_FACTOR="1",
        QT_ENABLE_HIGHDPI_SCALING="0",
        JOBTRIGGER_PROBE_SIZE=size,
        JOBTRIGGER_PROBE_OUT=str(shots),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "python_files=realwindow_probe.py",
            "-o",
            "python_functions=probe_",
            "--basetemp",
            str(tmp_path / "probe"),
            "tests/ui/realwindow_probe.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(240),
    )
    assert done.returncode == 0, (done.stdout[-6000:], done.stderr[-2000:])
    assert "1 passed" in done.stdout
    for name in ("main-window", "job-editor", "workers-panel"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
