"""Renders the main window, the job editor and the workers panel offscreen with realistic data
(many runs, live output) and checks that they render.  The README's pictures come from the real
window instead: tests/ui/test_real_window.py (JOBTRIGGER_SCREENSHOTS=1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from desktop.ui import asyncqt
from desktop.ui.main_window import MainWindow
from tests.conftest import timeout
from tests.ui.storecore import StoreCore
from tests.ui.test_main_window import Dialogs, settle

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

SCHEDULES = [
    ("nightly-backup", "backup.ps1", {"kind": "daily", "times": ["02:00"]}, "tag", "windows"),
    ("rotate-logs", "rotate.sh", {"kind": "interval", "every": 15, "unit": "minutes"}, "any", ""),
    (
        "payroll-export",
        "export.py",
        {"kind": "monthly", "days": ["last"], "times": ["18:30"]},
        "worker",
        "finance-01",
    ),
    (
        "weekly-report",
        "report.py",
        {"kind": "weekly", "days": ["mon", "thu"], "times": ["08:00"]},
        "any",
        "",
    ),
    ("db-vacuum", "vacuum.sh", {"kind": "cron", "expr": "30 3 * * 0"}, "tag", "linux"),
    ("cert-check", "certs.py", {"kind": "hourly", "minute": 5, "hours": [8, 18]}, "any", ""),
    ("migration-2026", "migrate.py", {"kind": "once", "at": "2026-12-24T22:00:00"}, "any", ""),
    ("test_job", "test_job.py", {"kind": "manual"}, "any", ""),
]


async def populate(core: StoreCore) -> None:
    from desktop.store import queries

    for name, script, sched, tkind, tval in SCHEDULES:
        await core.db.call(
            queries.create_job,
            {
                "name": name,
                "script": script,
                "schedule": {"v": 1, "tz": "Asia/Hong_Kong", **sched},
                "time_zone": "Asia/Hong_Kong",
                "target_kind": tkind,
                "target_value": tval,
            },
        )
    await core.db.call(queries.add_worker, "fileserver-01", ["windows", "backup"], 2)
    await core.db.call(queries.add_worker, "finance-01", ["windows"], 1)
    await core.db.call(queries.add_worker, "build-linux", ["linux"], 4)


async def play_runs(core: StoreCore, job_id: int) -> int:
    outcomes = ["succeeded"] * 6 + ["failed"] + ["succeeded"] * 4 + ["timed_out"] + ["succeeded"]
    last = 0
    for i, outcome in enumerate(outcomes):
        run_id = await core.run_now(job_id)
        await core.start_run(run_id, "fileserver-01")
        await core.output(run_id, ("stdout", f"backup pass {i}\n"))
        await core.finish_run(run_id, outcome, 0 if outcome == "succeeded" else 1)
        last = run_id
    run_id = await core.run_now(job_id)
    await core.start_run(run_id, "fileserver-01")
    await core.output(
        run_id,
        ("stdout", "Backup started: C:\\Data -> \\\\nas01\\backup\\daily\n"),
        ("stdout", "".join(f"copied C:\\Data\\projects\\file{i:04d}.xlsx\n" for i in range(25))),
        ("stderr", "warning: C:\\Data\\locked.pst is in use, skipped\n"),
        ("stdout", "".join(f"copied C:\\Data\\mail\\msg{i:04d}.eml\n" for i in range(8))),
    )
    return last or run_id


async def demo_core(db_path: Path) -> StoreCore:
    """A started core with the sample jobs and two connected workers: what the pictures and
    the real-window checks show."""
    core = StoreCore(f"sqlite:///{db_path}")
    await core.start()
    await populate(core)
    core.connect_worker(
        "fileserver-01",
        host="FS01",
        os="Windows Server 2022",
        version="0.1.0",
        running=1,
        slots=2,
        tags=("windows", "backup"),
    )
    core.connect_worker(
        "build-linux", host="build7", os="Debian 13", version="0.1.0", slots=4, tags=("linux",)
    )
    return core


@pytest.mark.asyncio
async def test_render_screenshots(tmp_path, qtbot):
    out = tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    core = await demo_core(tmp_path / "shots.db")
    window = MainWindow(core, db_url="sqlite:///jobtrigger.db", tray=False)
    qtbot.addWidget(window)
    dialogs = Dialogs()
    asyncqt.dialog_watchers.append(dialogs)
    try:
        window.resize(1400, 860)
        window.show()
        await window.load()
        job_id = next(r.id for r in window.jobs_model.rows() if r.name == "nightly-backup")
        window.jobs_panel.select(job_id)
        await play_runs(core, job_id)
        await settle(window)
        window.select_run(window.runs_model.row_at(0).id)
        await settle(window)
        await window.refresh_status()
        path = out / "main-window.png"
        assert window.grab().save(str(path))

        task = asyncio.ensure_future(window.commands.edit_job(job_id))
        editor = await dialogs.next()
        editor.resize(1250, 640)
        editor.tz.setText("Europe/London")  # the preview then shows two different zones
        await settle(window)
        assert editor.grab().save(str(out / "job-editor.png"))
        editor.forms["daily"].times.setText("02:00, 25:00")
        assert editor.grab().save(str(out / "job-editor-invalid.png"))
        editor.reject()
        await asyncio.wait_for(task, timeout(10))

        window.tabs.setCurrentIndex(1)
        await settle(window)
        assert window.grab().save(str(out / "workers-panel.png"))
        for name in ("main-window", "job-editor", "workers-panel"):
            assert (out / f"{name}.png").stat().st_size > 10_000
    finally:
        asyncqt.dialog_watchers.remove(dialogs)
        window.shutdown()
        await asyncqt.cancel_pending()
        await core.stop()
