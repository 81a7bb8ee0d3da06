"""A small bar chart of a job's recent runs: height = duration, colour = outcome, oldest left.

PySide6-Essentials has no QtCharts; a few rectangles painted with QPainter say enough.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.core.words import plural
from desktop.ui.formatting import format_duration, outcome_colour, outcome_label
from desktop.ui.rows import RunRow

MAX_BARS = 50
MIN_SLOTS = 12  # fewer runs than this still leave the rest of the chart free
MAX_BAR_WIDTH = 24.0


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
        painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
        bars = self.bars()
        if not bars:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No runs yet")
            return
        painter.drawText(4, 12, self.title())
        painter.setPen(Qt.PenStyle.NoPen)
        for box, (_duration, state) in zip(self.bar_rects(), bars):
            painter.setBrush(QColor(outcome_colour(state) or "#8c8c8c"))
            painter.drawRoundedRect(box, 1.5, 1.5)
        painter.end()

    def title(self) -> str:
        bars = self.bars()
        if not bars:
            return "No runs yet"
        longest = max(d for d, _ in bars) or 1.0
        return f"Last {plural(len(bars), 'run')} · longest {format_duration(longest)}"

    def _plot_area(self) -> QRectF:
        return QRectF(self.rect().adjusted(4, 16, -4, -4))

    def _slot(self) -> float:
        # A few runs get slots of a few runs' width, from the left, not one hairline at the far
        # right of fifty empty slots.
        return self._plot_area().width() / max(len(self._runs), MIN_SLOTS)

    def bar_rects(self) -> list[QRectF]:
        """Where each bar is painted, oldest first (left)."""
        area, slot = self._plot_area(), self._slot()
        bars = self.bars()
        if not bars:
            return []
        longest = max(d for d, _ in bars) or 1.0
        width = min(MAX_BAR_WIDTH, max(2.0, slot * 0.7))
        out = []
        for i, (duration, _state) in enumerate(bars):
            # a visible stub even for instant or never-started runs, so every outcome shows
            height = max(3.0, area.height() * duration / longest)
            x = area.left() + i * slot + (slot - width) / 2
            out.append(QRectF(x, area.bottom() - height, width, height))
        return out

    def tooltip_for(self, x: float) -> str:
        bars = self._runs
        if not bars:
            return ""
        i = int((x - self._plot_area().left()) // self._slot())
        if 0 <= i < len(bars):
            r = bars[i]
            return f"Run {r.id}: {outcome_label(r.state)}, {format_duration(r.duration) or '-'}"
        return ""

    def event(self, e) -> bool:
        if e.type() == e.Type.ToolTip:
            text = self.tooltip_for(e.position().x() if hasattr(e, "position") else e.pos().x())
            self.setToolTip(text or "Recent runs: bar height is the duration, colour the outcome")
        return super().event(e)
