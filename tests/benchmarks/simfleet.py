"""What every simulated-worker process does around its workers: wait until all are welcomed
(or one failed), say so on stdout, run until the benchmark closes stdin, then stop them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from worker.protocol import encode


def hello(name: str, token: str, script: str, slots: int) -> str:
    """A simulated worker's hello: one script (its hash is not checked by the hub), ``sim``
    for host, OS and version."""
    return encode(
        "hello",
        name=name,
        token=token,
        host="sim",
        os="sim",
        version="0",
        scripts=[{"name": script, "sha256": "0" * 64}],
        slots=slots,
    )


async def serve(
    tasks: list[asyncio.Task], all_ready: asyncio.Event, ready_line: Callable[[], str]
) -> int:
    """1 (after printing ``FAILED <error>``) if a worker failed before all were ready, else 0
    once stdin closes (``ready_line()`` printed when all were ready)."""
    waiter = asyncio.create_task(all_ready.wait())
    failed = asyncio.create_task(asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))
    await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            print(f"FAILED {t.exception()!r}", flush=True)
            waiter.cancel()
            failed.cancel()
            return 1
    print(ready_line(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    failed.cancel()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0
