"""The window's workers table over a real Core while the CLI (another process) changes the
workers: the Core re-reads its records on the CLI's nudge, and the window, which shows those
records (Core.known_workers), must follow without any worker connecting or disconnecting."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from desktop.service.core import Core
from desktop.store import queries
from desktop.ui.main_window import MainWindow
from tests.conftest import timeout


async def cli(url: str, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "desktop", "--db", url, "workers", *args,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout(60))
    assert proc.returncode == 0, err.decode(errors="replace")


async def shown(window: MainWindow, check, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout(seconds)
    while loop.time() < end:
        if check(window.workers_model):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.asyncio
async def test_workers_changed_by_the_cli_appear_in_a_quiet_window(tmp_path, qtbot):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    core = Core(url, "127.0.0.1", 0, local_worker=False)
    await core.start()
    window = MainWindow(core, tray=False)
    qtbot.addWidget(window)
    try:
        await core.db.call(queries.add_worker, "old", ["a"], 1)
        await core.db.call(queries.add_worker, "gone", [], 1)
        await core.workers.refresh()
        window.show()
        await window.load()
        assert sorted(r.name for r in window.workers_model.rows()) == ["gone", "old"]
        await cli(url, "add", "newcomer")
        await cli(url, "disable", "old")
        await cli(url, "revoke", "gone")

        def followed(model) -> bool:
            old = model.get("old")
            return (
                model.get("newcomer") is not None
                and old is not None
                and not old.enabled
                and model.get("gone") is None
            )

        # the CLI nudges the console at once; a few seconds is generous
        assert await shown(window, followed, 5), [
            (r.name, r.enabled) for r in window.workers_model.rows()
        ]
    finally:
        await core.stop()


@pytest.mark.asyncio
async def test_a_worker_that_came_and_went_between_two_refreshes_shows_its_visit(tmp_path, qtbot):
    """The Core's records are not re-read at a login: a worker that connected and left
    before the window's next refresh must not show the host and last seen of that old read
    ("never seen", no host) when the database says otherwise."""
    from tests.e2e.rawpeer import RawPeer

    url = f"sqlite:///{tmp_path / 'visit.db'}"
    core = Core(url, "127.0.0.1", 0, local_worker=False)
    await core.start()
    window = MainWindow(core, tray=False)
    qtbot.addWidget(window)
    try:
        token = await core.add_worker("brief")
        window.show()
        await window.load()
        await window.refresh_all_status()  # a refresh just ran: the next one waits a while
        window.request_status_refresh()
        peer = await RawPeer.welcomed(core.hub_url, "brief", token, host="brief-host")
        await peer.close()
        stored = await core.db.call(queries.get_worker, "brief")
        assert stored.host == "brief-host" and stored.last_seen_at is not None

        def settled(model) -> bool:
            row = model.get("brief")
            return row is not None and not row.online and row.host == "brief-host"

        assert await shown(window, settled, 5), window.workers_model.get("brief")
        assert window.workers_model.get("brief").last_heartbeat is not None
    finally:
        await core.stop()
