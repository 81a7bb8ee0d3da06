"""A busy console's appointment (HTTP 503 + Retry-After at the opening handshake): what the
worker believes of it (worker/backoff.py Backoff.busy_delay)."""

from __future__ import annotations

import random

from worker.backoff import BUSY_MAX, Backoff


def test_the_worker_believes_only_a_503_with_whole_seconds_and_caps_it():
    class Response:
        def __init__(self, status: int, retry_after: str | None) -> None:
            self.status_code = status
            self.headers = {} if retry_after is None else {"Retry-After": retry_after}

    class Refused(Exception):
        def __init__(self, status: int, retry_after: str | None) -> None:
            self.response = Response(status, retry_after)

    backoff = Backoff(rng=random.Random(3))
    assert 7 <= backoff.busy_delay(Refused(503, "7")) < 8
    assert backoff.busy_delay(Refused(503, "86400")) < BUSY_MAX + 1  # a hostile console
    assert 1 <= backoff.busy_delay(Refused(503, "0")) < 2
    assert backoff.busy_delay(Refused(503, "Wed, 21 Oct 2026 07:28:00 GMT")) is None
    assert backoff.busy_delay(Refused(503, "-5")) is None
    assert backoff.busy_delay(Refused(503, None)) is None
    assert backoff.busy_delay(Refused(500, "7")) is None
    assert backoff.busy_delay(OSError("refused")) is None
    assert backoff.attempt == 0  # an appointment is not a failure: the backoff stays put


def test_a_header_of_non_ascii_digits_is_garbage_not_a_crash():
    """Headers are read as Latin-1: "²" and "٣" pass str.isdigit() but not float()."""

    class Response:
        status_code = 503

        def __init__(self, value: str) -> None:
            self.headers = {"Retry-After": value}

    class Refused(Exception):
        def __init__(self, value: str) -> None:
            self.response = Response(value)

    backoff = Backoff(rng=random.Random(1))
    for value in ("\u00b2", "\u0663", "1\u00b2", "9" * 400, " 7 x", "+5", "5.5"):
        assert backoff.busy_delay(Refused(value)) is None, value
    assert 5 <= backoff.busy_delay(Refused(" 5 ")) < 6
