"""Delivery against real receivers on 127.0.0.1: a failed run's e-mail and signed webhook, the
outbox row written with the result, retries after a receiver failure, a refused login, an
unreachable server and a hanging one (which never holds up the database thread)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from datetime import timedelta

import pytest

from desktop.core.timeutil import utcnow
from desktop.hub.commit import commit_batch
from desktop.hub.session import StoreFinished, StoreOutput, StoreStarted
from desktop.notify.sender import Sender
from desktop.store import channels, outbox, queries
from tests.conftest import timeout

pytestmark = pytest.mark.asyncio

SECRET = "hmac-key-for-the-test"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def _job_and_failed_run(name: str = "backup") -> int:
    """A job, and a run of it that a worker reports as failed (through the hub's commit)."""
    job = queries.get_job_by_name(name) or queries.create_job(
        {"name": name, "script": "backup.py", "schedule": {"kind": "manual"}}
    )
    run = queries.create_run(job.id, utcnow())
    queries.transition_run(run.id, "dispatched", worker_name="w1")
    lines = "".join(f"line {i}\n" for i in range(1, 31))
    commit_batch(
        [
            ("w1", StoreStarted(run.id, 1, 1.7e9)),
            ("w1", StoreOutput(run.id, 2, "stdout", lines, 1.7e9)),
            ("w1", StoreOutput(run.id, 3, "stderr", "disk full\n", 1.7e9)),
            ("w1", StoreFinished(run.id, 4, "failed", 3, "exit code 3", 1.7e9 + 5)),
        ]
    )
    return run.id


def _setup(mail_port: int | None, hook_url: str | None, events=("failed",), name="backup"):
    job = queries.get_job_by_name(name) or queries.create_job(
        {"name": name, "script": "backup.py", "schedule": {"kind": "manual"}}
    )
    rules = []
    if mail_port is not None:
        channels.save_channel(
            "mail",
            "email",
            {
                "host": "127.0.0.1",
                "port": mail_port,
                "security": "none",
                "sender": "jobs@example.test",
                "to": "ops@example.test",
            },
        )
        rules.append({"channel": "mail", "on": list(events)})
    if hook_url is not None:
        channels.save_channel("hook", "webhook", {"url": hook_url}, SECRET)
        rules.append({"channel": "hook", "on": list(events)})
    channels.set_rules(job.id, rules)


async def test_failed_run_sends_an_email_and_a_signed_webhook(ex, mail, hook):
    await ex.call(_setup, mail.port, hook.url)
    run_id = await ex.call(_job_and_failed_run)
    # the result's transaction wrote the outbox rows: pending before anything is sent
    rows = await ex.call(outbox.list_outbox, run_id)
    assert sorted((r.channel, r.event, r.state) for r in rows) == [
        ("hook", "failed", "pending"),
        ("mail", "failed", "pending"),
    ]
    sender = Sender(ex, timeout=timeout(5))
    try:
        assert await sender.pass_once() == 2
    finally:
        await sender.stop()

    [(sender_addr, rcpts, msg)] = mail.handler.messages
    assert sender_addr == "jobs@example.test" and rcpts == ["ops@example.test"]
    assert msg["Subject"] == f"[Job Trigger] backup failed (run {run_id})"
    text = msg.get_payload(decode=True).decode()
    assert "Worker: w1" in text and "exit code 3" in text and f"runs show {run_id}" in text
    assert "line 30" in text and "[stderr] disk full" in text
    assert "line 10\n" not in text  # only the last 20 lines

    [request] = hook.wait_for(1, timeout(5))
    stamp = request.headers["x-jobtrigger-timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["x-jobtrigger-signature"] == "sha256=" + expected.hexdigest()
    body = json.loads(request.body)
    assert (body["job"], body["run_id"], body["event"], body["exit_code"]) == (
        "backup",
        run_id,
        "failed",
        3,
    )
    rows = await ex.call(outbox.list_outbox, run_id)
    assert {(r.state, r.attempts) for r in rows} == {("delivered", 1)}


async def test_a_receiver_failure_is_retried_after_the_backoff(ex, hook):
    await ex.call(_setup, None, hook.url)
    run_id = await ex.call(_job_and_failed_run)
    hook.plan = [500]
    clock = Clock()
    sender = Sender(ex, clock=clock, timeout=timeout(5), retry_base_seconds=60)
    try:
        await sender.pass_once()
        [row] = await ex.call(outbox.list_outbox, run_id)
        assert (row.shown_state, row.attempts) == ("failing", 1)
        assert "500" in row.last_error and "failed on purpose" in row.last_error
        # not due yet: nothing is sent before the backoff
        assert await sender.pass_once() == 0
        clock.advance(1.5)
        assert await sender.pass_once() == 1
    finally:
        await sender.stop()
    first, second = hook.wait_for(2, timeout(5))
    assert first.headers["x-jobtrigger-delivery"] == second.headers["x-jobtrigger-delivery"]
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert (row.state, row.attempts, row.last_error) == ("delivered", 2, "")
    assert len(hook.requests) == 2  # delivered rows are never sent again


async def test_a_refused_login_is_retried_then_failed_with_the_reason(ex, locked_mail):
    def setup():
        _setup(locked_mail.port, None)
        config = channels.get_channel("mail").config | {"username": "jobs"}
        channels.save_channel("mail", "email", config, "wrong")

    await ex.call(setup)
    run_id = await ex.call(_job_and_failed_run)
    clock = Clock()
    sender = Sender(ex, clock=clock, timeout=timeout(5), retry_base_seconds=1)
    try:
        for _ in range(20):
            await sender.pass_once()
            clock.advance(120)
    finally:
        await sender.stop()
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert row.state == "failed" and row.attempts == 8
    assert "login refused" in row.last_error and "535" in row.last_error
    assert locked_mail.logins and not any(ok for _, ok in locked_mail.logins)
    assert locked_mail.handler.messages == []


async def test_an_unreachable_webhook_is_failing_with_the_reason(ex):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    await ex.call(_setup, None, dead)
    run_id = await ex.call(_job_and_failed_run)
    sender = Sender(ex, timeout=timeout(5))
    try:
        await sender.pass_once()
    finally:
        await sender.stop()
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert row.shown_state == "failing" and "cannot reach the webhook" in row.last_error


async def test_a_hanging_webhook_times_out_without_holding_the_database(ex, hook):
    await ex.call(_setup, None, hook.url)
    run_id = await ex.call(_job_and_failed_run)
    hook.hold()
    sender = Sender(ex, timeout=timeout(1))
    try:
        task = asyncio.create_task(sender.pass_once())
        await asyncio.to_thread(hook.wait_for, 1, timeout(5))
        # the send is hanging in the sender's thread; the database thread answers at once
        jobs = await asyncio.wait_for(ex.call(queries.list_jobs), timeout(0.5))
        assert [j.name for j in jobs] == ["backup"] and not task.done()
        await task
    finally:
        hook.release()
        await sender.stop()
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert row.shown_state == "failing" and "timed out" in row.last_error


async def test_recovered_is_sent_for_a_success_after_a_failure(ex, hook):
    await ex.call(_setup, None, hook.url, ("recovered",))
    failed = await ex.call(_job_and_failed_run)

    def succeed() -> int:
        job = queries.get_job_by_name("backup")
        run = queries.create_run(job.id, utcnow())
        queries.transition_run(run.id, "dispatched", worker_name="w1")
        commit_batch([("w1", StoreFinished(run.id, 1, "succeeded", 0, "", 1.7e9))])
        return run.id

    ok = await ex.call(succeed)
    again = await ex.call(succeed)
    assert await ex.call(outbox.list_outbox, failed) == []
    assert [r.event for r in await ex.call(outbox.list_outbox, ok)] == ["recovered"]
    assert await ex.call(outbox.list_outbox, again) == []  # success after success: quiet


async def test_default_rule_applies_to_every_job(ex, hook):
    def setup():
        channels.save_channel("hook", "webhook", {"url": hook.url}, "")
        channels.set_rules(None, [{"channel": "hook", "on": ["failed"]}])

    await ex.call(setup)
    run_id = await ex.call(_job_and_failed_run, "other")
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert (row.channel, row.event) == ("hook", "failed")


async def test_stop_lets_a_send_under_way_finish_and_marks_it(ex, hook):
    """A console stopping while a message is on the wire: the send completes and is marked
    delivered, so the next start does not send it again."""
    await ex.call(_setup, None, hook.url)
    run_id = await ex.call(_job_and_failed_run)
    hook.hold()
    sender = Sender(ex, timeout=timeout(5))
    await sender.start()
    await asyncio.to_thread(hook.wait_for, 1, timeout(5))
    stopping = asyncio.create_task(sender.stop())
    hook.release()
    await stopping
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert (row.state, row.attempts) == ("delivered", 1)
    assert len(hook.requests) == 1


async def test_a_lost_secrets_key_fails_that_channel_with_the_reason(ex, hook, monkeypatch):
    """The webhook key cannot be opened (the key file is gone): that delivery is failing with
    why, nothing is sent without its signature, and the sender keeps serving."""
    from desktop.core.secretbox import new_key
    from desktop.store import secretkey

    await ex.call(_setup, None, hook.url)
    run_id = await ex.call(_job_and_failed_run)
    monkeypatch.setattr(secretkey, "read_keys", lambda spot=None: [new_key()])  # a wrong key
    sender = Sender(ex, timeout=timeout(5))
    try:
        assert await sender.pass_once() == 0
    finally:
        await sender.stop()
    [row] = await ex.call(outbox.list_outbox, run_id)
    assert row.shown_state == "failing" and row.attempts == 1
    assert "cannot open the channel's credential" in row.last_error
    assert hook.requests == []


async def test_a_run_end_wakes_the_sender_only_when_it_enqueued_something(ex, hook, monkeypatch):
    """No notification rules: a run's end costs no claim; with rules, its rows go out."""
    from desktop.core.events import EventBus, RunChanged

    claims = []
    real_claim = outbox.claim_due

    def counting_claim(now):
        claims.append(now)
        return real_claim(now)

    monkeypatch.setattr(outbox, "claim_due", counting_claim)
    events = EventBus()
    sender = Sender(ex, events, timeout=timeout(5))
    await sender.start()
    try:
        for _ in range(200):  # the first pass, at start
            if claims:
                break
            await asyncio.sleep(0.01)
        quiet_run = await ex.call(_job_and_failed_run, "quiet")  # no rules: nothing enqueued
        events.publish(RunChanged(quiet_run, 1, "failed"))
        await asyncio.sleep(0.2)
        assert len(claims) == 1
        await ex.call(_setup, None, hook.url)
        run_id = await ex.call(_job_and_failed_run)
        events.publish(RunChanged(run_id, 1, "failed"))
        # the receiver waits in a thread: the sender needs this loop meanwhile
        [request] = await asyncio.to_thread(hook.wait_for, 1, timeout(5))
        assert json.loads(request.body)["run_id"] == run_id
        assert len(claims) >= 2
    finally:
        await sender.stop()
