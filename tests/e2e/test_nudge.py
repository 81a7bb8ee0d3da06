"""The UDP nudge: only a sender that can read the database's key is heard, each datagram once,
within a short time window, at a bounded rate."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest

from desktop import poke
from tests.conftest import timeout

KEY = "11" * 32


def test_a_genuine_nudge_is_accepted_once():
    v = poke.Verifier(KEY, window=10)
    data = poke.make(KEY, 1000.0, b"n" * 16)
    assert v.check(data, 1001.0) is None
    assert v.check(data, 1002.0) == "replayed"
    assert v.check(poke.make(KEY, 1000.0, b"m" * 16), 1002.0) is None  # another nonce


def tampered(data: bytes) -> bytes:
    """The last byte of the proof changed (setting it to 0 left it as it was one run in 256)."""
    return data[:-1] + bytes([data[-1] ^ 0x01])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"jobtrigger: changed", "not a nudge"),  # the old, unsigned nudge
        (poke.make("22" * 32, 1000.0), "bad proof"),  # signed with a guessed key
        (tampered(poke.make(KEY, 1000.0)), "bad proof"),  # tampered proof
        (poke.make(KEY, 1000.0 - 11), "stale"),
        (poke.make(KEY, 1000.0 + 11), "stale"),
        (poke.make(KEY, float("nan")), "stale"),
    ],
)
def test_forged_or_stale_nudges_are_refused(data, why):
    assert poke.Verifier(KEY, window=10).check(data, 1000.0) == why


def test_replay_memory_is_bounded_and_forgets_expired_nonces():
    v = poke.Verifier(KEY, window=10, max_nonces=3)
    for i in range(3):
        assert v.check(poke.make(KEY, 100.0 + i), 100.0 + i) is None
    assert v.check(poke.make(KEY, 103.0), 103.0) == "too many nudges"
    assert v.check(poke.make(KEY, 200.0), 200.0) is None  # the old ones expired
    assert len(v._seen) == 1


def test_pacer_defers_rather_than_drops():
    p = poke.Pacer(0.1)
    assert p.wait(10.0) == 0
    assert p.wait(10.02) == pytest.approx(0.08)
    assert p.wait(10.03) == pytest.approx(0.17)  # queued behind the deferred one
    assert p.wait(11.0) == 0


@pytest.mark.asyncio
async def test_forged_and_replayed_datagrams_on_a_real_socket_do_nothing():
    pokes = asyncio.Queue()
    transport, port = await poke.listen(lambda: pokes.put_nowait(time.monotonic()), KEY)
    try:
        genuine = poke.make(KEY, time.time())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(genuine, ("127.0.0.1", port))
            await asyncio.wait_for(pokes.get(), timeout(10))
            for _ in range(3):
                sock.sendto(genuine, ("127.0.0.1", port))  # replays
            sock.sendto(poke.make("22" * 32, time.time()), ("127.0.0.1", port))
            sock.sendto(poke.make(KEY, time.time() - 60), ("127.0.0.1", port))
            sock.sendto(b"jobtrigger: changed", ("127.0.0.1", port))
        listener = transport.get_protocol()
        deadline = time.monotonic() + timeout(10)
        while listener.refused < 6:
            assert time.monotonic() < deadline, listener.refused
            await asyncio.sleep(0.01)  # datagrams give no event to await
        assert pokes.empty()
        poke.send(port, KEY)  # the CLI's own nudge is still heard
        await asyncio.wait_for(pokes.get(), timeout(10))
        assert pokes.empty() and listener.refused == 6
    finally:
        transport.close()


@pytest.mark.asyncio
async def test_a_flood_of_genuine_nudges_is_paced():
    pokes: list[float] = []
    transport, port = await poke.listen(lambda: pokes.append(time.monotonic()), KEY)
    try:
        for _ in range(50):
            poke.send(port, KEY)
        deadline = time.monotonic() + timeout(10)
        while len(pokes) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(3 * poke.MIN_INTERVAL)  # proving that no more come: nothing to await
        # 50 datagrams in a few ms: acted on at once, then at most once per interval
        assert 2 <= len(pokes) < 10
        gaps = [b - a for a, b in itertools.pairwise(pokes)]
        assert min(gaps) >= poke.MIN_INTERVAL * 0.9
    finally:
        transport.close()
