"""Soak test for the PySide6 + qasync pair (DESIGN.md, Known pitfalls).

PySide6 6.12.0 on Python 3.11 drops a reference to None on every killTimer() and one to True on
every Signal.emit(); qasync calls both constantly, so the interpreter aborts with
"Fatal Python error: none_dealloc" after a few thousand turns.  This runs ~100,000 loop turns
with timers and signals in a child interpreter, so an upgrade that brings the bug back fails
here instead of on an admin's desk.  A child process, because the failure is an abort.
"""

import subprocess
import sys
import textwrap

from tests.conftest import timeout

SOAK = textwrap.dedent(
    """
    import asyncio, os, sys
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtWidgets import QApplication
    import qasync

    class Emitter(QObject):
        ping = Signal(bool)

    app = QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    received = []
    emitter = Emitter()
    emitter.ping.connect(received.append)
    fired = []

    async def soak():
        for i in range(100_000):
            await asyncio.sleep(0)
            if i % 50 == 0:
                emitter.ping.emit(True)
                QTimer.singleShot(0, lambda: fired.append(1))
                loop.call_later(0.0, lambda: None)
        for _ in range(200):
            await asyncio.sleep(0.001)
        return len(received), len(fired)

    with loop:
        got, timers = loop.run_until_complete(soak())
    print(f"SOAK-OK signals={got} timers={timers}")
    """
)


def test_qasync_survives_100k_loop_turns_with_timers_and_signals():
    proc = subprocess.run(
        [sys.executable, "-c", SOAK],
        capture_output=True,
        text=True,
        timeout=timeout(240),
    )
    assert proc.returncode == 0, f"soak crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    assert "SOAK-OK signals=2000 timers=" in proc.stdout
    timers = int(proc.stdout.split("timers=")[1])
    assert timers == 2000, proc.stdout
