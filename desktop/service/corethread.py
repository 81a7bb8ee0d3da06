"""The window's Core on a thread of its own, with a plain asyncio loop (as in headless mode).

Under the window, the Qt thread runs the qasync loop.  When the hub and the scheduler shared it,
each turn of a reconnect storm (hundreds of handshakes, hellos and welcomes in one turn) held the
window for a second or more with 10,000 workers (tests/benchmarks/bench_storm.py).  On its own
thread the Core's work no longer sits between two turns of the Qt loop: the interpreter hands
the GIL over every few milliseconds, so the window waits for milliseconds, not for a turn.

The window holds a `RemoteCore`: the facade's coroutines run on the Core's loop and are awaited
from the window's loop (cancelling the awaiting task cancels the call); the Core's events reach
the window's loop in batches, in order.  What the window may not do is touch the Core's state
across the threads: a plain (non-coroutine) attribute of the facade is refused, except the few
in THREAD_SAFE.

    remote = await start_remote(lambda: Core(url, host, port))   # StoreError, OSError, ...
    await remote.save_job({...})
    remote.events.subscribe(print)      # called on the window's loop
    await remote.stop()                 # Core stopped, thread joined
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from desktop.core.events import Event, EventBus

log = logging.getLogger(__name__)

T = TypeVar("T")

# Plain methods that read a few attributes and build a string, no container the Core's thread
# changes while it is read: safe from any thread.
THREAD_SAFE = frozenset({"cluster_summary"})
# Plain values fixed once the Core has started, copied onto the RemoteCore.
FIXED = ("hub_url", "db_url")


class CoreThread:
    """A thread running one asyncio loop until stopped."""

    def __init__(self, name: str = "jobtrigger-core") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # what was left running is cancelled and allowed to finish its cleanup
            leftovers = asyncio.all_tasks(self.loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                self.loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this thread's loop and await it from the caller's loop.  Raises
        RuntimeError at once when the thread has ended (a call would wait forever)."""
        if not self.alive:
            coro.close()
            raise RuntimeError("the Core's thread has ended; restart Job Trigger")
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        """Stop the loop and wait for the thread (blocking: call it off the window's loop)."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # stopped and closed meanwhile
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class EventRelay:
    """Events published on the Core's thread, re-published on another loop, in order.

    One wake-up of that loop per batch, not per event: a job printing 50,000 lines a second
    becomes a handful of cross-thread calls per turn of the window's loop."""

    def __init__(self, source: EventBus, target: EventBus, loop: asyncio.AbstractEventLoop):
        self.target = target
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._scheduled = False
        self._unsubscribe = source.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:  # the Core's thread
        with self._lock:
            self._pending.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.flush)
        except RuntimeError:  # the window's loop is closed: nobody is listening any more
            log.debug("event after the window's loop closed: %r", event)

    def flush(self) -> None:  # the target loop
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False
        for event in batch:
            self.target.publish(event)

    def close(self) -> None:
        self._unsubscribe()


class RemoteCore:
    """The facade as seen from another thread's loop (see the module docstring)."""

    def __init__(self, core: Any, runner: CoreThread, loop: asyncio.AbstractEventLoop) -> None:
        self.target = core  # for tests and diagnostics; the window never uses it
        self.runner = runner
        self.events = EventBus()
        for name in FIXED:
            if hasattr(core, name):
                setattr(self, name, getattr(core, name))
        self._relay = EventRelay(core.events, self.events, loop)
        self._stopped = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        if inspect.iscoroutinefunction(attr):
            runner = self.runner

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await runner.run(attr(*args, **kwargs))

            call.__name__ = name
            return call
        if name in THREAD_SAFE:
            return attr
        raise AttributeError(
            f"{name!r} is not a coroutine of the Core: the window may not read the Core's "
            "state across threads (add an async facade method)"
        )

    async def stop(self) -> None:
        """Stop the Core on its thread, then the thread.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.runner.alive:
                await self.runner.run(self.target.stop())
            else:
                log.error("the Core's thread had ended before the console stopped")
        finally:
            self._relay.flush()  # the last events (workers gone, runs ended) still arrive
            self._relay.close()
            await asyncio.get_running_loop().run_in_executor(None, self.runner.stop)


async def start_remote(factory: Callable[[], Any], name: str = "jobtrigger-core") -> RemoteCore:
    """Build the Core with ``factory`` on a new thread and start it there.  A failed start
    stops what was built and the thread, then raises the start's error here."""
    runner = CoreThread(name)
    runner.start()

    async def build() -> Any:
        core = factory()
        try:
            await core.start()
        except BaseException:
            await core.stop()
            raise
        return core

    try:
        core = await runner.run(build())
    except BaseException:
        await asyncio.get_running_loop().run_in_executor(None, runner.stop)
        raise
    return RemoteCore(core, runner, asyncio.get_running_loop())
