"""Table models: Qt's model tester, incremental updates, lazy keyset paging."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from PySide6.QtCore import QModelIndex, Qt

from desktop.ui.models import (
    ID_ROLE,
    JobsTableModel,
    RunsTableModel,
    WorkersTableModel,
)
from desktop.ui.rows import JobRow, RunRow, WorkerRow

T0 = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)


def job(i: int, **kw) -> JobRow:
    base = dict(
        id=i,
        name=f"job-{i:05d}",
        schedule_text="Every 5 minutes",
        target_text="any worker",
        script="test_job.py",
        next_fire_at=T0 + timedelta(minutes=i),
        last_run_at=None,
        last_run_state=None,
        enabled=True,
    )
    base.update(kw)
    base.setdefault("name_key", base["name"].casefold())
    return JobRow(**base)


def run(i: int, job_id: int = 1, **kw) -> RunRow:
    base = dict(
        id=i,
        job_id=job_id,
        scheduled_at=T0,
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=3),
        worker="w1",
        state="succeeded",
        exit_code=0,
        trigger="schedule",
        attempt=1,
        reason="",
    )
    base.update(kw)
    return RunRow(**base)


def worker(name: str, **kw) -> WorkerRow:
    base = dict(
        name=name,
        host="host",
        os="Linux",
        version="0.1.0",
        online=True,
        enabled=True,
        last_heartbeat=T0,
        running=0,
        slots=2,
        tags=("linux",),
    )
    base.update(kw)
    return WorkerRow(**base)


def test_jobs_model_passes_modeltester_through_every_kind_of_change(qtmodeltester):
    model = JobsTableModel()
    model.set_rows([job(i) for i in range(1, 6)])
    qtmodeltester.check(model, force_py=True)
    model.upsert(job(3, name="renamed", enabled=False, last_run_state="failed", last_run_at=T0))
    model.upsert(job(9))
    model.remove(2)
    qtmodeltester.check(model, force_py=True)
    # kept sorted by name: the renamed job moved to the end
    assert [r.name for r in model.rows()] == [
        "job-00001",
        "job-00004",
        "job-00005",
        "job-00009",
        "renamed",
    ]
    assert model.row_for_key(9) == 3
    idx = model.index(4, JobsTableModel.OUTCOME)
    assert model.data(idx) == "Failed"
    assert model.data(idx, Qt.ItemDataRole.DecorationRole) is not None
    assert model.data(model.index(4, JobsTableModel.NEXT)) == "disabled"


def test_jobs_model_shows_times_in_the_display_zone():
    model = JobsTableModel()
    model.set_rows([job(1, last_run_at=T0, next_fire_at=T0)])
    assert model.data(model.index(0, JobsTableModel.LAST)) == "2026-11-29 09:00:00"  # HK, UTC+8
    model.set_display_tz("Europe/London")
    assert model.data(model.index(0, JobsTableModel.LAST)) == "2026-11-29 01:00:00"


def test_jobs_upsert_of_one_row_emits_one_row_change_not_a_reset():
    model = JobsTableModel()
    model.set_rows([job(i) for i in range(1, 10_001)])
    changes, resets = [], []
    model.dataChanged.connect(lambda a, b: changes.append((a.row(), b.row())))
    model.modelReset.connect(lambda: resets.append(1))
    model.upsert(job(5000, last_run_state="succeeded"))
    assert changes == [(4999, 4999)] and resets == []


def test_jobs_panel_filters_and_sorts_by_real_times(qtbot):
    from desktop.ui.panels import JobsPanel
    from desktop.ui.rows import job_row

    model = JobsTableModel()
    panel = JobsPanel(model)
    qtbot.addWidget(panel)

    def rec(i, name, hours):
        return job(i, name=name, next_fire_at=T0 + timedelta(hours=hours))

    model.set_rows([rec(1, "backup-db", 2), rec(2, "rotate-logs", 1), rec(3, "Backup-files", 3)])
    proxy = panel.proxy

    def shown():
        return [proxy.index(r, 0).data(ID_ROLE) for r in range(proxy.rowCount())]

    assert shown() == [1, 3, 2]  # by name, case-insensitive
    panel.view.sortByColumn(JobsTableModel.NEXT, Qt.SortOrder.AscendingOrder)
    assert shown() == [2, 1, 3]
    panel.view.sortByColumn(JobsTableModel.NEXT, Qt.SortOrder.DescendingOrder)
    assert shown() == [3, 1, 2]
    panel.filter.setText("BACKUP")
    assert shown() == []  # rows built by hand have no search text yet
    from types import SimpleNamespace

    model.set_rows(
        [
            job_row(
                SimpleNamespace(
                    id=i,
                    name=n,
                    schedule={"v": 1, "kind": "manual", "tz": "UTC"},
                    target_kind="any",
                    target_value="",
                    script="s.py",
                    enabled=True,
                    next_fire_at=T0 + timedelta(hours=i),
                )
            )
            for i, n in ((1, "backup-db"), (2, "rotate-logs"), (3, "Backup-files"))
        ]
    )
    assert shown() == [3, 1]
    assert panel.count.text() == "2 of 3 jobs"


def test_sorted_model_moves_a_changed_row_and_keeps_selection(qtbot, qtmodeltester):
    from desktop.ui.panels import JobsPanel

    model = JobsTableModel()
    panel = JobsPanel(model)
    qtbot.addWidget(panel)
    model.set_rows([job(i, next_fire_at=T0 + timedelta(minutes=i)) for i in range(1, 101)])
    panel.view.sortByColumn(JobsTableModel.NEXT, Qt.SortOrder.AscendingOrder)
    panel.select(50)
    moves = []
    model.rowsMoved.connect(lambda *a: moves.append((a[1], a[4])))
    model.upsert(job(50, next_fire_at=T0 + timedelta(minutes=1000)))  # now the latest
    assert moves == [(49, 100)]
    assert model.row_at(99).id == 50 and model.row_for_key(51) == 49
    assert panel.selected_id() == 50  # the selection followed the row
    model.upsert(job(50, next_fire_at=T0 - timedelta(minutes=1)))  # now the earliest
    assert model.row_at(0).id == 50
    model.upsert(job(500, next_fire_at=T0 + timedelta(minutes=20, seconds=30)))  # a new job
    assert model.row_at(model.row_for_key(500) - 1).id == 20
    assert [model.row_at(i).next_fire_at for i in range(101)] == sorted(
        model.row_at(i).next_fire_at for i in range(101)
    )
    qtmodeltester.check(model, force_py=True)


def test_workers_model_passes_modeltester_and_ages_heartbeats(qtmodeltester):
    model = WorkersTableModel()
    model.set_rows([worker("a"), worker("b", online=False, enabled=False)])
    qtmodeltester.check(model, force_py=True)
    model.tick(T0 + timedelta(seconds=42))
    assert model.data(model.index(0, WorkersTableModel.HEARTBEAT)) == "42 s ago"
    assert model.data(model.index(1, WorkersTableModel.STATUS)) == "Disabled"
    assert model.data(model.index(0, WorkersTableModel.RUNNING)) == "0 / 2"
    model.upsert(worker("a", running=2))
    model.remove("b")
    qtmodeltester.check(model, force_py=True)
    assert model.data(model.index(0, WorkersTableModel.RUNNING)) == "2 / 2"


def test_a_stalled_worker_says_why_in_the_workers_panel(qtmodeltester):
    model = WorkersTableModel()
    why = "cannot write to the spool /w/spool (No space left on device): output is held"
    model.set_rows([worker("a", problem=why), worker("b")])
    qtmodeltester.check(model, force_py=True)
    status = model.index(0, WorkersTableModel.STATUS)
    assert model.data(status) == "Online, stalled"
    assert model.data(status, Qt.ItemDataRole.ToolTipRole) == why
    assert model.data(model.index(1, WorkersTableModel.STATUS)) == "Online"
    assert model.data(model.index(1, WorkersTableModel.STATUS), Qt.ItemDataRole.ToolTipRole) is None


class FakeRunStore:
    """Keyset paging over a list of ids, like queries.list_runs (newest first)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: list[tuple[int | None, int]] = []

    async def load(self, job_id: int, before_id: int | None, limit: int) -> list[RunRow]:
        self.calls.append((before_id, limit))
        top = self.n if before_id is None else before_id - 1
        return [run(i, job_id) for i in range(top, max(0, top - limit), -1)]


