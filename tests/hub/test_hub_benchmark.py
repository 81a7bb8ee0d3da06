"""Throughput of scheduler + hub + store (marked ``benchmark``: not in the default run).

    python -m pytest tests/hub/test_hub_benchmark.py -m benchmark -s

A protocol-speaking client stands in for a worker that answers instantly, so the numbers are
the console's: dispatch, commit in shared batches, ack.  It shares the loop with the hub, so
they are conservative.  Goals (issue 5): ~500 runs/s end to end, 100,000 output lines/s.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from desktop.core import runs as states
from desktop.service import Core
from desktop.store import queries
from tests.conftest import timeout
from worker.protocol import encode

pytestmark = [pytest.mark.benchmark, pytest.mark.asyncio]


async def instant_worker(url: str, token: str, slots: int, stop: asyncio.Event, acked: dict):
    async with connect(url, max_size=None) as ws:
        await ws.send(
            encode(
                "hello",
                name="bench",
                token=token,
                host="h",
                os="o",
                version="0",
                scripts=[{"name": "a.py", "sha256": "0"}],
                slots=slots,
            )
        )
        async for frame in ws:
            msg = json.loads(frame)
            if msg["type"] == "dispatch":
                rid, now = msg["run_id"], time.time()
                await ws.send(encode("started", run_id=rid, seq=1, at=now))
                await ws.send(encode("output", run_id=rid, seq=2, stream="stdout", text="hi\n"))
                await ws.send(
                    encode("finished", run_id=rid, seq=3, outcome="succeeded", exit_code=0, at=now)
                )
            elif msg["type"] == "ack":
                acked[msg["run_id"]] = msg["seq"]
                if stop.is_set():
                    return


def make_runs(job_id: int, n: int) -> None:
    from desktop.core.timeutil import utcnow
    from desktop.store.migrations import write_transaction
    from desktop.store.models import database_proxy

    base = utcnow()
    from datetime import timedelta

    with write_transaction(database_proxy):
        for i in range(n):
            queries.create_run(job_id, base + timedelta(microseconds=i), trigger=states.MANUAL)


async def test_runs_per_second_end_to_end(tmp_path):
    core = Core(f"sqlite:///{tmp_path / 'b.db'}", "127.0.0.1", 0)
    await core.start()
    try:
        token = await core.add_worker("bench", slots=1000)
        job = await core.save_job(
            {"name": "b", "script": "a.py", "schedule": {"kind": "manual"}, "concurrency": "allow"}
        )
        stop, acked = asyncio.Event(), {}
        client = asyncio.create_task(instant_worker(core.hub_url, token, 1000, stop, acked))
        while "bench" not in core.hub.workers:
            await asyncio.sleep(0.01)
        n = 2000
        t0 = time.perf_counter()
        await core.db.call(make_runs, job.id, n)  # nothing wakes the scheduler meanwhile
        created = time.perf_counter() - t0
        start = time.perf_counter()
        core.scheduler.wake()
        deadline = time.perf_counter() + timeout(120)
        while sum(1 for s in acked.values() if s == 3) < n:
            assert time.perf_counter() < deadline, f"only {len(acked)} of {n} runs done"
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        done = await core.db.call(queries.count_runs, job.id, "succeeded")
        print(
            f"\n{n} queued runs dispatched, reported and committed in {elapsed:.2f} s: "
            f"{n / elapsed:.0f} runs/s (creating the rows with create_run: {created:.2f} s)"
        )
        assert done == n
        stop.set()
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)
    finally:
        await core.stop()


async def test_output_lines_per_second(tmp_path):
    core = Core(f"sqlite:///{tmp_path / 'o.db'}", "127.0.0.1", 0)
    await core.start()
    try:
        token = await core.add_worker("bench")
        job = await core.save_job({"name": "o", "script": "a.py", "schedule": {"kind": "manual"}})
        run = await core.scheduler.run_now(job.id)
        await core.db.call(queries.transition_run, run.id, "running", worker_name="bench")
        lines, per_message = 150_000, 1000  # 9 MB: under the 10 MB per-run cap
        line = "x" * 60 + "\n"
        async with connect(core.hub_url, max_size=None) as ws:
            await ws.send(
                encode(
                    "hello",
                    name="bench",
                    token=token,
                    host="h",
                    os="o",
                    version="0",
                    scripts=[],
                    slots=1,
                )
            )
            assert json.loads(await ws.recv())["type"] == "welcome"
            start = time.perf_counter()
            last = lines // per_message + 1
            for seq in range(2, last + 1):
                await ws.send(
                    encode(
                        "output", run_id=run.id, seq=seq, stream="stdout", text=line * per_message
                    )
                )
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout(60)))
                if msg["type"] == "ack" and msg["seq"] == last:
                    break
            elapsed = time.perf_counter() - start
        stored = await core.db.call(queries.get_run, run.id)
        print(
            f"\n{lines:,} lines ({lines * len(line) / 1e6:.0f} MB) committed and acked in "
            f"{elapsed:.2f} s: {lines / elapsed:,.0f} lines/s"
        )
        assert stored.last_seq == last
    finally:
        await core.stop()
