"""What one peer can make the hub hold, attacked through real sockets: over-limit messages,
malformed text, idle connections that never say hello, many unauthenticated connections from
one address, a flood of reports while the database is slow, a heartbeat with ten million run
ids.  Each is answered with a reason; the hub keeps serving a real worker meanwhile, and memory
is measured, not assumed (docs/SECURITY.md, "Isolation between workers and limits")."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import tracemalloc

import pytest
from websockets.exceptions import ConnectionClosed

from desktop.hub import session as s
from desktop.store import queries
from tests.conftest import timeout
from tests.e2e.conftest import wait_until
from tests.e2e.rawpeer import SCRIPT, RawPeer, hello_frame

pytestmark = pytest.mark.asyncio


async def refused(peer: RawPeer) -> tuple[dict, int | None]:
    reject = await peer.expect("reject")
    code, _ = await peer.until_closed()
    return reject, code


async def test_over_limit_and_malformed_messages_are_answered_and_others_keep_working(stack):
    await stack.add_worker("good")
    token = await stack.core.add_worker("raw")
    await stack.online("good")
    job = await stack.job(args=["0", "30", "0.05"], concurrency="allow")
    long_run = await stack.core.run_now(job)
    await stack.until_state(long_run, "running")
    url = stack.core.hub_url
    ids = list(range(1, s.MAX_RUN_IDS + 2))

    before_welcome = [
        ("claims too many runs", hello_frame("raw", token, runs=ids), "limit", "hello lists"),
        ("unencodable name", hello_frame("raw\ud800", token), "limit", "not valid Unicode"),
        (
            "long script name",
            hello_frame("raw", token, scripts=[{"name": "a" * 300, "sha256": ""}]),
            "limit",
            "catalogue entry is longer",
        ),
        (
            "huge integer",
            '{"type":"hello","v":1,"x":' + "9" * 5000 + "}",
            "malformed",
            "not valid JSON",
        ),
        (
            "infinite id",
            '{"type":"started","v":1,"run_id":1e999,"seq":1,"at":0}',
            "malformed",
            "must be an integer",
        ),
    ]
    for label, frame, code, text in before_welcome:
        peer = await RawPeer.connect(url)
        await peer.ws.send(frame)
        reject, close = await refused(peer)
        assert (reject["code"], close) == (code, 1008), label
        assert text in reject["reason"], (label, reject)

    after_welcome = [
        ("heartbeat with too many runs", {"type": "heartbeat", "running": ids}, "heartbeat lists"),
        (
            "catalogue too big",
            {"type": "heartbeat", "scripts": [SCRIPT] * (s.MAX_SCRIPTS + 1)},
            "the catalogue has",
        ),
        (
            "seq out of range",
            {"type": "started", "run_id": 1, "seq": 2**40, "at": 0},
            "seq is over",
        ),
        (
            "exit code out of range",
            {
                "type": "finished",
                "run_id": 1,
                "seq": 1,
                "at": 0,
                "outcome": "failed",
                "exit_code": 2**40,
            },
            "exit_code is outside",
        ),
        (
            "run id out of range",
            {"type": "declined", "run_id": 2**64, "reason": ""},
            "run_id is over",
        ),
    ]
    for label, message, text in after_welcome:
        peer = await RawPeer.welcomed(url, "raw", token)
        await peer.ws.send(json.dumps({"v": 1, **message}))
        reject, close = await refused(peer)
        assert reject["code"] == "limit" and text in reject["reason"], (label, reject)

    peer = await RawPeer.welcomed(url, "raw", token)
    await peer.ws.send(b'{"type":"heartbeat","v":1}')  # JSON, but in a binary frame
    reject, close = await refused(peer)
    assert reject["code"] == "malformed" and "binary frames" in reject["reason"]

    peer = await RawPeer.welcomed(url, "raw", token)
    await peer.ws.send(b'{"type":"error","v":1,"reason":"\xff"}', text=True)  # invalid UTF-8
    code, reason = await peer.until_closed()
    assert code == 1007 and reason  # "invalid data", answered by websockets with the cause

    # none of it touched the database or the good worker's run
    assert (await stack.core.db.call(queries.get_worker, "raw")).scripts == (SCRIPT,)
    record = await stack.until_state(long_run, "succeeded", seconds=60)
    assert record.worker_name == "good"
    text = "".join(c.text for c in await stack.core.db.call(queries.read_output, long_run))
    assert "line 30 of 30" in text


async def test_an_idle_connection_is_closed_and_one_address_cannot_hold_many(stack):
    hub = stack.core.hub
    hub.hello_deadline = 1.0
    token = await stack.core.add_worker("late")
    loop = asyncio.get_running_loop()
    opened = loop.time()
    idle = [await RawPeer.connect(stack.core.hub_url) for _ in range(hub.max_unauthenticated)]
    # one more makes room: the oldest silent one is closed, the address never holds more
    one_more = await RawPeer.connect(stack.core.hub_url)
    reject, _ = await refused(idle.pop(0))
    assert reject["code"] == "too_many_connections" and "127.0.0.1" in reject["reason"]
    assert "still without hello" in reject["reason"]
    for peer in [*idle, one_more]:
        reject, close = await refused(peer)
        assert (reject["code"], close) == ("timeout", 1008)
        assert "no hello within 1 s" in reject["reason"]
    assert loop.time() - opened >= 1.0
    # the address is free again, and a worker that says hello in time gets in
    peer = await RawPeer.welcomed(stack.core.hub_url, "late", token)
    await peer.close()


async def test_a_flood_of_reports_while_the_database_is_slow_is_held_back_not_buffered(stack):
    hub = stack.core.hub
    hub.max_pending = 50
    token = await stack.core.add_worker("fast")
    peer = await RawPeer.welcomed(stack.core.hub_url, "fast", token)
    job = await stack.job(target_kind="worker", target_value="fast")
    run = await stack.core.run_now(job)
    await peer.expect("dispatch", run_id=run)
    await peer.send("started", run_id=run, seq=1, at=time.time())
    await peer.expect("ack", run_id=run, seq=1)

    gate = threading.Event()
    blocked = asyncio.ensure_future(stack.core.db.call(gate.wait, timeout(30)))

    async def held_back():
        return hub.pending_of("fast") >= hub.max_pending

    try:
        for seq in range(2, 402):
            await peer.send("output", run_id=run, seq=seq, stream="stdout", text=f"{seq}\n")
        await wait_until(stack.core, held_back, 10, "the hub to stop reading")
        # the reader waits: nothing more is taken in while the database is busy
        await asyncio.sleep(0.3)  # an absence is checked over a moment, not awaited
        assert hub.pending_of("fast") == hub.max_pending
    finally:
        gate.set()
        await blocked

    async def all_stored():
        chunks = await stack.core.db.call(queries.read_output, run)
        return len(chunks) == 400

    await wait_until(stack.core, all_stored, 30, "every report stored after the hold-back")
    await peer.expect("ack", run_id=run, seq=401)
    assert peer.closed is None
    await peer.close()


async def test_a_heartbeat_with_ten_million_run_ids_is_refused_in_bounded_memory(stack):
    token = await stack.core.add_worker("big")
    peer = await RawPeer.welcomed(stack.core.hub_url, "big", token)

    async def fragments():
        # about 80 MB of JSON in 64 KiB fragments: the peer never holds it all either
        yield '{"type":"heartbeat","v":1,"running":[1'
        chunk = ",1234567" * 8192
        for _ in range(10_000_000 // 8192):
            yield chunk
        yield "]}"

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            await peer.ws.send(fragments())
        except ConnectionClosed:
            pass  # closed while still sending: expected
        code, reason = await peer.until_closed()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 1009 and reason  # "message too big", with the limit in the reason
    # ten million ints in a list alone would be over 80 MB; the hub stopped at the 1 MiB limit
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"

    # the largest heartbeat that fits a frame is refused by count, also in bounded memory
    peer = await RawPeer.welcomed(stack.core.hub_url, "big", token)
    frame = '{"type":"heartbeat","v":1,"running":[' + ",".join(["1"] * 500_000) + "]}"
    tracemalloc.start()
    try:
        await peer.ws.send(frame)
        reject, _ = await refused(peer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reject["code"] == "malformed" and "more than 10000 items" in reject["reason"]
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


async def test_a_failure_on_the_consoles_side_still_answers_the_peer(stack, monkeypatch):
    token = await stack.core.add_worker("unlucky")

    def broken(*_args, **_kw):
        raise RuntimeError("a bug in the console")

    # the grouped check and the one-by-one check it falls back to both fail
    monkeypatch.setattr(queries, "admit_workers", broken)
    monkeypatch.setattr(queries, "authenticate_worker", broken)
    peer = await RawPeer.connect(stack.core.hub_url)
    await peer.ws.send(hello_frame("unlucky", token))
    reject, close = await refused(peer)
    assert (reject["code"], close) == ("internal", 1008)
    assert "see its log" in reject["reason"]
    assert "unlucky" not in stack.core.hub.workers


BOMB = """
import asyncio, sys
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

