"""WorkerService.refresh on a real database thread (SQLite file) and a stand-in hub: the
records are read a page per trip, so other database calls (a scheduler pass) go between the
pages, and the outcome is the same as one read of the whole table."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
import pytest_asyncio

from desktop.core.events import EventBus
from desktop.service import workers as workers_service
from desktop.service.workers import WorkerService
from desktop.store import queries
from desktop.store.executor import DbExecutor

pytestmark = pytest.mark.asyncio


class FakeHub:
    def __init__(self, names) -> None:
        self.workers = {n: SimpleNamespace(name=n) for n in names}
        self.configured: list[tuple[str, tuple, int]] = []
        self.disconnected: list[tuple[str, str]] = []

    def configure(self, name, tags, slots) -> None:
        self.configured.append((name, tuple(tags), slots))

    async def disconnect(self, name, code, reason) -> None:
        self.disconnected.append((name, code))
        self.workers.pop(name, None)


@pytest_asyncio.fixture
async def db(tmp_path):
    ex = DbExecutor(f"sqlite:///{tmp_path / 'w.db'}")
    await ex.start()
    yield ex
    await ex.close()


def service(db, hub) -> WorkerService:
    return WorkerService(db, EventBus(), SimpleNamespace(hub=hub, scheduler=None), "test")


async def test_refresh_reads_in_pages_and_disconnects_the_revoked_and_disabled(db, monkeypatch):
    monkeypatch.setattr(workers_service, "REFRESH_PAGE", 3)
    monkeypatch.setattr(workers_service, "REFRESH_SLICE", 2)
    names = [f"w{i}" for i in range(8)]
    for name in names:
        await db.call(queries.add_worker, name, ["t"], 2)
    await db.call(queries.revoke_worker, "w2")
    await db.call(queries.set_worker_enabled, "w5", False)
    pages = []
    real_page = queries.list_workers_page

    def counted(after, limit):
        pages.append(after)
        return real_page(after, limit)

    monkeypatch.setattr(queries, "list_workers_page", counted)
    hub = FakeHub(names)
    svc = service(db, hub)
    await svc.refresh()
    assert pages == ["", "w2", "w5"]  # 8 workers, 3 a page: three trips
    assert sorted(svc.known) == names
    assert sorted(hub.disconnected) == [("w2", "revoked"), ("w5", "disabled")]
    assert {c[0] for c in hub.configured} == set(names)
    assert all(c[1:] == (("t",), 2) for c in hub.configured)


async def test_other_database_calls_go_between_the_pages(db, monkeypatch):
    monkeypatch.setattr(workers_service, "REFRESH_PAGE", 2)
    for i in range(6):
        await db.call(queries.add_worker, f"w{i}")
    order: list[str] = []
    entered, release = threading.Event(), threading.Event()
    real_page = queries.list_workers_page

    def page(after, limit):
        order.append("page")
        if len(order) == 1:
            entered.set()
            release.wait(10)
        return real_page(after, limit)

    def other():
        order.append("pass")

    monkeypatch.setattr(queries, "list_workers_page", page)
    svc = service(db, FakeHub([]))
    refresh = asyncio.create_task(svc.refresh())
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    passed = asyncio.create_task(db.call(other))  # queued while the first page is read
    release.set()
    await asyncio.gather(refresh, passed)
    assert order[:2] == ["page", "pass"] and order.count("page") == 4
    assert len(svc.known) == 6


async def test_a_worker_added_while_the_pages_are_read_is_kept_and_not_disconnected(
    db, monkeypatch
):
    monkeypatch.setattr(workers_service, "REFRESH_PAGE", 2)
    for name in ("m1", "m2", "m3", "m4"):
        await db.call(queries.add_worker, name)
    hub = FakeHub(["m1", "m2", "m3", "m4"])
    svc = service(db, hub)
    await svc.refresh()
    real_page = queries.list_workers_page
    added = []

    def page(after, limit):
        if after == "m2" and not added:
            # behind the first page: one registered by the console, one by the CLI that then
            # connected at once
            added.append(True)
            record, _ = queries.add_worker("a-console")
            svc.known[record.name] = record  # what add() does, on the loop, meanwhile
            queries.add_worker("a-cli")
            hub.workers["a-cli"] = SimpleNamespace(name="a-cli")
        return real_page(after, limit)

    monkeypatch.setattr(queries, "list_workers_page", page)
    await svc.refresh()
    assert hub.disconnected == []
    assert {"a-console", "a-cli"} <= set(svc.known)


async def test_a_worker_enabled_again_while_the_pages_were_read_is_not_sent_away(db, monkeypatch):
    """The pages are read over many trips: a worker disabled in an early page may have been
    enabled again (and reconnected) before the decision; the decision reads it once more."""
    await db.call(queries.add_worker, "back", [], 1)
    await db.call(queries.set_worker_enabled, "back", False)
    real_page = queries.list_workers_page
    stale = await db.call(real_page, "", 100)  # the record as the page read it: disabled

    def page(after, limit):
        queries.set_worker_enabled("back", True)  # meanwhile: enabled again, in the database
        return [r for r in stale if r.name > after][:limit]

    monkeypatch.setattr(queries, "list_workers_page", page)
    hub = FakeHub(["back"])
    monkeypatch.setattr(queries, "list_workers_page", page)
    await service(db, hub).refresh()
    assert hub.disconnected == []
    assert "back" in hub.workers
    monkeypatch.setattr(queries, "list_workers_page", real_page)
    await db.call(queries.set_worker_enabled, "back", False)
    await service(db, hub).refresh()  # really disabled: sent away
    assert hub.disconnected == [("back", "disabled")]


async def test_the_known_records_follow_every_change_the_console_makes(db):
    """The window's refresh reads known_records (no database read once a second during a
    storm): after each change made through the service they are what the database says."""
    svc = service(db, FakeHub([]))
    await db.call(queries.add_worker, "cli", [], 1)  # from another process, before the start
    await svc.refresh()

    def same() -> bool:
        return sorted(svc.known_records(), key=lambda r: r.name) == sorted(
            queries.list_workers(), key=lambda r: r.name
        )

    assert await db.call(same)
    await svc.add("a", ["x"], 2)
    await svc.add("b")
    assert await db.call(same)
    await svc.set_config("a", ["y"], 3)
    assert await db.call(same)
    await svc.set_enabled("b", False)
    assert await db.call(same)
    await svc.revoke("cli")
    assert await db.call(same)
    assert {r.name: (r.revoked, r.enabled) for r in svc.known_records()} == {
        "cli": (True, True),
        "a": (False, True),
        "b": (False, False),
    }


async def test_a_change_made_during_a_refresh_is_not_undone_by_its_older_pages(db, monkeypatch):
    # The window shows the known records (Core.known_workers) and the hub configures connected
    # workers from them: a refresh that read w0's page before the window changed w0 must not
    # put the old record back over the new one when it ends.
    monkeypatch.setattr(workers_service, "REFRESH_PAGE", 2)
    for i in range(6):
        await db.call(queries.add_worker, f"w{i}", ["old"], 1)
    hub = FakeHub(["w0"])
    svc = service(db, hub)
    await svc.refresh()
    refreshing = asyncio.create_task(svc.refresh())
    await asyncio.sleep(0)  # its first page (w0, w1) is on the database thread's queue
    await svc.set_config("w0", ["new"], 3)  # queued behind that page
    await refreshing
    assert svc.known["w0"].tags == ("new",) and svc.known["w0"].slots == 3
    assert hub.configured[-1] == ("w0", ("new",), 3)
