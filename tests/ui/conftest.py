"""UI test setup: async tests run on a qasync loop over the one QApplication, as the app does.

pytest-asyncio 1.5 asks this hook for loop factories; every async test in tests/ui runs on
qasync.QEventLoop, so coroutines, Qt signals and timers share one loop (DESIGN.md pitfalls).
"""

from __future__ import annotations

import gc
import sys

import pytest
import qasync
from PySide6.QtWidgets import QApplication


def _qasync_loop():
    app = QApplication.instance() or QApplication(sys.argv[:1])
    return qasync.QEventLoop(app, already_running=False)


def pytest_asyncio_loop_factories(config, item):
    return {"qasync": _qasync_loop}


@pytest.fixture(autouse=True)
def _qapp(qapp):
    """Every UI test has the QApplication (pixmaps and fonts need it even without a window)."""
    return qapp


@pytest.fixture(scope="package", autouse=True)
def _gc_on_gui_thread(qapp):
    """As in the app: cycles are collected on the GUI thread, never in the DB thread."""
    from desktop.ui.gc_guard import MainThreadGC

    guard = MainThreadGC()
    yield guard
    guard.stop()


@pytest.fixture(autouse=True)
def _collect_after_test():
    yield
    gc.collect()
