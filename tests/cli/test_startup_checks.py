"""The window's start-up check: no display, no X server, or a Qt platform plugin that cannot
load ends in one sentence naming what is missing and pointing at --headless, exit code 2,
before Qt aborts and before anything is created on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.displaycheck import (
    DEBIAN_PACKAGES,
    display_problem,
    missing_libraries,
    platform_plugin,
    x_server_answers,
)
from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]


def start_window(tmp_path: Path, **env_over: str) -> tuple[subprocess.CompletedProcess, Path]:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "JOBTRIGGER_DB_URL")
        and not k.startswith("XDG_")
    }
    env.update(HOME=str(home), **env_over)
    done = subprocess.run(
        [sys.executable, "-m", "desktop"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    return done, home


def test_no_display_is_one_sentence_and_exit_2_and_creates_nothing(tmp_path):
    done, home = start_window(tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "neither DISPLAY nor WAYLAND_DISPLAY is set" in lines[0] and "--headless" in lines[0]
    assert list(home.rglob("*")) == []  # no log folder, no database


def free_display_number() -> int:
    n = 90
    while Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
        n += 1
    return n


def test_a_display_without_an_x_server_is_named(tmp_path):
    n = free_display_number()
    done, home = start_window(tmp_path, DISPLAY=f":{n}")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: No X server answers on DISPLAY=:{n}; start the desktop session (or check "
        "DISPLAY), or start it without a window with --headless."
    )
    assert list(home.rglob("*")) == []


def test_x_server_answers_over_tcp_on_loopback():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        if port < 6000:
            pytest.skip("the free port is below the X11 range")
        assert x_server_answers(f"127.0.0.1:{port - 6000}")
    assert not x_server_answers(f"127.0.0.1:{port - 6000}", timeout=1)


@pytest.mark.parametrize(
    "env, words",
    [
        ({}, "neither DISPLAY nor WAYLAND_DISPLAY"),
        ({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, "DISPLAY is not set"),
        ({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":0"}, "WAYLAND_DISPLAY is not set"),
    ],
)
def test_missing_display_variables(env, words):
    problem = display_problem(env, system="linux", find_plugin=lambda n: None)
    assert words in problem and "--headless" in problem and "\n" not in problem


@pytest.mark.parametrize("platform", ["offscreen", "minimal", "vnc:size=800x600"])
def test_platforms_without_a_display_need_none(platform):
    assert display_problem({"QT_QPA_PLATFORM": platform}, system="linux") is None


def test_other_systems_are_not_checked():
    assert display_problem({}, system="win32") is None
    assert display_problem({}, system="darwin") is None


def test_a_missing_xcb_library_is_named_with_its_package():
    problem = display_problem(
        {"WAYLAND_DISPLAY": "", "DISPLAY": ":0"},
        system="linux",
        find_plugin=lambda n: Path(f"/plugins/libq{n}.so"),
        missing=lambda p: ["libxcb-cursor.so.0"],
    )
    assert problem == (
        "Qt's xcb platform plugin cannot load because the system library is missing: "
        "libxcb-cursor.so.0 (Debian/Ubuntu: apt-get install libxcb-cursor0); install it, "
        "or start it without a window with --headless."
    )


def test_several_missing_libraries_and_an_unknown_one():
    problem = display_problem(
        {"DISPLAY": ":0"},
        system="linux",
        find_plugin=lambda n: Path("/p"),
        missing=lambda p: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libodd.so.3"],
    )
    assert "libraries are missing: libxcb-icccm.so.4, libxcb-keysyms.so.1, libodd.so.3" in problem
    assert "(Debian/Ubuntu: apt-get install libxcb-icccm4 libxcb-keysyms1)" in problem


def test_a_plugin_missing_from_pyside_is_named():
    problem = display_problem({"DISPLAY": ":0"}, system="linux", find_plugin=lambda n: None)
    assert "xcb platform plugin is not installed" in problem


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PySide6's xcb plugin: Linux")
def test_this_machine_has_every_library_of_the_real_xcb_plugin():
    """.ci/run installs the packages the README lists; ldd on the real plugin finds them all,
    and every library it links against has its package in the list."""
    plugin = platform_plugin("xcb")
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert missing_libraries(plugin) == []


def test_the_readme_lists_every_package_the_check_can_name():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        p
        for p in set(DEBIAN_PACKAGES.values())
        - {"libwayland-client0", "libwayland-cursor0", "libwayland-egl1"}
        if p not in readme
    ]
    assert missing == []
