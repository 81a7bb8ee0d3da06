"""Protocol-level workers that "run" every dispatch without spawning anything, for measuring
how many runs per second the console can persist (bench_throughput.py).

    python tests/benchmarks/sim_runners.py URL TOKENS_JSON SLOTS GAP_MS

TOKENS_JSON is a file holding ``[[name, token], ...]``; this process serves each of those
workers on its own connection.  Each says hello with its token (offering the script ``noop``
and SLOTS slots), waits for ``welcome``, then answers every ``dispatch`` exactly as the real
worker reports a script that prints one line (worker/runner.py, worker/client.py): ``started``
(seq 1), and GAP_MS later (the script's life) ``output`` (seq 2, one line on stdout) and
``finished`` (seq 3, succeeded, exit code 0), each its own frame.  Heartbeats every 5 s list
the runs in flight.  ``ack`` frames are counted: a run counts as delivered once its seq 3 is
acked (the hub acks only after the commit).  Prints ``READY <n>`` once all are welcomed, then
runs until stdin closes and prints ``DONE <runs acked> <dispatches> <declines>``.
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

from tests.benchmarks import simfleet
from worker.deflate import client_deflate
from worker.protocol import decode, encode, encode_dict

PROTOCOL_V = 1
HEARTBEAT = 5.0


class Tally:
    def __init__(self) -> None:
        self.acked = 0
        self.dispatched = 0
        self.declined = 0


def _msg(mtype: str, run_id: int, seq: int, **fields) -> str:
    # built like worker/runner.py's _msg plus the spool's seq, sent like client._sender
    return encode_dict({"type": mtype, "v": PROTOCOL_V, "run_id": run_id, **fields, "seq": seq})


async def one(url: str, name: str, token: str, slots: int, gap: float, tally: Tally, ready):
    async with connect(url, max_size=None, open_timeout=120, extensions=[client_deflate()]) as ws:
        hello = simfleet.hello(name, token, "noop", slots)
        await ws.send(hello)
        reply = json.loads(await ws.recv())
        if reply["type"] != "welcome":
            raise RuntimeError(f"{name}: {reply}")
        ready()
        in_flight: set[int] = set()
        tasks: set[asyncio.Task] = set()

        async def finish(run_id: int) -> None:
            if gap > 0:
                await asyncio.sleep(gap)
            await ws.send(_msg("output", run_id, 2, stream="stdout", text="ok\n", at=time.time()))
            done = {"outcome": "succeeded", "exit_code": 0, "at": time.time(), "reason": None}
            await ws.send(_msg("finished", run_id, 3, **done))
            in_flight.discard(run_id)

        async def heartbeats() -> None:
            while True:
                await ws.send(encode("heartbeat", running=sorted(in_flight), at=time.time()))
                await asyncio.sleep(HEARTBEAT)

        beat = asyncio.create_task(heartbeats())
        try:
            async for frame in ws:
                msg = decode(frame)
                if msg.type == "dispatch":
                    run_id = msg["run_id"]
                    if len(in_flight) >= slots:
                        tally.declined += 1
                        await ws.send(encode("declined", run_id=run_id, reason="all slots busy"))
                        continue
                    tally.dispatched += 1
                    in_flight.add(run_id)
                    await ws.send(_msg("started", run_id, 1, pid=1, at=time.time()))
                    task = asyncio.create_task(finish(run_id))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif msg.type == "ack" and msg["seq"] >= 3:
                    tally.acked += 1
        finally:
            beat.cancel()


async def main(url: str, tokens_file: str, slots: int, gap_ms: float) -> int:
    pairs = json.loads(Path(tokens_file).read_text())
    tally = Tally()
    count = [0]
    all_ready = asyncio.Event()

    def ready() -> None:
        count[0] += 1
        if count[0] == len(pairs):
            all_ready.set()

    tasks = [
        asyncio.create_task(one(url, name, token, slots, gap_ms / 1000, tally, ready))
        for name, token in pairs
    ]
    code = await simfleet.serve(tasks, all_ready, lambda: f"READY {count[0]}")
    if code == 0:
        print(f"DONE {tally.acked} {tally.dispatched} {tally.declined}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
