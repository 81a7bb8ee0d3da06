"""The scheduler: due jobs -> run rows -> dispatch to workers; queue timeouts, lost runs, retries.

No polling tick (only a MAX_SLEEP bound, so a stepped wall clock is noticed).  One loop runs
:meth:`Scheduler.step`, which does all the work that is due and returns when it next has
something to do (the earliest next fire time, retry ``not_before``, queue deadline or lost
deadline); the loop sleeps until then or until :meth:`wake` is called
(jobs changed, a worker joined or left, a run ended, a manual run).  The decisions are pure
(decisions.py, desktop.core); this module only does I/O.  The clock is injectable: tests call
``step()`` with a clock they set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from desktop.core import runs as states
from desktop.core.beat import next_beat, wait_until
from desktop.core.events import EventBus, JobChanged, RunChanged
from desktop.core.misfire import DEFAULT_GRACE
from desktop.core.secretbox import SecretKeyError
from desktop.core.timeutil import utcnow
from desktop.hub.commit import CommitResult
from desktop.hub.server import Hub, HubListener, LiveWorker
from desktop.scheduler import decisions as d
from desktop.scheduler import firing
from desktop.scheduler.pool import WorkerPool
from desktop.scheduler.runlog import log_run
from desktop.store import queries, scheduling
from desktop.store.errors import NotFound, StoreError
from desktop.store.executor import DbExecutor
from desktop.store.records import ActiveRun, JobRecord, RunRecord
from worker.protocol import make

log = logging.getLogger(__name__)

RETRY_AFTER_ERROR = timedelta(seconds=5)
# A scheduled run is fired this long before its due time and dispatched with the rest of the
# wait as its ``delay``: the worker starts it at the due instant, so the pass, the commit and
# the frame (about 2-3 ms, more under load) are not added to every start.
FIRE_LEAD = timedelta(milliseconds=20)
# A worker that declined a run is asked again after this (sooner if its scripts change).
DECLINE_BACKOFF = timedelta(seconds=15)
# The loop sleeps on the event loop's monotonic clock, but decides on the wall clock: after the
# wall clock is stepped back an hour, "next fire minus now" is an hour too long, and stepped
# forward again nothing would fire until that hour had passed.  So no sleep is longer than this:
# a step of the wall clock is noticed within it (and handled by the misfire policy), at the cost
# of one wake-up of the loop per MAX_SLEEP while idle (a look at the wall clock: a pass, and its
# database call, only if the deadline came), shared with the alive mark: both end on the beats
# of core/beat.py.  Found by tests/chaos/test_clock_chaos.py.
MAX_SLEEP = 15.0


class Scheduler(HubListener):
    def __init__(
        self,
        db: DbExecutor,
        hub: Hub,
        events: EventBus,
        clock: Callable[[], datetime] = utcnow,
        *,
        lost_grace: timedelta = timedelta(seconds=60),
        misfire_grace: timedelta = DEFAULT_GRACE,
        fire_lead: timedelta = FIRE_LEAD,
        max_sleep: float = MAX_SLEEP,
    ) -> None:
        self.db = db
        self.hub = hub
        self.events = events
        self.clock = clock
        self.lost_grace = lost_grace
        self.misfire_grace = misfire_grace
        self.fire_lead = fire_lead
        self.max_sleep = max_sleep
        self.watching_since = clock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        # run id -> {worker that declined it: until when it is not asked again}
        self._declined: dict[int, dict[str, datetime]] = {}
        # run id -> {worker that refused it for good: its reason}; never asked again for it
        self._refused: dict[int, dict[str, str]] = {}
        self._side_tasks: set[asyncio.Task] = set()
        # run_now requests waiting for the next group commit
        self._manual: list[tuple[int, list[str] | None, asyncio.Future]] = []
        self._manual_writer: asyncio.Task | None = None
        # runs that ended since the last pass: it plans their retries
        self._ended: list[RunRecord] = []
        # the first pass after start() also plans the retries a scheduler that stopped before
        # its pass never planned (those runs were only in its memory): crash, stop, lost lead
        self._sweep_retries = False
        # how late each fire was (seconds), for the lateness measurement in tests
        self.lateness: list[float] = []
        self._pool: WorkerPool | None = None
        self._pool_version = -1

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.watching_since = self.clock()
        self._sweep_retries = True
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._manual_writer, *self._side_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        deadline: datetime | None = None
        run_pass = True
        while True:
            self._wake.clear()
            if run_pass:
                try:
                    deadline = await self.step()
                except StoreError as exc:
                    log.error("scheduler: database problem, retrying in 5 s: %s", exc)
                    deadline = self.clock() + RETRY_AFTER_ERROR
                except Exception:
                    log.exception("scheduler step failed; retrying in 5 s")
                    deadline = self.clock() + RETRY_AFTER_ERROR
            timeout, capped = d.sleep_for(deadline, self.clock(), self.max_sleep)
            loop = asyncio.get_running_loop()
            # a capped sleep ends on the shared beat (core/beat.py), not MAX_SLEEP from now: the
            # alive mark's timer is on the same grid, so an idle console wakes once for both
            until = next_beat(loop.time(), self.max_sleep) if capped else loop.time() + timeout
            await wait_until(self._wake, until)
            # a wake (jobs changed, a worker came, a run ended) always runs a pass; the end of
            # a sleep cut short by MAX_SLEEP runs one only if the wall clock says the deadline
            # came (it was stepped): an idle console must not touch the database every
            # MAX_SLEEP for nothing (benchmarks: idle wake-ups)
            run_pass = self._wake.is_set() or d.pass_due(deadline, self.clock(), capped)

    def _current_declines(self, now: datetime) -> tuple[dict[int, frozenset[str]], datetime | None]:
        """Workers not to ask again yet, per run, and when the first of them may be asked
        again.  A decline is not forever: "all slots busy" or "shutting down" pass, and a
        run whose only worker declined once must not wait for nobody until its queue timeout.
        """
        out: dict[int, frozenset[str]] = {}
        first: datetime | None = None
        for run_id in list(self._declined):
            waiting = {w: t for w, t in self._declined[run_id].items() if t > now}
            if not waiting:
                del self._declined[run_id]
                continue
            self._declined[run_id] = waiting
            out[run_id] = frozenset(waiting)
            soonest = min(waiting.values())
            first = soonest if first is None or soonest < first else first
        for run_id, refusers in self._refused.items():
            out[run_id] = out.get(run_id, frozenset()) | frozenset(refusers)
        return out, first

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task failed", exc_info=task.exception())

    def _changed(self, record: RunRecord) -> None:
        log_run(record)
        self.events.publish(RunChanged(record.id, record.job_id, record.state))

    # --- one pass -------------------------------------------------------------------------------

    def _worker_pool(self) -> Callable[[], WorkerPool]:
        """The online workers as the pass sees them: a snapshot of the hub's table when it
        changed (a tuple copy on the loop), indexed on the database thread only if the pass
        has a queued run to place, and kept until the hub's table changes again."""
        version = self.hub.workers_version
        if version == self._pool_version and self._pool is not None:
            pool = self._pool
            return lambda: pool
        live = tuple(self.hub.workers.values())

        def build() -> WorkerPool:  # on the database thread; passes never overlap
            self._pool = WorkerPool(
                d.WorkerView(w.name, w.tags, w.scripts, w.slots, 0) for w in live
            )
            self._pool_version = version
            return self._pool

        return build

    async def step(self) -> datetime | None:
        """Do everything due now; return when the next thing is due (None: only on wake)."""
        now = self.clock()
        workers = self._worker_pool()
        declined, retry_at = self._current_declines(now)
        ended, self._ended = self._ended, []
        sweep_since = now - firing.RETRY_SWEEP_WINDOW if self._sweep_retries else None
        try:
            done = await self.db.call(
                firing.run_pass,
                now,
                workers,
                declined,
                self.misfire_grace,
                self.fire_lead,
                {run_id: dict(by) for run_id, by in self._refused.items()},
                ended,
                sweep_since,
            )
        except BaseException:
            self._ended[:0] = ended  # their retries are planned by the next pass
            raise
        self._sweep_retries = done.sweep_more  # a failed pass left it set: the next sweeps
        for retry in done.retries:
            log.info("%s: %s; it waits until %s", retry.job_name, retry.reason, retry.not_before)
            self._changed(retry)
        for record in done.fired.runs:
            if record.trigger == states.SCHEDULE:
                # how late the pass ran against its plan (the due time less the lead)
                planned = record.scheduled_at - self.fire_lead
                self.lateness.append((now - planned).total_seconds())
            self._changed(record)
        for job_id in done.fired.job_ids:
            self.events.publish(JobChanged(job_id))
        for record in done.changed:
            self._changed(record)
            if record.state not in states.ACTIVE:  # missed, or failed: refused by every worker
                self._declined.pop(record.id, None)
                self._refused.pop(record.id, None)
            if states.is_terminal(record.state):
                self.wake()  # a missed run may have queued a chained run or a notification
        # after the events: a failed send publishes "queued" again, which must come last
        # (the secrets of the whole pass were read by the pass itself)
        for record in done.dispatched:
            await self._send_dispatch(
                record, done.jobs[record.job_id], done.secrets.get(record.job_id, {})
            )
        wake_at = [done.wake_at, retry_at]
        wake_at += await self._check_lost(done.active, now)
        return d.earliest(wake_at)

    async def _send_dispatch(
        self, run: RunRecord, job: JobRecord, secret_env: dict[str, str] | SecretKeyError
    ) -> None:
        """``secret_env``: the job's secrets, opened for this pass only (issue 17), sent only
        over the worker's connection; a SecretKeyError fails the run instead."""
        worker = run.worker_name or ""
        if isinstance(secret_env, SecretKeyError):
            exc = secret_env
            log.error("run %s of %s not dispatched: %s", run.id, job.name, exc)
            record = await self._transition(
                run, states.FAILED, reason=f"the job's secrets cannot be opened: {exc}"[:1000]
            )
            if record is not None:
                await self._after_end(record)
            return
        self.hub.masks.remember(run.id, secret_env.values())
        extra = {}
        if run.trigger == states.SCHEDULE and run.attempt == 1:
            wait = (run.scheduled_at - self.clock()).total_seconds()
            if wait > 0:  # fired ahead (FIRE_LEAD): the worker holds it until the due time
                extra["delay"] = round(min(wait, self.fire_lead.total_seconds()), 6)
        message = make(
            "dispatch",
            run_id=run.id,
            attempt=run.attempt,
            script=job.script,
            args=list(run.args if run.args is not None else job.args),
            env={**job.env, **secret_env},
            timeout=job.timeout_seconds,
            job=job.name,
            **extra,
        )
        if await self.hub.send(worker, message):
            log.debug("run %s of %s dispatched to %s", run.id, job.name, worker)
        else:
            await self._requeue(run.id, f"worker {worker} went away before the dispatch")

    async def _requeue(self, run_id: int, reason: str) -> None:
        try:
            record = await self.db.call(
                queries.transition_run, run_id, states.QUEUED, reason=reason, worker_name=None
            )
        except (states.TransitionError, NotFound):
            return
        self._changed(record)
        self.wake()

    async def _check_lost(self, runs: list[ActiveRun], now: datetime) -> list[datetime | None]:
        wake_at: list[datetime | None] = []
        for run in runs:
            if run.state not in (states.DISPATCHED, states.RUNNING):
                continue
            live = self.hub.workers.get(run.worker_name or "")
            if live is not None and run.id in live.running:
                self.hub.run_reports[run.id] = live.last_heartbeat
            deadline = d.lost_deadline(
                run.dispatched_at,
                self.hub.run_reports.get(run.id),
                self.watching_since,
                self.lost_grace,
            )
            if deadline > now:
                wake_at.append(deadline)
                continue
            where = run.worker_name or "its worker"
            record = await self._transition(
                run,
                states.LOST,
                reason=f"no word from {where} about this run for "
                f"{self.lost_grace.total_seconds():.0f} s (worker offline or restarted)",
            )
            self.hub.run_reports.pop(run.id, None)
            if record is not None:
                await self._after_end(record)
        return wake_at

    async def _transition(
        self, run: ActiveRun | RunRecord, state: str, **fields
    ) -> RunRecord | None:
        try:
            record = await self.db.call(queries.transition_run, run.id, state, **fields)
        except (states.TransitionError, NotFound) as exc:
            log.info("run %s not moved to %s: %s", run.id, state, exc)
            return None
        self._changed(record)
        return record

    async def _after_end(self, *records: RunRecord) -> None:
        for record in records:
            self._declined.pop(record.id, None)
            self._refused.pop(record.id, None)
        # their retries are planned by the next pass, in its trip to the database thread
        self._ended += records
        self.wake()

    # --- requests -------------------------------------------------------------------------------

    async def run_now(self, job_id: int, args: list[str] | None = None) -> RunRecord:
        """Record a manual run.  Requests made while the previous ones are being written share
        one transaction (a group commit), so a burst of them costs little more than one."""
        future: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()
        self._manual.append((job_id, args, future))
        if self._manual_writer is None or self._manual_writer.done():
            self._manual_writer = asyncio.create_task(self._write_manual_runs())
        return await future

    async def _write_manual_runs(self) -> None:
        while self._manual:
            batch, self._manual = self._manual, []
            try:
                results = await self.db.call(
                    firing.manual_runs, [(job_id, args) for job_id, args, _ in batch], self.clock()
                )
            except asyncio.CancelledError:  # stopping: nobody waits for an answer forever
                for _, _, future in batch + self._manual:
                    future.cancel()
                raise
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(batch, results):
                if isinstance(result, Exception):
                    if not future.done():
                        future.set_exception(result)
                    continue
                self._changed(result)
                if not future.done():
                    future.set_result(result)
            self.wake()

    async def cancel(self, run_id: int, reason: str = "cancelled from the console") -> None:
        run = await self.db.call(queries.get_run, run_id)
        if run is None:
            raise NotFound(f"there is no run {run_id}")
        if run.state == states.QUEUED:
            await self._transition(run, states.CANCELLED, reason=reason)
            self.wake()
            return
        if run.state not in (states.DISPATCHED, states.RUNNING):
            raise states.TransitionError(f"run {run_id} already ended ({run.state})")
        sent = run.worker_name and await self.hub.send(
            run.worker_name, make("cancel", run_id=run_id, reason=reason)
        )
        if not sent:
            # its worker is away: record the decision now; a late result from it is kept out
            record = await self._transition(
                run, states.CANCELLED, reason=f"{reason} (worker {run.worker_name} was offline)"
            )
            if record is not None:
                self.wake()

    # --- hub listener ---------------------------------------------------------------------------

    def worker_joined(self, worker: LiveWorker, held_runs: list[int]) -> None:
        if held_runs:
            self._spawn(self._stop_cancelled(worker.name, held_runs))
        self.wake()

    async def _stop_cancelled(self, worker: str, held_runs: list[int]) -> None:
        """A worker that comes back still running a run that was cancelled while it was away
        is told to stop it now (its report is then kept out: the run stays cancelled)."""
        current = await self.db.call(scheduling.run_states, held_runs)
        for run_id in held_runs:
            if current.get(run_id, ("",))[0] == states.CANCELLED:
                await self.hub.send(
                    worker,
                    make("cancel", run_id=run_id, reason="cancelled while the worker was away"),
                )

    def worker_left(self, name: str) -> None:
        self.wake()

    def worker_updated(self, worker: LiveWorker) -> None:
        for declines in self._declined.values():  # its scripts changed: ask it again
            declines.pop(worker.name, None)
        self.wake()  # it may now have the script a queued run waits for

    def run_declined(self, worker: str, run_id: int, reason: str, permanent: bool = False) -> None:
        log.warning(
            "worker %s declined run %s%s: %s",
            worker,
            run_id,
            " for good" if permanent else "",
            reason,
        )
        if permanent:
            # its env policy, the arguments or the script name: asking again changes nothing;
            # the pass offers the run to another worker or fails it (decisions.refusal)
            self._refused.setdefault(run_id, {})[worker] = reason
        else:
            self._declined.setdefault(run_id, {})[worker] = self.clock() + DECLINE_BACKOFF
        self._spawn(self._requeue(run_id, f"declined by {worker}: {reason}"))

    def runs_committed(self, result: CommitResult) -> None:
        for record in result.changed:
            log_run(record)
        for record in result.chained:
            self._changed(record)
        # Only an ended run frees a slot or lets a queued run of its job go (_after_end wakes
        # the pass); a run that started changes nothing the pass decides.
        if result.ended:
            self._spawn(self._after_end(*result.ended))
