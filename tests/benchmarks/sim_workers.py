"""Many protocol-level workers in one process, for the hub capacity benchmark.

    python tests/benchmarks/sim_workers.py URL TOKENS_JSON INTERVAL

TOKENS_JSON is a file holding ``[[name, token, address], ...]``; each simulated worker connects
from its own loopback ADDRESS (127.x.y.z, as real workers come from their own hosts: the hub
limits handshakes and connections waiting for a welcome per address), says
hello with its own token, waits for ``welcome`` and then sends a heartbeat every INTERVAL
seconds (phases spread evenly so the hub sees a steady stream, not bursts).  Prints
``READY <n> <seconds> <retries> <appointments>`` once all are welcomed (appointments: the
hub's "busy, come back in N s" answers, kept as a real worker keeps them; retries: connections
that failed
and were tried again after a pause, as a real worker does), then runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import simfleet
from worker.backoff import Backoff
from worker.deflate import client_deflate
from worker.protocol import encode

RETRIES = 10  # like a real worker, one whose connection failed tries again after a pause

retries = [0]  # connection attempts that failed and were tried again, in this process
appointments = [0]  # "busy, come back in N s" answers kept (desktop/hub/admission.py)


async def one(
    url: str, name: str, token: str, address: str, interval: float, phase: float, ready
) -> None:
    backoff = Backoff()
    attempt = 0
    while True:
        try:
            ws = await connect(
                url,
                max_size=None,
                open_timeout=120,
                extensions=[client_deflate()],
                local_addr=(address, 0),
            )
            break
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
            busy = backoff.busy_delay(exc)
            if busy is not None:  # the hub's appointment (503), kept as the real worker keeps it
                appointments[0] += 1
                await asyncio.sleep(busy)
                continue
            if attempt == RETRIES:
                raise
            attempt += 1
            retries[0] += 1
            await asyncio.sleep(1 + random.random())  # the worker's backoff is 1 s and up
    async with ws:
        hello = simfleet.hello(name, token, "a.py", 1)
        await ws.send(hello)
        reply = json.loads(await ws.recv())
        if reply["type"] != "welcome":
            raise RuntimeError(f"{name}: {reply}")
        ready()
        await asyncio.sleep(phase)
        while True:
            await ws.send(encode("heartbeat", running=[], at=time.time()))
            await asyncio.sleep(interval)


async def main(url: str, tokens_file: str, interval: float) -> int:
    pairs = json.loads(Path(tokens_file).read_text())
    count = [0]
    all_ready = asyncio.Event()
    t0 = time.perf_counter()

    def ready() -> None:
        count[0] += 1
        if count[0] == len(pairs):
            all_ready.set()

    tasks = []
    for i, (name, token, address) in enumerate(pairs):
        phase = interval * i / len(pairs)
        tasks.append(asyncio.create_task(one(url, name, token, address, interval, phase, ready)))
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the handshakes already started make progress
    return await simfleet.serve(
        tasks,
        all_ready,
        lambda: f"READY {count[0]} {time.perf_counter() - t0:.3f} {retries[0]} {appointments[0]}",
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]))))
