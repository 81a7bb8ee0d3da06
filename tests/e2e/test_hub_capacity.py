"""What lets one console serve 10,000 workers (issue 20), checked through real sockets: hellos
that arrive together are checked in one database trip, each on its own merits; a connection
keeps no compression state and no keepalive task between messages."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from desktop.store import queries
from tests.e2e.test_hub_e2e import hello

pytestmark = pytest.mark.asyncio


async def test_hellos_arriving_together_share_a_database_trip_and_are_judged_one_by_one(
    stack, monkeypatch
):
    hub = stack.core.hub
    tokens = {f"w{i}": await stack.core.add_worker(f"w{i}") for i in range(30)}
    trips: list[int] = []
    real = queries.admit_workers

    def counted(hellos, at):
        trips.append(len(hellos))
        return real(hellos, at)

    monkeypatch.setattr(queries, "admit_workers", counted)
    wrong = {"w3", "w17", "w29"}

    async def login(i: int, name: str):
        # each from its own loopback address, like workers on their own hosts (the hub caps
        # connections waiting for a welcome per address)
        ws = await connect(stack.core.hub_url, local_addr=(f"127.0.1.{i + 1}", 0))
        token = tokens[name] + ("x" if name in wrong else "")
        await ws.send(hello(name, token))
        return name, json.loads(await ws.recv()), ws

    results = await asyncio.gather(*(login(i, n) for i, n in enumerate(tokens)))
    try:
        for name, reply, _ in results:
            if name in wrong:
                assert (reply["type"], reply["code"]) == ("reject", "bad_token"), name
            else:
                assert reply["type"] == "welcome" and reply["worker"] == name
        assert set(hub.workers) == set(tokens) - wrong
        assert sum(trips) == len(tokens) and len(trips) < len(tokens), trips
        records = {r.name: r for r in await stack.core.db.call(queries.list_workers)}
        assert all(records[n].last_seen_at is not None for n in set(tokens) - wrong)
        assert all(records[n].last_seen_at is None for n in wrong)
        # the failures were counted by the throttle, per address and per name, as before
        now = asyncio.get_running_loop().time()
        assert hub.throttle.failures("127.0.1.4", "w3", now) == 1
    finally:
        await asyncio.gather(*(ws.close() for _, _, ws in results))


async def test_a_connection_holds_no_compression_state_or_keepalive_between_messages(stack):
    token = await stack.core.add_worker("w")
    async with connect(stack.core.hub_url, compression="deflate") as ws:
        await ws.send(hello("w", token))
        assert json.loads(await ws.recv())["type"] == "welcome"
        (client_ext,) = ws.protocol.extensions  # output is still compressed on the wire
        assert client_ext.local_no_context_takeover and client_ext.remote_no_context_takeover
        await ws.send('{"type":"heartbeat","v":1,"running":[]}')
        await ws.send('{"type":"heartbeat","v":1,"running":[]}')
        await ws.ping()  # a round trip: the heartbeats before it were read
        conn = stack.core.hub._conns["w"]
        (ext,) = conn.ws.protocol.extensions
        # zlib state lives only while a message is (de)compressed
        assert not hasattr(ext, "decoder") and not hasattr(ext, "encoder")
        # the protocol's heartbeats find a silent worker; no websockets keepalive per connection
        assert conn.ws.keepalive_task is None


async def test_a_worker_that_stops_heartbeating_is_closed_on_time_without_keepalive_pings(stack):
    """The hub no longer pings (websockets' keepalive is off): a peer whose TCP connection
    stays open but that says nothing is still closed after SILENCE_FACTOR intervals."""
    from desktop.hub.silence import SILENCE_FACTOR

    hub = stack.core.hub
    token = await stack.core.add_worker("quiet")
    loop = asyncio.get_running_loop()
    async with connect(stack.core.hub_url) as ws:
        await ws.send(hello("quiet", token))
        assert json.loads(await ws.recv())["type"] == "welcome"
        welcomed = loop.time()
        assert "quiet" in hub.workers
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10 * hub.heartbeat_interval))
        silent_for = loop.time() - welcomed
    assert (reply["type"], reply["code"]) == ("reject", "timeout")
    grace = SILENCE_FACTOR * hub.heartbeat_interval
    assert grace <= silent_for < grace + 2 * hub.heartbeat_interval
    assert "quiet" not in hub.workers


async def test_a_worker_whose_hello_cannot_be_recorded_is_still_checked_and_let_in(
    stack, monkeypatch
):
    """The group check writes what the hellos say of their hosts; if the write fails, each
    token is still checked with a read, as before: a good one is welcomed, a wrong one refused."""
    from desktop.store.errors import StoreError

    good = await stack.core.add_worker("good")
    await stack.core.add_worker("other")

    def locked(_hellos, _at):
        raise StoreError("database is locked")

    monkeypatch.setattr(queries, "admit_workers", locked)
    async with connect(stack.core.hub_url) as ws:
        await ws.send(hello("good", good))
        assert json.loads(await ws.recv())["type"] == "welcome"
    async with connect(stack.core.hub_url) as ws:
        await ws.send(hello("other", good))
        reply = json.loads(await ws.recv())
        assert (reply["type"], reply["code"]) == ("reject", "bad_token")


async def test_a_hello_with_a_nul_character_is_refused_alone_and_the_others_get_in(stack):
    # PostgreSQL's driver refuses a NUL in any text: one such hello in a group check must not
    # fail the honest hellos checked with it (nor reach the database at all)
    tokens = {f"h{i}": await stack.core.add_worker(f"h{i}") for i in range(6)}

    async def login(i: int, name: str, token: str, **extra):
        ws = await connect(stack.core.hub_url, local_addr=(f"127.0.2.{i + 1}", 0))
        await ws.send(hello(name, token, **extra))
        return json.loads(await ws.recv()), ws

    bad = [login(10 + i, "x\u0000", "", host="a\u0000b") for i in range(4)]
    good = [login(i, name, token) for i, (name, token) in enumerate(tokens.items())]
    replies = await asyncio.gather(*bad, *good)
    try:
        for reply, _ in replies[:4]:
            assert reply["type"] in ("reject", "error") and "NUL" in reply["reason"], reply
        for reply, _ in replies[4:]:
            assert reply["type"] == "welcome", reply
        assert set(stack.core.hub.workers) == set(tokens)
    finally:
        await asyncio.gather(*(ws.close() for _, ws in replies))


async def test_a_group_check_the_store_cannot_take_is_redone_hello_by_hello(stack, monkeypatch):
    # whatever makes the grouped check fail (here: the driver refusing one value), each hello
    # is then checked alone, so only the one at fault is refused
    tokens = {f"g{i}": await stack.core.add_worker(f"g{i}") for i in range(5)}
    real = queries.admit_workers

    def refusing(hellos, at):
        if len(hellos) > 1:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real(hellos, at)

    monkeypatch.setattr(queries, "admit_workers", refusing)

    async def login(i: int, name: str, token: str):
        ws = await connect(stack.core.hub_url, local_addr=(f"127.0.3.{i + 1}", 0))
        await ws.send(hello(name, token))
        return json.loads(await ws.recv()), ws

    replies = await asyncio.gather(*(login(i, n, t) for i, (n, t) in enumerate(tokens.items())))
    try:
        assert [r["type"] for r, _ in replies] == ["welcome"] * 5
        assert set(stack.core.hub.workers) == set(tokens)
    finally:
        await asyncio.gather(*(ws.close() for _, ws in replies))


async def test_a_hello_timer_that_fires_early_looks_again_and_still_closes_on_time(stack):
    # asyncio may run a timer up to its clock resolution early (15.6 ms on Windows): the hub
    # must not then forget the deadline of a connection that is still silent
    hub = stack.core.hub
    ws = await connect(stack.core.hub_url, local_addr=("127.0.4.1", 0))
    try:
        await asyncio.sleep(0.2)
        (conn,) = [c for c in hub._all if c.remote == "127.0.4.1"]
        conn.session.hello_deadline = 0.5  # shorter for the test; the first timer is long
        hub._hello_overdue(conn)  # "early": 0.3 s before the deadline
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (reply["type"], reply["code"]) == ("reject", "timeout")
    finally:
        await ws.close()


async def test_the_hello_timer_is_dropped_once_the_hello_came_and_kept_until_then(
    stack, monkeypatch
):
    # a timer per connection that fires after a welcome only wakes an idle console for nothing
    hub = stack.core.hub
    hub.hello_deadline = 0.3
    overdue: list[str] = []
    real = hub._hello_overdue

    def counted(conn):
        overdue.append(conn.remote)
        real(conn)

    monkeypatch.setattr(hub, "_hello_overdue", counted)
    token = await stack.core.add_worker("prompt")
    welcomed = await connect(stack.core.hub_url, local_addr=("127.0.5.1", 0))
    mute = await connect(stack.core.hub_url, local_addr=("127.0.5.2", 0))
    try:
        await welcomed.send(hello("prompt", token))
        assert json.loads(await welcomed.recv())["type"] == "welcome"
        reply = json.loads(await asyncio.wait_for(mute.recv(), 5))
        assert (reply["type"], reply["code"]) == ("reject", "timeout")
        await asyncio.sleep(0.2)  # past the welcomed one's deadline too
        assert overdue == ["127.0.5.2"]
    finally:
        await welcomed.close()
        await mute.close()
