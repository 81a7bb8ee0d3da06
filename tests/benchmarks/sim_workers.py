"""Many protocol-level workers in one process, for the hub capacity benchmark.

    python tests/benchmarks/sim_workers.py URL TOKENS_JSON INTERVAL [GROUP]

TOKENS_JSON is a file holding ``[[name, token], ...]``.  Each simulated worker connects, says
hello with its own token, waits for ``welcome`` and then sends a heartbeat every INTERVAL
seconds (phases spread evenly so the hub sees a steady stream, not bursts).  Each connects from
its own loopback address (127.G.x.y, G = 10 + GROUP; Linux routes all of 127/8 to lo), as
workers on their own hosts would: the hub's per-address limits on connections that have not
logged in yet (8) are meant for one host, not for a fleet.  Prints
``READY <n> <seconds>`` once all are welcomed, then runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from worker.protocol import encode


def source_address(group: int, i: int) -> str:
    return f"127.{10 + group}.{i // 250}.{i % 250 + 1}"


async def one(
    url: str, name: str, token: str, interval: float, phase: float, ready, source: str
) -> None:
    async with connect(url, max_size=None, open_timeout=120, local_addr=(source, 0)) as ws:
        hello = encode(
            "hello",
            name=name,
            token=token,
            host="sim",
            os="sim",
            version="0",
            scripts=[{"name": "a.py", "sha256": "0" * 64}],
            slots=1,
        )
        await ws.send(hello)
        reply = json.loads(await ws.recv())
        if reply["type"] != "welcome":
            raise RuntimeError(f"{name}: {reply}")
        ready()
        await asyncio.sleep(phase)
        while True:
            await ws.send(encode("heartbeat", running=[], at=time.time()))
            await asyncio.sleep(interval)


async def main(url: str, tokens_file: str, interval: float, group: int = 0) -> int:
    pairs = json.loads(Path(tokens_file).read_text())
    count = [0]
    all_ready = asyncio.Event()
    t0 = time.perf_counter()

    def ready() -> None:
        count[0] += 1
        if count[0] == len(pairs):
            all_ready.set()

    tasks = []
    for i, (name, token) in enumerate(pairs):
        phase = interval * i / len(pairs)
        source = source_address(group, i)
        tasks.append(asyncio.create_task(one(url, name, token, interval, phase, ready, source)))
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the handshakes already started make progress
    waiter = asyncio.create_task(all_ready.wait())
    failed = asyncio.create_task(asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))
    await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done() and t.exception() is not None:
            print(f"FAILED {t.exception()!r}", flush=True)
            return 1
    print(f"READY {count[0]} {time.perf_counter() - t0:.3f}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0


if __name__ == "__main__":
    group = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), group)))
