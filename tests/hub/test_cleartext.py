"""When is a worker's token in clear: plain ws:// and an address that is not this host."""

from __future__ import annotations

import pytest

from desktop.hub.cleartext import is_loopback, token_in_clear


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("::ffff:192.168.1.20", False),
        ("?", False),  # no address known: assume the worst
        ("", False),
    ],
)
def test_is_loopback(remote, loopback):
    assert is_loopback(remote) is loopback


def test_token_in_clear_only_without_tls_and_off_host():
    assert token_in_clear(False, "192.168.1.20")
    assert not token_in_clear(True, "192.168.1.20")
    assert not token_in_clear(False, "127.0.0.1")
