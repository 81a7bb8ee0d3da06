"""Lock-outs cannot be turned on the victim: wrong tokens hammered in a worker's name and from its
address slow down only further failures; the real worker process still gets in at once."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from desktop.hub.throttle import AuthThrottle
from desktop.store import queries
from tests.e2e.test_hub_e2e import answer, hello

pytestmark = pytest.mark.asyncio


async def test_wrong_tokens_in_a_workers_name_do_not_lock_it_out(stack):
    hub = stack.core.hub
    hub.throttle = AuthThrottle(base_delay=0.01, max_delay=0.05, block_after=5)
    await stack.add_worker("victim", start=False)

    async def guess(i: int):
        async with connect(stack.core.hub_url) as ws:
            await ws.send(hello("victim", f"wrong-{i}"))
            return await answer(ws)

    answers = [await guess(i) for i in range(12)]
    codes = [reject["code"] for reject, _, _ in answers]
    assert codes[:4] == ["bad_token"] * 4
    assert codes[-1] == "too_many_failures"
    loop = asyncio.get_running_loop()
    # both the name and the address (127.0.0.1, the real worker's too) are now blocked
    assert hub.throttle.blocked("127.0.0.1", "someone", loop.time())
    assert hub.throttle.blocked("10.9.9.9", "victim", loop.time())
    record = await stack.core.db.call(queries.get_worker, "victim")
    assert record.last_seen_at is None and record.enabled and not record.revoked  # untouched

    stack.workers.start("victim")  # a real worker process, from the same address, right token
    await stack.online("victim", seconds=20)
    assert hub.workers["victim"].remote == "127.0.0.1"
    assert "too_many_failures" not in stack.workers.log_text("victim")
    record = await stack.core.db.call(queries.get_worker, "victim")
    assert record.last_seen_at is not None and record.host  # the real worker was recorded


async def test_idle_connections_and_held_failed_logins_from_its_address_do_not_lock_it_out(stack):
    """Behind one NAT: someone holds the address's whole allowance of connections waiting for a
    welcome (failed logins whose refusals the throttle holds for seconds, and connections that
    never say hello) and keeps it full.  The real worker from that address still gets in."""
    hub = stack.core.hub
    hub.throttle = AuthThrottle(base_delay=5.0, max_delay=5.0, block_after=100)
    await stack.add_worker("victim", start=False)
    attackers: list = []

    async def hold_the_allowance():
        for i in range(hub.max_unauthenticated):
            ws = await connect(stack.core.hub_url)
            attackers.append(ws)
            if i % 2:
                await ws.send(hello("victim", f"wrong-{i}"))  # refusal held 5 s

    await hold_the_allowance()
    stack.workers.start("victim")
    try:
        # keep refilling while the worker connects: each new attacker connection takes a place
        for _ in range(3):
            await hold_the_allowance()
        await stack.online("victim", seconds=20)
    finally:
        for ws in attackers:
            await ws.close()
    assert "too_many_connections" not in stack.workers.log_text("victim")
    record = await stack.core.db.call(queries.get_worker, "victim")
    assert record.last_seen_at is not None
