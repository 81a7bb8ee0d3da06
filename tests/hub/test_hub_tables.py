"""The hub's tables with plain values (no sockets): the sorted names it hands out, and what an
ended run leaves owned."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

from desktop.core.events import EventBus
from desktop.hub.commit import CommitResult
from desktop.hub.connection import Conn
from desktop.hub.server import Hub
from desktop.store.records import RunRecord

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def hub() -> Hub:
    return Hub(None, EventBus())  # type: ignore[arg-type]  # no database is touched here


def test_worker_names_are_sorted_copies_made_again_only_when_the_table_changes():
    h = hub()
    h.workers = {n: SimpleNamespace(name=n) for n in ("b", "c", "a")}  # type: ignore[misc]
    h.workers_version += 1
    names = h.worker_names()
    assert names == ["a", "b", "c"]
    names.append("mine")  # a copy: the caller may keep or change it
    assert h.worker_names() == ["a", "b", "c"]
    h.workers["d"] = SimpleNamespace(name="d")  # type: ignore[assignment]
    assert h.worker_names() == ["a", "b", "c"]  # the same version: the same answer
    h.workers_version += 1  # as every change of the table does
    assert h.worker_names() == ["a", "b", "c", "d"]


def run(run_id: int, worker: str) -> RunRecord:
    return RunRecord(
        run_id, 1, "j", T0, 1, "manual", "succeeded", worker, 0, "", None, None, T0, T0, T0, T0,
        3, 0, False,
    )  # fmt: skip


def test_an_ended_run_is_no_longer_owned_by_its_workers_connection_and_others_keep_theirs():
    h = hub()
    conns = {n: Conn(None, None, "10.0.0.1", n) for n in ("w1", "w2")}  # type: ignore[arg-type]
    conns["w1"].own([5, 6])
    conns["w2"].own([7])
    h._conns = conns
    h._after_commit([], CommitResult(ended=[run(5, "w1"), run(7, "w2"), run(9, "gone")]))
    assert list(conns["w1"].owned) == [6]
    assert list(conns["w2"].owned) == []
