"""The window over a Core on its own thread (desktop/service/corethread.py), as desktop/app.py
builds it: the Core's work does not hold the window, and the window still shows what the Core
publishes."""

from __future__ import annotations

import asyncio
import time

import pytest
from PySide6.QtCore import QTimer

from desktop.service.corethread import start_remote
from desktop.ui.main_window import MainWindow
from tests.conftest import timeout
from tests.ui.storecore import StoreCore

BUSY_SECONDS = 1.5
TICK_MS = 20


def hog(seconds: float, span: list[float]) -> None:
    """Hold the calling thread's loop for ``seconds`` of pure Python work (a storm's long turn:
    handshakes, hellos and welcomes one after another)."""
    span.append(time.monotonic())
    end = span[0] + seconds
    while time.monotonic() < end:
        sum(range(1000))
    span.append(time.monotonic())


class Ticks:
    def __init__(self) -> None:
        self.at: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(lambda: self.at.append(time.monotonic()))
        self.timer.start()

    def within(self, span: list[float]) -> int:
        self.timer.stop()
        return sum(1 for t in self.at if span[0] < t < span[1])


async def hogged(loop: asyncio.AbstractEventLoop, seconds: float) -> list[float]:
    span: list[float] = []
    done = asyncio.get_running_loop().create_future()
    here = asyncio.get_running_loop()

    def work() -> None:
        hog(seconds, span)
        here.call_soon_threadsafe(done.set_result, None)

    loop.call_soon_threadsafe(work)
    await asyncio.wait_for(done, timeout(30))
    return span


@pytest.mark.asyncio
async def test_a_busy_core_does_not_hold_the_window(tmp_path, qtbot):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    remote = await start_remote(lambda: StoreCore(url))
    window = MainWindow(remote, tray=False)
    qtbot.addWidget(window)
    try:
        window.show()
        await window.load()
        # the control: the same work on the window's own loop stops its timers for the whole
        # time (what the window met when the hub shared its loop)
        ticks = Ticks()
        span = await hogged(asyncio.get_running_loop(), BUSY_SECONDS / 3)
        assert ticks.within(span) == 0
        # on the Core's thread, the window's 20 ms timer keeps ticking through the work
        ticks = Ticks()
        span = await hogged(remote.runner.loop, BUSY_SECONDS)
        expected = BUSY_SECONDS * 1000 / TICK_MS
        assert ticks.within(span) >= expected / 4, (ticks.within(span), expected)
        # and what the Core publishes still reaches the window's tables
        job = await remote.save_job(
            {"name": "after", "script": "a.py", "schedule": {"kind": "manual"}}
        )
        deadline = time.monotonic() + timeout(10)
        while job.id not in {r.id for r in window.jobs_model.rows()}:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        window.shutdown()
        await remote.stop()


@pytest.mark.asyncio
async def test_on_the_qt_loop_a_calls_events_arrive_before_it_returns(tmp_path):
    """The same order on qasync's loop (its call_soon_threadsafe is a queued Qt signal)."""
    from desktop.core.events import JobChanged

    url = f"sqlite:///{tmp_path / 'o.db'}"
    remote = await start_remote(lambda: StoreCore(url))
    got: list[int] = []
    remote.events.subscribe(lambda e: got.append(e.job_id) if isinstance(e, JobChanged) else None)
    try:
        for i in range(30):
            job = await remote.save_job(
                {"name": f"j{i}", "script": "a.py", "schedule": {"kind": "manual"}}
            )
            assert got and got[-1] == job.id
    finally:
        await remote.stop()
