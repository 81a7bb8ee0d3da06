"""EventBus (core, asyncio) -> Qt signals, coalesced per frame.

The core publishes one event per job change, run transition and output chunk.  Under a flood
(a script printing 50,000 lines/s, a bulk import touching 10,000 jobs) forwarding each one to the
widgets would starve the event loop, so events are buffered and flushed once per frame (about
30 ms): jobs and runs are de-duplicated by id (the last state wins), output keeps its order.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from desktop.core.events import (
    Event,
    EventBus,
    JobChanged,
    OutputAppended,
    RunChanged,
    WorkerChanged,
)

FRAME_MS = 30


class EventBridge(QObject):
    # dict[job_id, deleted]
    jobsChanged = Signal(object)
    # dict[run_id, RunChanged] (the latest event per run)
    runsChanged = Signal(object)
    # list[OutputAppended] in arrival order
    outputAppended = Signal(object)
    # dict[name, online]
    workersChanged = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None, frame_ms: int = FRAME_MS):
        super().__init__(parent)
        self._jobs: dict[int, bool] = {}
        self._runs: dict[int, RunChanged] = {}
        self._output: list[OutputAppended] = []
        self._workers: dict[str, bool] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.CoarseTimer)
        self._timer.setInterval(frame_ms)
        self._timer.timeout.connect(self.flush)
        self._unsubscribe = bus.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()
        self._timer.stop()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, OutputAppended):
            self._output.append(event)
        elif isinstance(event, RunChanged):
            self._runs[event.run_id] = event
        elif isinstance(event, JobChanged):
            # a delete followed by a re-create of the same id cannot happen (ids are not
            # reused), so "deleted" is sticky within a frame
            self._jobs[event.job_id] = self._jobs.get(event.job_id, False) or event.deleted
        elif isinstance(event, WorkerChanged):
            self._workers[event.name] = event.online
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Emit everything buffered (the timer calls this; tests may call it directly)."""
        jobs, self._jobs = self._jobs, {}
        runs, self._runs = self._runs, {}
        output, self._output = self._output, []
        workers, self._workers = self._workers, {}
        # jobs before runs before output: a new run's row exists before its first line arrives
        if jobs:
            self.jobsChanged.emit(jobs)
        if workers:
            self.workersChanged.emit(workers)
        if runs:
            self.runsChanged.emit(runs)
        if output:
            self.outputAppended.emit(output)