@pytest.mark.asyncio
async def test_runs_model_pages_lazily_with_keysets(qtmodeltester):
    store = FakeRunStore(1_000_000)
    model = RunsTableModel(store.load, page_size=100)
    model.set_job(1)
    await model.last_load
    assert model.rowCount() == 100 and store.calls == [(None, 100)]
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    model.fetchMore(QModelIndex())  # a second request while one is loading is ignored
    await model.last_load
    assert store.calls == [(None, 100), (1_000_000 - 99, 100)]
    assert model.rowCount() == 200
    assert model.row_at(199).id == 1_000_000 - 199
    qtmodeltester.check(model, force_py=True)


@pytest.mark.asyncio
async def test_runs_model_stops_at_the_end_and_takes_new_runs_on_top():
    store = FakeRunStore(150)
    model = RunsTableModel(store.load, page_size=100)
    model.set_job(7)
    await model.last_load
    model.fetchMore(QModelIndex())
    await model.last_load
    assert model.rowCount() == 150 and not model.canFetchMore(QModelIndex())
    model.apply(run(151, job_id=7, state="running", finished_at=None))
    model.apply(run(152, job_id=8))  # another job's run is not shown
    assert model.row_at(0).id == 151 and model.rowCount() == 151
    assert model.data(model.index(0, RunsTableModel.DURATION)) == "running…"
    model.apply(run(151, job_id=7, state="failed", exit_code=3))
    assert model.data(model.index(0, RunsTableModel.OUTCOME)) == "Failed"
    assert model.data(model.index(0, RunsTableModel.EXIT)) == "3"


