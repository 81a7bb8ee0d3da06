"""Turn Ctrl+C, SIGTERM and (Windows) Ctrl+Break / console window close into one stop event.

POSIX uses ``loop.add_signal_handler``.  Windows has no SIGTERM delivery and no
``add_signal_handler``; the C runtime reports Ctrl+C as SIGINT and Ctrl+Break, closing the
console window, log-off and shutdown as SIGBREAK, so plain ``signal.signal`` handlers cover
"window close" too.  Windows then kills the process about 5 seconds after a close event, so
there only a short shutdown_grace_seconds can be honoured; the spool keeps the rest.
"""

from __future__ import annotations

import asyncio
import signal
import sys


def install(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    def request_stop(*_: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    if sys.platform == "win32":
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGBREAK, request_stop)  # type: ignore[attr-defined]
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
