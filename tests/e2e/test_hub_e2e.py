"""The hub against a raw websockets client: bad input is answered with a reason and closed while
a real worker keeps working; revoked tokens are refused and revoked workers disconnected."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from desktop.store import queries
from tests.conftest import timeout
from tests.e2e.conftest import ROOT, wait_until

pytestmark = pytest.mark.asyncio


def hello(name="raw", token="x", **over):
    data = {
        "type": "hello",
        "v": 1,
        "name": name,
        "token": token,
        "host": "h",
        "os": "test",
        "version": "0",
        "scripts": [],
        "slots": 1,
    }
    data.update(over)
    return json.dumps({k: v for k, v in data.items() if v is not None})


async def answer(ws) -> tuple[dict | None, int | None, str]:
    """The reject (if any) and how the hub closed the connection."""
    reject = None
    try:
        async with asyncio.timeout(timeout(10)) if hasattr(asyncio, "timeout") else _nullctx():
            while True:
                frame = await ws.recv()
                data = json.loads(frame)
                if data["type"] == "reject":
                    reject = data
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        return reject, rcvd.code if rcvd else None, rcvd.reason if rcvd else ""
    raise AssertionError("the hub did not close the connection")


class _nullctx:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


async def welcomed(url, name, token):
    ws = await connect(url, max_size=None)
    await ws.send(hello(name, token))
    data = json.loads(await asyncio.wait_for(ws.recv(), timeout(10)))
    assert data["type"] == "welcome", data
    return ws


BEFORE_HELLO = [
    ("not json", "{nope", "not valid JSON"),
    ("array", "[]", "must be a JSON object"),
    ("no type", '{"v": 1}', "has no 'type'"),
    ("no version", '{"type": "hello"}', "protocol version"),
    ("future version", '{"type": "heartbeat", "v": 2}', "unsupported protocol version 2"),
    ("unknown type", '{"type": "launch", "v": 1}', "unknown message type"),
    ("hello without token", hello(token=None), "missing field 'token'"),
    ("zero slots", hello(slots=0), "'slots' must be at least 1"),
    ("scripts not a list", hello(scripts="a.py"), "'scripts' must be a list"),
    ("name too long", hello(name="n" * 201), "longer than 200"),
    ("heartbeat first", '{"type": "heartbeat", "v": 1}', "first message must be hello"),
    (
        "started first",
        '{"type": "started", "v": 1, "run_id": 1, "seq": 1, "at": 0}',
        "first message must be hello",
    ),
    ("hub message", '{"type": "ack", "v": 1, "run_id": 1, "seq": 1}', "may not send 'ack'"),
    ("binary frame", b"\xff\xfe\x00", "binary frames are not part of the protocol"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("unknown worker", hello(name="nobody"), "no worker named 'nobody'"),
]


async def test_twenty_bad_inputs_while_a_good_worker_keeps_working(stack):
    await stack.add_worker("good")
    token = await stack.core.add_worker("raw")
    await stack.online("good")
    job_id = await stack.job(args=["0", "40", "0.05"], concurrency="allow")
    long_run = await stack.core.run_now(job_id)
    await stack.until_state(long_run, "running")
    url = stack.core.hub_url
    cases = 0

    for label, frame, expected in BEFORE_HELLO:
        async with connect(url, max_size=None) as ws:
            await ws.send(frame)
            reject, code, _ = await answer(ws)
        assert reject is not None, label
        assert expected in reject["reason"], (label, reject)
        assert code == 1008, label
        cases += 1

    # after a welcome: bad reports, a second hello, an over-size frame, a flood
    after_welcome = [
        (
            "bad stream",
            '{"type":"output","v":1,"run_id":1,"seq":1,"stream":"x","text":""}',
            "'stream' must be one of",
        ),
        ("second hello", hello("raw", token), "sent before or after the welcome"),
        (
            "negative seq",
            '{"type":"started","v":1,"run_id":1,"seq":-1,"at":0}',
            "must be at least 1",
        ),
    ]
    for label, frame, expected in after_welcome:
        ws = await welcomed(url, "raw", token)
        await ws.send(frame)
        reject, code, _ = await answer(ws)
        assert reject is not None and expected in reject["reason"], (label, reject)
        cases += 1

    ws = await welcomed(url, "raw", token)
    await ws.send("x" * (2 * 1024 * 1024))  # over the 1 MiB frame limit
    reject, code, reason = await answer(ws)
    assert code == 1009 and reason, (code, reason)  # "message too big", from websockets
    cases += 1

    ws = await welcomed(url, "raw", token)
    beat = '{"type":"heartbeat","v":1}'
    try:
        for _ in range(10_000):
            await ws.send(beat)
    except ConnectionClosed:
        pass  # closed while we were still sending: expected
    reject, code, _ = await answer(ws)
    assert reject["code"] == "flood" and "messages in one second" in reject["reason"]
    assert code == 1008
    cases += 1

    with pytest.raises(InvalidStatus) as info:
        async with connect(url.replace("/ws/heartbeat", "/other")):
            pass
    assert info.value.response.status_code == 404
    cases += 1

    assert cases >= 20
    # the good worker was unaffected: its long run completed with all of its output
    record = await stack.until_state(long_run, "succeeded", seconds=60)
    text = "".join(c.text for c in await stack.core.db.call(queries.read_output, long_run))
    assert "line 40 of 40" in text and record.worker_name == "good"
    again = await stack.core.run_now(job_id, ["0", "1", "0"])
    await stack.until_state(again, "succeeded")


async def test_wrong_token_is_refused_with_a_reason(stack):
    await stack.core.add_worker("raw")
    async with connect(stack.core.hub_url) as ws:
        await ws.send(hello("raw", "wrong"))
        reject, code, _ = await answer(ws)
    assert reject["code"] == "bad_token" and code == 1008
    assert "token is wrong" in reject["reason"]


async def test_revoke_from_the_cli_disconnects_and_refuses(stack):
    await stack.add_worker("victim")
    await stack.online("victim")
    result = await asyncio.get_running_loop().run_in_executor(
        None,
        lambda: subprocess.run(
            [
                sys.executable,
                "-m",
                "desktop",
                "--db",
                stack.core.db_url,
                "workers",
                "revoke",
                "victim",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout(60),
        ),
    )
    assert result.returncode == 0, result.stderr

    async def gone():
        return not any(s.online for s in stack.core.worker_status() if s.name == "victim")

    await wait_until(stack.core, gone, 15, "the revoked worker to be disconnected")
    ini = (stack.workers.base / "victim" / "worker.ini").read_text()
    token = next(
        line.split("=", 1)[1].strip() for line in ini.splitlines() if line.startswith("token")
    )
    async with connect(stack.core.hub_url) as ws:
        await ws.send(hello("victim", token))
        reject, _, _ = await answer(ws)
    assert reject["code"] == "revoked"

    async def logged():
        return "revoked" in stack.workers.log_text("victim")

    await wait_until(stack.core, logged, 15, "the worker to log its refusal")
