"""The hub's login path: check a hello's token against the store, slow down failures per
address and worker name (throttle.py), record what the hello says about the host, and keep
only the claimed runs that are the worker's own.  What happens once a worker is in (its place
among the connections) is the hub's (server.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from desktop.hub import ownership
from desktop.hub import session as s
from desktop.hub.connection import Conn
from desktop.hub.throttle import AuthThrottle
from desktop.store import queries
from desktop.store.errors import AuthError, StoreError
from desktop.store.executor import DbExecutor
from desktop.store.records import WorkerRecord
from worker.protocol import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admitted:
    """A worker whose token is good: its record, the claimed runs that are its own, when."""

    record: WorkerRecord
    held: list[int]
    at: datetime


MAX_BATCH = 500  # hellos checked in one database trip


class Login:
    def __init__(
        self, db: DbExecutor, clock: Callable[[], datetime], throttle: AuthThrottle
    ) -> None:
        self.db = db
        self.clock = clock
        self.throttle = throttle
        # hellos waiting for the database, checked together in the next trip (group check):
        # a storm of 10,000 hellos took two transactions each, one after the other
        self._waiting: list[tuple[queries.Hello, asyncio.Future[tuple[Any, datetime]]]] = []
        self._checker: asyncio.Task[None] | None = None

    async def admit(self, conn: Conn, hello: Message) -> Admitted | list[s.Action]:
        """Admitted, or the actions that refuse the connection (already slowed down)."""
        # Every token is checked, whatever the throttle says: a correct one is welcomed at once,
        # so wrong tokens sent in a worker's name or from its address cannot lock it out
        # (desktop/hub/throttle.py, docs/SECURITY.md).
        try:
            # the hello's host, os, version and scripts are recorded (admit_workers); its tags
            # and slots grant nothing (the console's store is the only authority on those)
            result, now = await self._check(
                queries.Hello(
                    hello["name"],
                    hello["token"],
                    hello["host"],
                    hello["os"],
                    hello["version"],
                    list(hello["scripts"]),
                )
            )
        except StoreError as exc:
            log.error("cannot check worker %r: %s", hello["name"], exc)
            return conn.session.refused(
                "unavailable", "the console cannot read its database; retry"
            )
        if isinstance(result, AuthError):
            return await self._refusal(conn, hello["name"], result)
        held = await self._own_claims(result.name, hello["runs"])
        return Admitted(result, held, now)

    def _check(self, hello: queries.Hello) -> asyncio.Future[tuple[Any, datetime]]:
        """(WorkerRecord or AuthError, when) for this hello, from the next group check."""
        future: asyncio.Future[tuple[Any, datetime]] = asyncio.get_running_loop().create_future()
        self._waiting.append((hello, future))
        if self._checker is None:
            self._checker = asyncio.create_task(self._check_waiting(), name="hub-login")
        return future

    async def _check_waiting(self) -> None:
        """One database trip for every hello that arrived while the previous one ran."""
        batch: list[tuple[queries.Hello, asyncio.Future[tuple[Any, datetime]]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                batch = [(h, f) for h, f in batch if not f.done()]  # connection gone meanwhile
                if not batch:
                    continue
                now = self.clock()
                results = await self._admit([h for h, _ in batch], now)
                for (_, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, Exception) and not isinstance(result, AuthError):
                        future.set_exception(result)
                    else:
                        future.set_result((result, now))
        finally:
            # never leave a hello waiting for an answer that will not come: a connection whose
            # hello is being checked is exempt from the hello deadline and from eviction
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("the login check stopped"))
            self._checker = None

    async def _admit(self, hellos: list[queries.Hello], now: datetime) -> list[Any]:
        """A result per hello (a WorkerRecord or an exception); never raises but cancellation.
        When the group cannot be checked together, each is checked alone: one hello the store
        cannot take (a locked database, a value the driver refuses) must not fail the others."""
        try:
            return list(await self.db.call(queries.admit_workers, hellos, now))
        except StoreError as exc:
            # the write failed (a locked database?): check the tokens one by one with reads, as
            # a worker whose hello cannot be recorded is still let in
            log.warning("cannot record %d workers' hellos: %s", len(hellos), exc)
        except Exception:
            log.exception("checking %d hellos together failed; checking each alone", len(hellos))
        return [await self._check_one(h) for h in hellos]

    async def _check_one(self, hello: queries.Hello) -> Any:
        try:
            return await self.db.call(queries.authenticate_worker, hello.name, hello.token)
        except (AuthError, StoreError) as exc:
            return exc
        except Exception as exc:  # this hello's own trouble: it alone hears of it
            log.warning("cannot check worker %r: %r", hello.name, exc)
            return exc

    async def _own_claims(self, name: str, claimed: list[int]) -> list[int]:
        """The runs a hello says the worker holds, less those assigned to another worker (or
        to none): a claim must not keep another worker's run alive or reach its cancel."""
        if not claimed:
            return []
        try:
            rows = await self.db.call(queries.run_owners, claimed)
        except StoreError as exc:
            log.warning("cannot check the runs worker %s holds: %s", name, exc)
            return []
        owners = {rid: row[2] for rid, row in rows.items()}
        held = ownership.own_runs(name, claimed, owners)
        if len(held) < len(claimed):
            others = sorted(set(claimed) - set(held))[:20]
            log.warning("worker %s claims runs that are not its own; ignored: %s", name, others)
        return held

    async def _refusal(self, conn: Conn, name: str, exc: AuthError) -> list[s.Action]:
        """Hold the refusal as long as the throttle says; only failures are slowed down."""
        conn.failed_login = True  # evictable first while its refusal is held (server.py)
        now = asyncio.get_running_loop().time()
        delay = self.throttle.refusal_delay(conn.remote, name, now)
        failures = self.throttle.failed(conn.remote, name, now)
        code, reason = exc.code, exc.reason
        if failures >= self.throttle.block_after:
            code = "too_many_failures"
            reason = (
                "too many failed logins for this worker or from this address; "
                "check the worker's token (a correct token is still accepted)"
            )
        warn, held_back = self.throttle.warn(now)  # a flood must not bury the log
        log.log(
            logging.WARNING if warn else logging.DEBUG,
            "worker %r from %s refused (%d recent failures): %s%s",
            name,
            conn.remote,
            failures,
            exc.reason,
            f" ({held_back} more refused logins were logged at debug level only)"
            if held_back
            else "",
        )
        if delay:
            await asyncio.sleep(delay)  # the slow-down itself, not a wait for an event
        return conn.session.refused(code, reason)
