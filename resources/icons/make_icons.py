"""Paint the program icons and write them as PNG and multi-size ICO files.

    QT_QPA_PLATFORM=offscreen python resources/icons/make_icons.py

The outputs are committed (PyInstaller needs a .ico for the Windows executables and cannot run
Qt while building), so run this only after changing the drawing.  The console icon is the same
clock as desktop/ui/icons.py paints at run time; the worker's is a terminal prompt on green, so
the two programs are told apart in Explorer and the task bar.

Qt's ICO writer stores a single image per file, and Windows picks the best of several sizes, so
the ICO container (a 6-byte header, one 16-byte entry per image, PNG payloads, as Windows Vista
and later read them) is assembled here from Qt-rendered PNGs.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPen

HERE = Path(__file__).resolve().parent
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def _canvas(size: int) -> tuple[QImage, QPainter]:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    return image, p


def console_icon(size: int) -> QImage:
    """Blue clock face with two hands, as desktop/ui/icons.app_icon."""
    image, p = _canvas(size)
    p.setBrush(QColor("#2f6fbf"))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(QRectF(size * 0.04, size * 0.04, size * 0.92, size * 0.92))
    pen = QPen(QColor("white"), max(1.5, size * 0.09))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    c = size / 2
    p.drawLine(QPointF(c, c), QPointF(c, size * 0.22))
    p.drawLine(QPointF(c, c), QPointF(size * 0.72, c))
    p.end()
    return image


def worker_icon(size: int) -> QImage:
    """Green rounded square with a ">_" prompt: the program that runs scripts."""
    image, p = _canvas(size)
    p.setBrush(QColor("#2e8b57"))
    p.setPen(Qt.PenStyle.NoPen)
    r = size * 0.18
    p.drawRoundedRect(QRectF(size * 0.04, size * 0.04, size * 0.92, size * 0.92), r, r)
    pen = QPen(QColor("white"), max(1.5, size * 0.1))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.drawPolyline(
        [QPointF(size * 0.24, size * 0.3), QPointF(size * 0.46, size * 0.5),
         QPointF(size * 0.24, size * 0.7)]
    )  # fmt: skip
    p.drawLine(QPointF(size * 0.54, size * 0.72), QPointF(size * 0.78, size * 0.72))
    p.end()
    return image


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buf.close()
    return bytes(data)


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO file holding one PNG per size (a width/height byte of 0 means 256)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    entries, payload = b"", b""
    offset = 6 + 16 * len(pngs)
    for size, data in sorted(pngs.items()):
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        payload += data
        offset += len(data)
    return header + entries + payload


def write(name: str, paint) -> None:
    pngs = {size: png_bytes(paint(size)) for size in ICO_SIZES}
    (HERE / f"{name}.ico").write_bytes(ico_bytes(pngs))
    (HERE / f"{name}.png").write_bytes(pngs[256])
    print(f"wrote {name}.ico ({len(ICO_SIZES)} sizes) and {name}.png")


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    write("console", console_icon)
    write("worker", worker_icon)
    return 0


if __name__ == "__main__":
    sys.exit(main())
