"""Glue between Qt slots and coroutines on the one qasync loop.

Qt slots are plain functions; actions that talk to the core are coroutines.  `spawn` starts one
as a task, keeps a reference (asyncio only keeps weak ones) and routes failures to a handler that
tells the person what went wrong.  `ask` shows a dialog with open() and awaits its result:
never exec() inside a coroutine (DESIGN.md, nested Qt loops).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QMessageBox, QWidget

log = logging.getLogger(__name__)

_tasks: set[asyncio.Task] = set()

ErrorHandler = Callable[[str, BaseException], None]


def _default_error_handler(what: str, exc: BaseException) -> None:
    log.error("%s failed: %s", what, exc)


_error_handler: ErrorHandler = _default_error_handler


def set_error_handler(handler: ErrorHandler | None) -> None:
    """Who tells the person about failed actions; None = just log (after the window is gone)."""
    global _error_handler
    _error_handler = handler or _default_error_handler


def set_background_error_handler(handler: ErrorHandler | None) -> None:
    """Who hears about failed background work (refreshes after events, page loads): not a
    dialog per failure, or a database outage would open one every second."""
    global _background_handler
    _background_handler = handler or _default_error_handler


_background_handler: ErrorHandler = _default_error_handler


def spawn(coro: Coroutine[Any, Any, Any], what: str, *, background: bool = False) -> asyncio.Task:
    """Run `coro` on the loop; an exception goes to the error handler (the background one for
    background=True) with `what` as context."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)

    def done(t: asyncio.Task) -> None:
        _tasks.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            try:
                (_background_handler if background else _error_handler)(what, exc)
            except Exception:
                log.exception("error handler failed for %s", what)

    task.add_done_callback(done)
    return task


def pending_tasks() -> set[asyncio.Task]:
    return set(_tasks)


async def cancel_pending() -> None:
    tasks = [t for t in _tasks if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


# Called with each dialog `ask` opens: tests answer dialogs this way, tools can log them.
dialog_watchers: list[Callable[[QDialog], None]] = []


async def ask(dialog: QDialog) -> int:
    """Open `dialog` window-modally and wait for it to finish; returns its result code."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()

    def finished(code: int) -> None:
        if not fut.done():
            fut.set_result(code)

    dialog.finished.connect(finished)
    dialog.open()
    for watcher in list(dialog_watchers):
        watcher(dialog)
    try:
        return await fut
    finally:
        dialog.finished.disconnect(finished)


async def confirm(parent: QWidget | None, title: str, text: str, *, destructive=False) -> bool:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if destructive else QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(text)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    code = await ask(box)
    box.deleteLater()
    return code == QMessageBox.StandardButton.Yes


def show_message(
    parent: QWidget | None, title: str, text: str, *, detail: str = "", error: bool = True
) -> QMessageBox:
    """A non-blocking message box (open(), not exec()); returned so callers/tests can see it."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical if error else QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(text)
    if detail:
        box.setDetailedText(detail)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    box.open()
    return box
