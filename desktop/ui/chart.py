"""A small bar chart of a job's recent runs: height = duration, colour = outcome, oldest left.

PySide6-Essentials has no QtCharts; a few rectangles painted with QPainter say enough.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.ui.formatting import format_duration, outcome_colour, outcome_label
from desktop.ui.rows import RunRow

MAX_BARS = 50


class RunChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs: list[RunRow] = []
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Recent runs: bar height is the duration, colour the outcome")

    def sizeHint(self) -> QSize:
        return QSize(400, 80)

    def set_runs(self, runs: Sequence[RunRow]) -> None:
        """Runs newest first (as the runs table holds them); only finished or running ones."""
        self._runs = list(runs[:MAX_BARS])[::-1]
        self.update()

    def bars(self) -> list[tuple[float, str]]:
        """(duration seconds, state) per bar, oldest first: what paintEvent draws."""
        return [(r.duration or 0.0, r.state) for r in self._runs]

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        rect = self.rect().adjusted(4, 16, -4, -4)
        painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
        bars = self.bars()
        if not bars:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No runs yet")
            return
        longest = max(d for d, _ in bars) or 1.0
        painter.drawText(4, 12, f"Last {len(bars)} runs · longest {format_duration(longest)}")
        slot = rect.width() / MAX_BARS
        width = max(2.0, slot * 0.7)
        x0 = rect.right() - slot * len(bars)
        painter.setPen(Qt.PenStyle.NoPen)
        for i, (duration, state) in enumerate(bars):
            # a visible stub even for instant or never-started runs, so every outcome shows
            height = max(3.0, rect.height() * duration / longest)
            painter.setBrush(QColor(outcome_colour(state) or "#8c8c8c"))
            x = x0 + i * slot + (slot - width) / 2
            painter.drawRoundedRect(QRectF(x, rect.bottom() - height, width, height), 1.5, 1.5)
        painter.end()

    def tooltip_for(self, x: float) -> str:
        bars = self._runs
        if not bars:
            return ""
        rect = self.rect().adjusted(4, 16, -4, -4)
        slot = rect.width() / MAX_BARS
        i = int((x - (rect.right() - slot * len(bars))) // slot)
        if 0 <= i < len(bars):
            r = bars[i]
            return f"Run {r.id}: {outcome_label(r.state)}, {format_duration(r.duration) or '-'}"
        return ""

    def event(self, e) -> bool:
        if e.type() == e.Type.ToolTip:
            text = self.tooltip_for(e.position().x() if hasattr(e, "position") else e.pos().x())
            self.setToolTip(text or "Recent runs: bar height is the duration, colour the outcome")
        return super().event(e)
