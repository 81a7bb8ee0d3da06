"""Icons: the app icon from resources/icons (painted here when the file is missing, and for the
red "offline" tray state); toolbar icons come from the platform style so they match the OS theme,
light or dark."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from desktop.paths import resources_dir


def resource_path(*parts: str) -> Path:
    """A file under resources/ (checkout, installed package or PyInstaller bundle)."""
    return resources_dir().joinpath(*parts)


@lru_cache(maxsize=4)
def app_icon(alarm: bool = False) -> QIcon:
    """The clock icon; red when the system is offline (the tray shows the state)."""
    path = resource_path("icons", "console.png")
    if not alarm and path.is_file():
        icon = QIcon(str(path))
        if not icon.isNull():
            return icon
    icon = QIcon()
    for size in (16, 32, 64, 128):
        pix = QPixmap(size, size)
        pix.fill(Qt.GlobalColor.transparent)
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor("#d64541" if alarm else "#2f6fbf"))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(QRectF(size * 0.04, size * 0.04, size * 0.92, size * 0.92))
        pen = QPen(QColor("white"), max(1.5, size * 0.09))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        c = size / 2
        p.drawLine(int(c), int(c), int(c), int(size * 0.22))
        p.drawLine(int(c), int(c), int(size * 0.72), int(c))
        p.end()
        icon.addPixmap(pix)
    return icon


def std_icon(name: str) -> QIcon:
    """A standard icon by QStyle.StandardPixmap name, e.g. 'SP_MediaPlay'."""
    style = QApplication.style()
    return style.standardIcon(getattr(QStyle.StandardPixmap, name))
