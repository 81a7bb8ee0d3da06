"""Peer text in logs: escaped repr-style, so one record is one line in console.log."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest
from websockets.asyncio.client import connect

from desktop import app
from tests.conftest import timeout
from tests.e2e.test_hub_e2e import answer, hello
from worker import logsafe

EVIL = "x\n2026-12-03 07:00:00,000 INFO desktop.hub.server: worker boss online\r\x1b[2K\x1b[31m"


def test_peer_escapes_what_breaks_or_repaints_a_line():
    assert logsafe.peer("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert logsafe.peer("\x1b[31mred\x00\x7f\x85") == "\\x1b[31mred\\x00\\x7f\\x85"
    assert logsafe.peer("l\u2028r\u202eevil\ufeff") == "l\\u2028r\\u202eevil\\ufeff"
    assert logsafe.peer("plain text, ünïcödé, C:\\path") == "plain text, ünïcödé, C:\\path"


def test_formatter_escapes_the_message_and_keeps_the_traceback():
    fmt = logsafe.EscapingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "worker %s says: %s", ("w\n1", EVIL), sys.exc_info()
        )
    text = fmt.format(record)
    first, *rest = text.split("\n")
    assert first.startswith("ERROR worker w\\n1 says: x\\n2026") and "\x1b" not in text
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
    assert record.getMessage().count("\n") == 2  # the record itself is left as it was


class _Records(logging.Handler):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.loop = loop
        self.reported = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if "reports:" in record.getMessage():
            self.loop.call_soon_threadsafe(self.reported.set)


@pytest.mark.asyncio
async def test_forged_lines_from_a_raw_client_stay_one_line_in_console_log(
    stack, tmp_path, monkeypatch
):
    monkeypatch.setattr(app, "log_dir", lambda: tmp_path / "logs")
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    counter = _Records(asyncio.get_running_loop())
    try:
        path = app.setup_logging()
        root.addHandler(counter)
        token = await stack.core.add_worker("raw")
        async with connect(stack.core.hub_url) as ws:  # an unknown name full of line breaks
            await ws.send(hello(EVIL, "wrong"))
            reject, _, _ = await answer(ws)
        assert reject["code"] == "unknown"
        async with connect(stack.core.hub_url) as ws:  # an enrolled worker's error text
            await ws.send(hello("raw", token))
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(json.dumps({"type": "error", "v": 1, "reason": EVIL}))
            await asyncio.wait_for(counter.reported.wait(), timeout(10))
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    text = path.read_text(encoding="utf-8")
    assert not any(r.exc_info for r in counter.records)
    assert text.count("\n") == len(counter.records)  # exactly one line per record
    assert "\x1b" not in text and "\r" not in text
    reported = [line for line in text.splitlines() if "reports:" in line]
    assert len(reported) == 1 and reported[0].endswith("\\r\\x1b[2K\\x1b[31m")
    assert not any(line.startswith("2026-12-03 07:00:00,000") for line in text.splitlines())