async def main():
    async with connect(sys.argv[1], compression="deflate", max_size=None) as ws:
        assert ws.protocol.extensions, "the hub did not accept permessage-deflate"
        try:
            await ws.send("0" * (64 * 1024 * 1024))  # about 64 KB on the wire, 64 MiB inflated
            await ws.recv()
        except ConnectionClosed:
            pass
        print(ws.close_code)

asyncio.run(main())
"""


async def test_a_compression_bomb_is_closed_at_the_frame_limit_in_bounded_memory(stack):
    """permessage-deflate: a small frame that inflates to 64 MiB.  The client is another process,
    so the memory measured here is the hub's alone."""
    await stack.add_worker("good")
    await stack.online("good")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOMB, stack.core.hub_url, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout(60))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.decode().strip() == "1009"  # message too big, counted after inflating
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    job = await stack.job(target_kind="worker", target_value="good")
    assert (await stack.until_state(await stack.core.run_now(job), "succeeded")).exit_code == 0


async def test_slow_loris_upgrades_cannot_pile_up_nor_keep_a_worker_out(stack):
    """Many TCP connections that send the HTTP upgrade a byte at a time (or nothing): the hub
    keeps at most MAX_HANDSHAKING of them per address, dropping the oldest, and a real worker
    from the same address connects meanwhile."""
    hub = stack.core.hub
    await stack.add_worker("good", start=False)
    port = hub.bound_port
    slow = []
    for _ in range(hub.handshakes.limit * 5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ws/heartbeat HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        await writer.drain()
        slow.append((reader, writer))
    try:

        async def bounded():
            return hub.handshakes.handshaking("127.0.0.1") <= hub.handshakes.limit

        await wait_until(stack.core, bounded, 10, "the handshakes to be bounded")
        # the dropped ones were closed by the hub: their reads end at once
        dropped = 0
        for reader, _ in slow[: -hub.handshakes.limit]:
            try:
                dropped += await asyncio.wait_for(reader.read(), timeout(10)) == b""
            except ConnectionResetError:  # aborted: a reset rather than a clean end
                dropped += 1
        assert dropped == len(slow) - hub.handshakes.limit
        stack.workers.start("good")  # while the newest slow ones are still held
        await stack.online("good", seconds=20)
    finally:
        for _, writer in slow:
            writer.close()
