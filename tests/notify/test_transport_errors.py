"""A mail server's error that smtplib reports with a str instead of the server's bytes: the
delivery fails with the server's words, not with a crash inside the error handling."""

from __future__ import annotations

import socket
import threading

import pytest

from desktop.core import notify as n
from desktop.notify import transport

FACTS = n.RunFacts(
    run_id=7,
    job="backup",
    state="failed",
    event="failed",
    worker="w1",
    attempt=1,
    exit_code=3,
    reason="exit code 3",
    scheduled="2026-05-01 20:00:00 UTC",
    started="2026-05-01 20:00:01 UTC",
    finished="2026-05-01 20:00:05 UTC",
    zone="UTC",
    output=(),
    how_to_open="",
)


def test_an_overlong_greeting_fails_the_delivery_with_the_reason():
    # smtplib raises SMTPResponseException(500, "Line too long.") itself, with a str message
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"220 " + b"x" * 9000 + b"\r\n")
            conn.recv(1024)  # until the client hangs up

    server = threading.Thread(target=serve)
    server.start()
    config = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "a@b.c", "to": []}
    try:
        with pytest.raises(transport.DeliveryError) as caught:
            transport.send(n.EMAIL, config, "", FACTS, "d1", timeout=10)
    finally:
        server.join(10)
        listener.close()
    assert str(caught.value) == "mail server said 500 Line too long."
    assert not server.is_alive()
