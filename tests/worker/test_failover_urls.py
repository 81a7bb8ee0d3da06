"""Several consoles in server_url: the list is read and checked, and the worker moves on to the
next address when one fails or refuses as a standby (worker/failover.py)."""

from __future__ import annotations

import pytest

from worker.config import ConfigError, load
from worker.failover import TRY_NEXT_CONSOLE, UrlRing, split_urls

A = "ws://a:8000/ws/heartbeat"
B = "ws://b:8000/ws/heartbeat"


def ini(tmp_path, server_url: str, extra: str = ""):
    path = tmp_path / "worker.ini"
    path.write_text(f"[worker]\nserver_url = {server_url}\ntoken = t\n{extra}")
    return path


def test_split_urls_commas_spaces_and_repeats():
    assert split_urls(f"{A}, {B}") == [A, B]
    assert split_urls(f"  {A}\n  {B} {A}") == [A, B]
    assert split_urls("") == []


def test_ring_moves_on_and_waits_only_after_a_whole_round():
    ring = UrlRing([A, B])
    assert ring.current == A
    assert ring.failed() is False and ring.current == B  # next console at once
    assert ring.failed() is True and ring.current == A  # every one failed: back off
    ring.failed()
    ring.worked()  # B welcomed us: a new round starts from there
    assert ring.current == B and ring.failed() is False


def test_single_url_backs_off_every_time():
    ring = UrlRing([A])
    assert ring.failed() is True and ring.current == A


def test_refusals_that_send_to_the_next_console():
    assert "not_leader" in TRY_NEXT_CONSOLE and "unavailable" in TRY_NEXT_CONSOLE
    assert "bad_token" not in TRY_NEXT_CONSOLE  # the other console would say the same


def test_config_reads_several_urls_and_keeps_server_url_the_first(tmp_path):
    cfg = load(ini(tmp_path, f"{A}, {B}"), environ={})
    assert cfg.server_urls == [A, B] and cfg.server_url == A
    one = load(ini(tmp_path, A), environ={})
    assert one.server_urls == [A] and one.server_url == A


def test_every_url_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="http://b"):
        load(ini(tmp_path, f"{A}, http://b:8000/"), environ={})


def test_require_tls_refuses_one_plain_url_among_several(tmp_path):
    wss = "wss://a:8443/ws/heartbeat"
    with pytest.raises(ConfigError, match="plain ws://"):
        load(ini(tmp_path, f"{wss} {B}", "require_tls = yes\n"), environ={})
