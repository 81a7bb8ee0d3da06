"""Attacks on the hub by enrolled workers, through real sockets against the real console (store,
hub, scheduler): reports for another worker's run, claims and heartbeats for it, tags from the
hello, a poisoned report in a shared commit batch.  Each test checks the database afterwards,
not only what the hub answered (docs/SECURITY.md, "Ownership on the hub")."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from desktop.store import queries
from tests.conftest import timeout
from tests.e2e.conftest import cli, wait_until
from tests.e2e.rawpeer import RawPeer

pytestmark = pytest.mark.asyncio


async def output_of(stack, run_id: int) -> list[str]:
    return [c.text for c in await stack.core.db.call(queries.read_output, run_id)]


async def enrolled(stack, *names: str) -> list[RawPeer]:
    peers = []
    for name in names:
        token = await stack.core.add_worker(name)
        peers.append(await RawPeer.welcomed(stack.core.hub_url, name, token))
    return peers


async def dispatched_to(stack, peer: RawPeer, name: str) -> int:
    job = await stack.job(name=f"for-{name}", target_kind="worker", target_value=name)
    run_id = await stack.core.run_now(job)
    await peer.expect("dispatch", run_id=run_id)
    return run_id


async def test_reports_for_another_workers_run_are_refused_and_change_nothing(stack):
    victim, attacker = await enrolled(stack, "victim", "attacker")
    run = await dispatched_to(stack, victim, "victim")

    # a decline would put the victim's run back in the queue
    await attacker.send("declined", run_id=run, reason="give it to me")
    refused = await attacker.expect("error")
    assert refused["reason"] == f"run {run}: run is not dispatched to this worker; declined refused"
    # a start would take it over
    await attacker.send("started", run_id=run, seq=1, at=time.time())
    refused = await attacker.expect("error")
    assert refused["reason"] == f"run {run}: run is assigned to another worker; started refused"
    await attacker.expect("ack", run_id=run, seq=1)  # its copy is dropped: never stored
    record = await stack.run(run)
    assert (record.state, record.worker_name, record.last_seq) == ("dispatched", "victim", 0)

    await victim.send("started", run_id=run, seq=1, at=time.time())
    await victim.expect("ack", run_id=run, seq=1)
    # spoofed output and a spoofed result, ahead of the real ones and with higher seqs
    await attacker.send("output", run_id=run, seq=2, stream="stdout", text="spoofed\n")
    await attacker.send(
        "finished", run_id=run, seq=50, outcome="succeeded", exit_code=0, at=time.time()
    )
    assert "output refused" in (await attacker.expect("error"))["reason"]
    assert "finished refused" in (await attacker.expect("error"))["reason"]
    await attacker.expect("ack", run_id=run, seq=50)
    record = await stack.run(run)
    assert (record.state, record.last_seq, record.exit_code) == ("running", 1, None)
    assert await output_of(stack, run) == []

    # the real result wins, and the attacker's seq 50 never moved the victim's acks
    await victim.send("output", run_id=run, seq=2, stream="stdout", text="real\n")
    await victim.send("finished", run_id=run, seq=3, outcome="failed", exit_code=3, at=time.time())
    await victim.expect("ack", run_id=run, seq=3)
    record = await stack.until_state(run, "failed")
    assert (record.exit_code, record.worker_name, record.last_seq) == (3, "victim", 3)
    assert await output_of(stack, run) == ["real\n"]
    assert max(victim.acks(run)) == 3  # the attacker's seq 50 never reached the victim

    # a queued run (its worker is not connected) cannot be started by anyone else
    job = await stack.job(name="elsewhere", target_kind="worker", target_value="offline-host")
    queued = await stack.core.run_now(job)
    await attacker.send("started", run_id=queued, seq=1, at=time.time())
    refused = await attacker.expect("error")
    assert "queued and not dispatched to any worker; started refused" in refused["reason"]
    record = await stack.run(queued)
    assert (record.state, record.worker_name, record.last_seq) == ("queued", None, 0)
    # the attacker is still connected (a refusal is an answer, not a disconnect)
    assert attacker.closed is None
    for peer in (victim, attacker):
        await peer.close()


async def test_claims_and_heartbeats_cannot_keep_another_workers_run_alive(stack):
    victim, attacker = await enrolled(stack, "victim", "attacker")
    run = await dispatched_to(stack, victim, "victim")
    await victim.send("started", run_id=run, seq=1, at=time.time())
    await victim.expect("ack", run_id=run, seq=1)
    victim.running = [run]

    # the attacker reconnects claiming it holds the victim's run, then heartbeats it
    await attacker.close()
    token = await stack.core.db.call(queries.rotate_token, "attacker")
    attacker = await RawPeer.welcomed(stack.core.hub_url, "attacker", token, runs=[run])
    attacker.running = [run]
    assert stack.core.hub.workers["attacker"].running == frozenset()
    # ... nor can its claims, heartbeats or leaving make the run lost while its worker holds it
    await attacker.close()
    attacker = await RawPeer.welcomed(stack.core.hub_url, "attacker", token, runs=[run])
    attacker.running = [run]
    await asyncio.sleep(timeout(5))  # past the 4 s lost grace: an absence is checked over time
    record = await stack.run(run)
    assert (record.state, record.worker_name) == ("running", "victim")

    # the victim goes away: nothing but the attacker's word keeps the run alive
    await victim.close()
    record = await stack.until_state(run, "lost", seconds=20)
    assert record.worker_name == "victim"
    assert stack.core.hub.workers["attacker"].running == frozenset()
    assert attacker.closed is None  # it kept heartbeating all along
    await attacker.close()


async def test_a_run_given_back_cannot_be_kept_alive_by_its_first_worker(stack):
    first, second = await enrolled(stack, "first", "second")
    await stack.core.set_worker_config("first", ["t"])
    job = await stack.job(name="tagged", target_kind="tag", target_value="t")
    run = await stack.core.run_now(job)
    await first.expect("dispatch", run_id=run)
    await first.send("declined", run_id=run, reason="slots full")  # legitimately its own
    await stack.until_state(run, "queued")
    await stack.core.set_worker_config("first", [])
    await stack.core.set_worker_config("second", ["t"])
    await second.expect("dispatch", run_id=run)
    await second.send("started", run_id=run, seq=1, at=time.time())
    await second.expect("ack", run_id=run, seq=1)

    # the first worker still says it runs it; the second one goes away
    first.running = [run]
    await second.close()
    record = await stack.until_state(run, "lost", seconds=20)
    assert record.worker_name == "second"
    assert first.closed is None
    await first.close()


async def test_tags_and_slots_come_from_the_console_never_from_the_hello(stack):
    # the worker's own ini says tags=prod and 4 slots; the console registered it with neither
    token = await stack.core.add_worker("host1", (), 1)
    stack.workers.prepare("host1", stack.core.hub_url, token, tags=("prod",), slots=4)
    stack.workers.start("host1")
    await stack.online("host1")
    live = stack.core.hub.workers["host1"]
    assert (live.tags, live.slots) == (frozenset(), 1)
    stored = await stack.core.db.call(queries.get_worker, "host1")
    assert (stored.tags, stored.slots) == ((), 1)

    prod = await stack.job(name="prod-job", target_kind="tag", target_value="prod")
    anyone = await stack.job(name="any-job", args=["0", "1", "0"])
    secret = await stack.core.run_now(prod)
    other = await stack.core.run_now(anyone)
    await stack.until_state(other, "succeeded")  # the scheduler had its chance
    assert (await stack.run(secret)).state == "queued"

    # the admin grants the tag from the CLI (another process): the running console applies it
    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: cli(stack.core.db_url, "workers", "set", "host1", "--tags", "prod")
    )
    assert result.returncode == 0, result.stderr
    record = await stack.until_state(secret, "succeeded", seconds=30)
    assert record.worker_name == "host1"
    assert stack.core.hub.workers["host1"].tags == frozenset({"prod"})
    assert (await stack.core.db.call(queries.get_worker, "host1")).slots == 1


async def test_a_poisoned_report_is_refused_alone_and_the_honest_one_in_its_batch_is_stored(
    stack,
):
    bad, good = await enrolled(stack, "bad", "good")
    bad_run = await dispatched_to(stack, bad, "bad")
    good_run = await dispatched_to(stack, good, "good")
    for peer, run in ((bad, bad_run), (good, good_run)):
        await peer.send("started", run_id=run, seq=1, at=time.time())
        await peer.expect("ack", run_id=run, seq=1)

    hub = stack.core.hub
    gate = threading.Event()
    blocked = asyncio.ensure_future(stack.core.db.call(gate.wait, timeout(30)))

    async def until(check, what):
        async def probe():
            return check()

        await wait_until(stack.core, probe, 10, what)

    try:
        # the commit loop takes this one and waits for the (blocked) database ...
        await good.send("output", run_id=good_run, seq=2, stream="stdout", text="first\n")
        await until(lambda: hub.pending_of("good") == 1 and hub.pending_reports == 0, "batch 1")
        # ... so these two end up in the same next batch
        await bad.send("output", run_id=bad_run, seq=2, stream="stdout", text="x\ud800y\n")
        await good.send("output", run_id=good_run, seq=3, stream="stdout", text="honest\n")
        await until(lambda: hub.pending_reports == 2, "both reports in one batch")
    finally:
        gate.set()
        await blocked

    await good.expect("ack", run_id=good_run, seq=3)
    refused = await bad.expect("error")
    assert refused["reason"].startswith("output could not be stored (UnicodeEncodeError")
    await bad.expect("ack", run_id=bad_run, seq=2)
    assert await output_of(stack, good_run) == ["first\n", "honest\n"]
    assert await output_of(stack, bad_run) == []
    # the bad worker's own later, storable report still goes in: it was refused, not cut off
    await bad.send("output", run_id=bad_run, seq=3, stream="stdout", text="fine\n")
    await bad.expect("ack", run_id=bad_run, seq=3)
    assert await output_of(stack, bad_run) == ["fine\n"]
    assert bad.closed is None and good.closed is None
    for peer in (bad, good):
        await peer.close()


async def test_a_tag_taken_away_from_a_connected_worker_stops_its_dispatches_at_once(stack):
    # the scheduler keeps an indexed snapshot of the workers (desktop/scheduler/pool.py): a
    # stale one would keep sending tagged jobs to a worker the admin just took the tag from
    token = await stack.core.add_worker("tagged", ("prod",), 2)
    peer = await RawPeer.welcomed(stack.core.hub_url, "tagged", token)
    job = await stack.job(name="prod-only", target_kind="tag", target_value="prod")
    first = await stack.core.run_now(job)
    await peer.expect("dispatch", run_id=first)

    await stack.core.set_worker_config("tagged", tags=())
    second = await stack.core.run_now(job)
    await asyncio.sleep(1.0)  # several scheduler passes
    assert (await stack.run(second)).state == "queued"
    assert not [f for f in peer.frames if f.get("type") == "dispatch" and f["run_id"] == second]

    await stack.core.set_worker_config("tagged", tags=("prod",))
    await peer.expect("dispatch", run_id=second)
    await peer.close()
