"""Icons: the app icon is painted (no binary asset to keep in sync), toolbar icons come from the
platform style so they match the OS theme, light or dark."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle


@lru_cache(maxsize=4)
def app_icon(alarm: bool = False) -> QIcon:
    """A clock face with a play mark; red when the system is offline (tray shows the state)."""
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
        if size >= 32:
            f = QFont()
            f.setPixelSize(int(size * 0.2))
        p.end()
        icon.addPixmap(pix)
    return icon


def std_icon(name: str) -> QIcon:
    """A standard icon by QStyle.StandardPixmap name, e.g. 'SP_MediaPlay'."""
    style = QApplication.style()
    return style.standardIcon(getattr(QStyle.StandardPixmap, name))