@pytest.mark.asyncio
async def test_runs_model_drops_a_late_page_of_the_previous_job():
    gate = asyncio.Event()

    async def slow_loader(job_id, before, limit):
        if job_id == 1:
            await gate.wait()
        return [run(i, job_id) for i in range(10, 0, -1)]

    model = RunsTableModel(slow_loader, page_size=100)
    model.set_job(1)
    stale = model.last_load
    model.set_job(2)
    await model.last_load
    gate.set()
    await stale
    assert {model.row_at(r).job_id for r in range(model.rowCount())} == {2}
    assert model.rowCount() == 10


def test_a_storm_of_worker_changes_is_one_data_change_not_one_per_row(qtmodeltester):
    model = WorkersTableModel()
    model.set_rows([worker(f"w{i:05d}", online=False) for i in range(3000)])
    changes, inserts = [], []
    model.dataChanged.connect(lambda a, b: changes.append((a.row(), b.row())))
    model.rowsInserted.connect(lambda _p, first, last: inserts.append(first))
    model.update_rows([worker(f"w{i:05d}", online=True) for i in range(1000, 2000)])
    assert changes == [(1000, 1999)] and inserts == []
    assert all(model.row_at(i).online == (1000 <= i < 2000) for i in range(3000))
    qtmodeltester.check(model, force_py=True)


def test_update_rows_inserts_new_rows_and_moves_resorted_ones_in_order(qtmodeltester):
    model = JobsTableModel()
    model.set_rows([job(i, next_fire_at=T0 + timedelta(minutes=i)) for i in range(1, 101)])
    model.sort(JobsTableModel.NEXT, Qt.SortOrder.AscendingOrder)
    reference = JobsTableModel()
    reference.set_rows(model.rows())
    reference.sort(JobsTableModel.NEXT, Qt.SortOrder.AscendingOrder)
    changes = []
    model.dataChanged.connect(lambda a, b: changes.append((a.row(), b.row())))
    batch = [
        job(10, next_fire_at=T0 + timedelta(minutes=10), last_run_state="failed"),  # in place
        job(50, next_fire_at=T0 + timedelta(minutes=1000)),  # moves to the end
        job(20, next_fire_at=T0 + timedelta(minutes=20), last_run_state="failed"),  # in place
        job(500, next_fire_at=T0 + timedelta(minutes=30, seconds=30)),  # new
        job(60, next_fire_at=T0 + timedelta(minutes=60), last_run_state="failed"),  # in place
    ]
    model.update_rows(batch)
    for row in batch:
        reference.upsert(row)
    assert model.rows() == reference.rows()
    assert [model.row_for_key(r.id) for r in model.rows()] == list(range(101))
    # each in-place row is announced at its place before a move or insert shifts the rows
    assert changes == [(9, 9), (99, 99), (19, 19), (59, 59)]
    qtmodeltester.check(model, force_py=True)


def test_update_rows_into_an_empty_model_is_one_reset(qtmodeltester):
    model = WorkersTableModel()
    inserts, resets = [], []
    model.rowsInserted.connect(lambda *_a: inserts.append(1))
    model.modelReset.connect(lambda: resets.append(1))
    model.update_rows([worker(f"w{i:05d}") for i in reversed(range(2000))])
    assert inserts == [] and resets == [1]
    assert [model.row_at(i).name for i in range(2000)] == [f"w{i:05d}" for i in range(2000)]
    assert model.row_for_key("w01234") == 1234
    qtmodeltester.check(model, force_py=True)
