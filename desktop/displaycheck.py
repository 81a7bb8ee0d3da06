"""Before Qt starts: is there a display, and can Qt's platform plugin load?

Without one Qt prints its own multi-line message and aborts the process (exit 134), or names a
library that is not the missing one.  This check says in one sentence what is missing and points
at --headless; the caller exits with code 2.  Linux only: Windows and macOS always have their
platform plugin and a display.  No Qt is imported here (importing it is what we guard).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# Platforms that need no display server (tests, VNC, framebuffer).
_NO_DISPLAY_NEEDED = {
    "offscreen",
    "minimal",
    "vnc",
    "linuxfb",
    "eglfs",
    "minimalegl",
    "vkkhrdisplay",
}

# What the xcb plugin of PySide6 links against (ldd on libqxcb.so) -> the Debian/Ubuntu package.
DEBIAN_PACKAGES = {
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)
_DLERROR = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")

HEADLESS_HINT = "or start it without a window with --headless"


def platform_plugin(name: str) -> Path | None:
    """PySide6's plugin file for platform `name`, found without importing Qt."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        plugin = Path(root, "Qt", "plugins", "platforms", f"libq{name}.so")
        if plugin.is_file():
            return plugin
    return None


def missing_libraries(plugin: Path) -> list[str]:
    """The shared libraries `plugin` needs and cannot find, in ldd's order (first the plugin's
    own).  Without ldd, loading the plugin names the first one the loader misses."""
    ldd = shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run(
                [ldd, str(plugin)], capture_output=True, text=True, timeout=20, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None:
            return list(dict.fromkeys(_NOT_FOUND.findall(out)))
    try:
        ctypes.CDLL(str(plugin))
    except OSError as exc:
        m = _DLERROR.search(str(exc))
        return [m.group(1)] if m else [str(exc)]
    return []


def x_server_answers(display: str, timeout: float = 2.0) -> bool:
    """Whether something accepts a connection where `display` (':0', 'host:10.0') points.  A
    form we do not understand counts as answering: Qt will say what is wrong with it."""
    m = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", display)
    if m:
        path = f"/tmp/.X11-unix/X{m.group(1)}"
        for address in ("\0" + path, path):  # the abstract socket first, as libxcb does
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        return False
    m = re.fullmatch(r"([\w.\-]+|\[[0-9a-fA-F:]+\]):(\d+)(?:\.\d+)?", display)
    if m:
        try:
            with socket.create_connection(
                (m.group(1).strip("[]"), 6000 + int(m.group(2))), timeout
            ):
                return True
        except OSError:
            return False
    return True


def display_problem(
    env: Mapping[str, str] = os.environ,
    *,
    system: str = sys.platform,
    find_plugin: Callable[[str], Path | None] = platform_plugin,
    missing: Callable[[Path], list[str]] = missing_libraries,
) -> str | None:
    """One sentence saying why a window cannot open here, or None when it can (as far as we can
    tell without starting Qt)."""
    if not system.startswith("linux"):
        return None
    wanted = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    if wanted in _NO_DISPLAY_NEEDED:
        return None
    has_x = bool(env.get("DISPLAY"))
    has_wayland = bool(env.get("WAYLAND_DISPLAY"))
    if wanted == "xcb" and not has_x:
        return (
            "No X display: DISPLAY is not set; run Job Trigger in a desktop session, "
            f"{HEADLESS_HINT}."
        )
    if wanted == "wayland" and not has_wayland:
        return (
            "No Wayland display: WAYLAND_DISPLAY is not set; run Job Trigger in a desktop "
            f"session, {HEADLESS_HINT}."
        )
    if not has_x and not has_wayland:
        return (
            "No display: neither DISPLAY nor WAYLAND_DISPLAY is set; run Job Trigger in a desktop "
            f"session (or over ssh -X), {HEADLESS_HINT}."
        )
    name = wanted or ("xcb" if has_x else "wayland")
    plugin = find_plugin(name)
    if plugin is None:
        return (
            f"Qt's {name} platform plugin is not installed with PySide6; reinstall "
            f"PySide6-Essentials, {HEADLESS_HINT}."
        )
    libs = missing(plugin)
    if not libs:
        if name == "xcb" and not x_server_answers(env.get("DISPLAY", "")):
            return (
                f"No X server answers on DISPLAY={env.get('DISPLAY')}; start the desktop "
                f"session (or check DISPLAY), {HEADLESS_HINT}."
            )
        return None
    packages = [DEBIAN_PACKAGES[lib] for lib in libs if lib in DEBIAN_PACKAGES]
    install = f" (Debian/Ubuntu: apt-get install {' '.join(packages)})" if packages else ""
    what = ", ".join(libs)
    noun = "library is" if len(libs) == 1 else "libraries are"
    return (
        f"Qt's {name} platform plugin cannot load because the system {noun} missing: {what}"
        f"{install}; install {'it' if len(libs) == 1 else 'them'}, {HEADLESS_HINT}."
    )
