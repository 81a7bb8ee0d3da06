"""The QApplication and the qasync loop over it (the one asyncio loop of the console)."""

from __future__ import annotations

import sys

import qasync
from PySide6.QtWidgets import QApplication

from desktop.ui.icons import app_icon


def create_app_and_loop() -> tuple[QApplication, qasync.QEventLoop]:
    existing = QApplication.instance()
    if existing is None:
        app = QApplication(sys.argv[:1])
    elif isinstance(existing, QApplication):
        app = existing
    else:  # widgets need a QApplication; Qt allows one application object per process
        raise RuntimeError(f"a {type(existing).__name__} already exists, not a QApplication")
    app.setApplicationName("Job Trigger")
    app.setApplicationDisplayName("Job Trigger")
    # our main() decides when to quit (tray, Quit action), not the last window closing
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(app_icon())
    return app, qasync.QEventLoop(app)
