"""The status bar says who leads when consoles share a PostgreSQL database; nothing on SQLite.
The text comes from Core.cluster_summary() (desktop/service/cluster.py), read on the window's
status tick: no database trip from the UI."""

from __future__ import annotations

import pytest

from tests.ui.test_main_window import console


@pytest.mark.asyncio
async def test_status_bar_shows_the_leader_and_nothing_without_a_cluster(tmp_path, qtbot):
    async with console(tmp_path, qtbot) as (core, window, _dialogs, errors):
        window._tick()
        assert window.cluster_label.text() == ""  # StoreCore has no cluster: SQLite
        standby = (
            "Cluster: standby; the leader is host-a (pid 4711) at ws://host-a:8000/ws/heartbeat"
        )
        core.cluster_summary = lambda: standby
        window._tick()
        assert window.cluster_label.text() == standby
        assert window.cluster_label.isVisibleTo(window)
        assert errors == []
