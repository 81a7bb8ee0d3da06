"""About: the versions an admin pastes into a bug report."""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QMessageBox, QWidget

from desktop import __version__


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {
        "Job Trigger": __version__,
        "Python": sys.version.split()[0],
        "Qt": qVersion(),
        "PySide6": PySide6.__version__,
        "qasync": _dist_version("qasync"),
        "websockets": _dist_version("websockets"),
        "peewee": _dist_version("peewee"),
        "OS": platform.platform(),
    }


def redact_url(url: str) -> str:
    """A database URL without its password (an about box gets pasted into bug reports)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def about_box(parent: QWidget | None, db_url: str = "", hub_url: str = "") -> QMessageBox:
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in versions().items())
    extra = ""
    if db_url:
        extra += f"<p>Database: <code>{redact_url(db_url)}</code></p>"
    if hub_url:
        extra += f"<p>Hub: <code>{hub_url}</code></p>"
    box = QMessageBox(parent)
    box.setWindowTitle("About Job Trigger")
    box.setText(
        "<h3>Job Trigger</h3><p>A desktop job scheduler: the console runs the scheduler and "
        f"the hub; workers run allow-listed scripts.</p><table>{rows}</table>{extra}"
    )
    return box
