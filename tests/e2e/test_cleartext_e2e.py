"""A real worker reaching a plain ws:// hub from another host is reported: a warning in the
log and in_clear in the status the Workers panel shows.  Tests stay on 127.0.0.1, so "another
host" is made by declaring loopback not local (desktop/hub/cleartext.py's decision is unit-tested
in tests/hub/test_cleartext.py)."""

from __future__ import annotations

import logging

import pytest

from desktop.hub import cleartext

pytestmark = pytest.mark.asyncio


async def test_a_worker_on_loopback_is_not_marked(stack, caplog):
    with caplog.at_level(logging.WARNING, logger="desktop.hub.server"):
        await stack.add_worker("near")
        await stack.online("near")
    (status,) = [s for s in stack.core.worker_status() if s.name == "near"]
    assert not status.in_clear
    assert "plain ws://" not in caplog.text


async def test_a_worker_from_another_host_over_plain_ws_is_warned_about(stack, caplog, monkeypatch):
    monkeypatch.setattr(cleartext, "is_loopback", lambda remote: False)
    with caplog.at_level(logging.WARNING, logger="desktop.hub.server"):
        await stack.add_worker("far")
        await stack.online("far")
    (status,) = [s for s in stack.core.worker_status() if s.name == "far"]
    assert status.in_clear and status.online
    (record,) = [r for r in caplog.records if "plain ws://" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "far" in record.getMessage() and "configure TLS" in record.getMessage()
