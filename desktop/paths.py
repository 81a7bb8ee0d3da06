"""Where resources/ (icons, the sample job script) is: a PyInstaller bundle, a source checkout,
or an installed package (pip/pipx put it at desktop/resources)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    checkout = _HERE.parent / "resources"
    if checkout.is_dir():
        return checkout
    return _HERE / "resources"
