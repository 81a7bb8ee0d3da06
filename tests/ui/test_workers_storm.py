"""The workers table under a reconnect storm: thousands of online/offline events are coalesced
into a few refreshes (desktop/core/coalesce.py), and the table still ends up right."""

from __future__ import annotations

import asyncio

import pytest

from desktop.core.events import WorkerChanged
from desktop.store import queries
from desktop.ui import main_window as mw
from desktop.ui.models import WorkersTableModel
from tests.conftest import timeout
from tests.ui.test_main_window import console, settle

WORKERS = 300


def add_workers(n: int) -> None:
    for i in range(n):
        queries.add_worker(f"w{i:03d}", [], 1)


def status_column(window) -> dict[str, str]:
    model = window.workers_model
    return {
        model.row_at(r).name: model.data(model.index(r, WorkersTableModel.STATUS))
        for r in range(model.rowCount())
    }


@pytest.mark.asyncio
async def test_a_burst_of_online_and_offline_events_ends_in_the_right_table(
    tmp_path, qtbot, monkeypatch
):
    monkeypatch.setattr(mw, "WORKER_ROWS_PER_TURN", 64)  # several slices per refresh
    async with console(tmp_path, qtbot) as (core, window, _dialogs, errors):
        await core.db.call(add_workers, WORKERS)
        await window.refresh_all_status()
        assert set(status_column(window).values()) == {"Offline"}
        reads = 0
        real_list = core.known_workers

        async def counting_list():
            nonlocal reads
            reads += 1
            return await real_list()

        core.known_workers = counting_list
        # the storm: every worker comes online, every third one drops again, a frame (the
        # bridge's flush) every ten events and a turn of the loop between frames
        for i in range(WORKERS):
            core.connect_worker(f"w{i:03d}", host=f"h{i}")
            if i % 3 == 0:
                core.online.pop(f"w{i:03d}")
                core.events.publish(WorkerChanged(f"w{i:03d}", False))
            if i % 10 == 9:
                window.bridge.flush()
                await asyncio.sleep(0)
        await settle(window)
        frames = WORKERS // 10
        assert reads <= 4, f"{reads} reads of the worker table for {frames} frames of events"
        expected = {f"w{i:03d}": "Offline" if i % 3 == 0 else "Online" for i in range(WORKERS)}
        assert status_column(window) == expected
        assert window.workers_model.get("w001").host == "h1"
        online = sum(1 for v in expected.values() if v == "Online")
        assert window.status_label.text().startswith(f"{online} of {WORKERS} workers online")
        assert errors == []


@pytest.mark.asyncio
async def test_a_change_during_a_refresh_is_shown_by_the_refresh_after_it(tmp_path, qtbot):
    async with console(tmp_path, qtbot) as (core, window, _dialogs, errors):
        await core.db.call(add_workers, 2)
        await window.refresh_all_status()
        release = asyncio.Event()
        started = asyncio.Event()
        real_list = core.known_workers

        async def slow_list():
            started.set()
            await release.wait()  # the database is busy: the refresh waits here
            return await real_list()

        core.known_workers = slow_list
        core.connect_worker("w000")
        window.bridge.flush()
        await asyncio.wait_for(started.wait(), timeout(10))
        # meanwhile w001 comes online; the running refresh may have read the state before it
        core.connect_worker("w001")
        window.bridge.flush()
        core.known_workers = real_list
        release.set()
        await settle(window)
        assert status_column(window) == {"w000": "Online", "w001": "Online"}
        assert window.status_label.text().startswith("2 of 2 workers online")
        assert errors == []


@pytest.mark.asyncio
async def test_the_refresh_does_not_read_every_worker_from_the_database(tmp_path, qtbot):
    """Once a second during a storm, a read of the whole workers table on the one database
    thread (the logins' thread too): the refresh takes the Core's records instead."""
    async with console(tmp_path, qtbot) as (core, window, _dialogs, errors):
        await core.db.call(add_workers, 3)

        async def no_list():
            raise AssertionError("the window read the whole workers table")

        core.list_workers = no_list
        core.connect_worker("w001")
        await window.refresh_all_status()
        assert status_column(window) == {"w000": "Offline", "w001": "Online", "w002": "Offline"}
        assert errors == []


@pytest.mark.asyncio
async def test_a_connected_worker_the_core_has_not_read_yet_is_shown(tmp_path, qtbot):
    """Registered by another process (the CLI) after the Core's last read of the records, and
    connected: the table shows it from its live status, as the database read did."""
    async with console(tmp_path, qtbot) as (core, window, _dialogs, errors):
        await core.db.call(add_workers, 1)
        core.connect_worker("w000")
        core.connect_worker("newcomer", host="far")
        await window.refresh_all_status()
        assert status_column(window) == {"newcomer": "Online", "w000": "Online"}
        assert window.workers_model.get("newcomer").host == "far"
        assert window.workers_model.get("newcomer").enabled
        assert errors == []


@pytest.mark.asyncio
async def test_a_worker_that_goes_offline_keeps_what_it_showed_online(tmp_path, qtbot):
    """The Core's records are as of their last read (not re-read each refresh): a worker that
    just went away shows its last heartbeat, host and version, not those of that read."""
    async with console(tmp_path, qtbot) as (core, window, _dialogs, errors):
        await core.db.call(add_workers, 1)
        core.connect_worker("w000", host="new-host", version="2.1.0")
        await window.refresh_all_status()
        beat = core.online["w000"].last_heartbeat
        core.online.pop("w000")
        core.events.publish(WorkerChanged("w000", False))
        await window.refresh_all_status()
        row = window.workers_model.get("w000")
        assert (row.online, row.host, row.version) == (False, "new-host", "2.1.0")
        assert row.last_heartbeat == beat
        assert errors == []
