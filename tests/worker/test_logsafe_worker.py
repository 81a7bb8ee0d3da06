"""A hub's text in the worker's log is escaped: a reject reason cannot forge log lines."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import timeout
from tests.worker.hubfixture import start_worker, write_config

pytestmark = pytest.mark.asyncio


async def test_a_reject_reason_full_of_line_breaks_stays_on_its_line(hub, worker_dir):
    forged = "no\n2026-12-03 07:00:00,000 INFO Connected to ws://evil\r\x1b[2K"
    hub.reject = ("bad_token", forged)
    proc = await start_worker(write_config(worker_dir, hub.url), "--once")
    assert await asyncio.wait_for(proc.wait(), timeout(20)) == 1
    text = (worker_dir / "worker.log").read_text()
    assert "\x1b" not in text and "\r" not in text
    assert not any(line.startswith("2026-12-03 07:00:00,000") for line in text.splitlines())
    (refused,) = [line for line in text.splitlines() if "refused this worker" in line]
    assert "no\\n2026-12-03 07:00:00,000 INFO Connected to ws://evil\\r\\x1b[2K" in refused
