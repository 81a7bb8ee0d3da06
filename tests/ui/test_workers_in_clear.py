"""The Workers panel marks a worker whose token reached a plain ws:// hub from another host."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Qt

from desktop.ui.models import WorkersTableModel
from desktop.ui.rows import WorkerRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(name: str, *, in_clear: bool, online: bool = True) -> WorkerRow:
    return WorkerRow(name, "h", "linux", "1", online, True, T0, 0, 1, (), in_clear)


def test_an_online_worker_in_clear_is_marked_with_the_advice(qtmodeltester):
    model = WorkersTableModel()
    model.set_rows([row("a", in_clear=True), row("b", in_clear=False)])
    qtmodeltester.check(model, force_py=True)
    status = WorkersTableModel.STATUS
    assert model.data(model.index(0, status)) == "Online, no TLS"
    tip = model.data(model.index(0, status), Qt.ItemDataRole.ToolTipRole)
    assert "token sent in clear; configure TLS" in tip
    assert model.data(model.index(1, status)) == "Online"
    assert model.data(model.index(1, status), Qt.ItemDataRole.ToolTipRole) is None
    model.upsert(row("a", in_clear=True, online=False))  # offline: nothing to warn about now
    assert model.data(model.index(0, status)) == "Offline"
