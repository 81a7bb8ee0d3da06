"""Notifications and chains end to end: a real worker's failed run starts the chained job with
its run id and exit code and sends a signed webhook; and a real headless console restarted
between two failures sends each notification exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from desktop.core.timeutil import utcnow
from desktop.hub.commit import commit_batch
from desktop.hub.session import StoreFinished, StoreOutput
from desktop.store import channels, outbox, queries
from desktop.store.db import open_store
from tests.conftest import timeout
from tests.e2e.conftest import free_port, prepare_db, wait_until
from tests.e2e.test_headless import Console, poll
from tests.notify.receivers import HookReceiver

SECRET = "e2e-hmac-key"


@pytest.mark.asyncio
async def test_failed_run_chains_b_with_its_exit_code_and_sends_a_signed_webhook(stack):
    hook = HookReceiver()
    try:
        core = stack.core
        await stack.add_worker("w1")
        await stack.online("w1")
        a = await stack.job(name="extract", args=["3", "2", "0"])  # fails with exit code 3
        b = await stack.job(name="load", args=["0", "1", "0"])
        await core.save_channel("hook", "webhook", {"url": hook.url}, SECRET)
        await core.set_rules(a, [{"channel": "hook", "on": ["failed"]}])
        # B prints as many lines as A's exit code: the template reached the worker
        await core.set_chains(
            a, [{"then": "load", "on": "failure", "args": ["0", "{exit_code}", "0"]}]
        )
        assert await core.chains(a) == [
            {"then": "load", "on": "failure", "args": ["0", "{exit_code}", "0"]}
        ]
        run_a = await core.run_now(a)
        await stack.until_state(run_a, "failed")

        async def b_done():
            runs = await stack.runs(b)
            return runs if runs and runs[0].state == "succeeded" else None

        [run_b] = await wait_until(core, b_done, 30, "the chained run of load to succeed")
        assert run_b.trigger == "chain" and run_b.args == ("0", "3", "0")
        text = "".join(c.text for c in await core.db.call(queries.read_output, run_b.id))
        assert "line 3 of 3" in text

        [request] = await asyncio.to_thread(hook.wait_for, 1, timeout(20))
        stamp = request.headers["x-jobtrigger-timestamp"]
        mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
        assert request.headers["x-jobtrigger-signature"] == "sha256=" + mac.hexdigest()
        body = json.loads(request.body)
        assert (body["job"], body["run_id"], body["worker"], body["exit_code"]) == (
            "extract",
            run_a,
            "w1",
            3,
        )
        assert "line 2 of 2" in "\n".join(body["output_tail"])

        async def delivered():
            rows = await core.notifications(run_a)
            return rows if rows and rows[0].state == "delivered" else None

        await wait_until(core, delivered, 10, "the notification to be marked delivered")
        # exactly one B for the one run of A
        assert len(await stack.runs(b)) == 1
    finally:
        hook.close()


def _failed_run(name: str) -> int:
    """A run of ``name`` that its worker reported as failed (the hub's commit path)."""
    job = queries.get_job_by_name(name)
    run = queries.create_run(job.id, utcnow())
    queries.transition_run(run.id, "dispatched", worker_name="w1")
    commit_batch(
        [
            ("w1", StoreOutput(run.id, 1, "stdout", "boom\n", 1.7e9)),
            ("w1", StoreFinished(run.id, 2, "failed", 1, "", 1.7e9)),
        ]
    )
    return run.id


def test_no_duplicate_after_a_console_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    prepare_db(url)
    hook = HookReceiver()
    try:
        database = open_store(url)
        job = queries.create_job(
            {"name": "nightly", "script": "a.py", "schedule": {"kind": "manual"}}
        )
        channels.save_channel("hook", "webhook", {"url": hook.url}, SECRET)
        channels.set_rules(job.id, [{"channel": "hook", "on": ["failed"]}])
        first = _failed_run("nightly")
        database.close()

        def state_of(run_id):
            return lambda: [r.state for r in outbox.list_outbox(run_id)] == ["delivered"]

        console = Console(url, free_port(), tmp_path / "console1.log")
        try:
            console.wait_ready()
            hook.wait_for(1, timeout(20))
            poll(url, state_of(first), 20, "the first notification marked delivered")
        finally:
            assert console.stop() == 0

        database = open_store(url)
        second = _failed_run("nightly")
        database.close()
        console = Console(url, free_port(), tmp_path / "console2.log")
        try:
            console.wait_ready()
            hook.wait_for(2, timeout(20))
            poll(url, state_of(second), 20, "the second notification marked delivered")
        finally:
            assert console.stop() == 0  # waits for any send still under way

        ids = [r.headers["x-jobtrigger-delivery"] for r in hook.requests]
        runs = [json.loads(r.body)["run_id"] for r in hook.requests]
        assert runs == [first, second] and len(set(ids)) == 2
    finally:
        hook.close()
