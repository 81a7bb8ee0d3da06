"""Message boxes for startup problems, built here so desktop/app.py imports no Qt widgets."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from desktop.ui.icons import app_icon


def fatal_box(title: str, text: str) -> QMessageBox:
    box = QMessageBox()
    box.setWindowIcon(app_icon(True))
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(f"Job Trigger — {title}")
    box.setText(title)
    box.setInformativeText(text)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box
