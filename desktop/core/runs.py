"""Run states and the transitions between them (pure logic, no I/O).

A run row has exactly one outcome.  ``queued -> dispatched -> running -> terminal``, plus
``skipped`` and ``missed`` for occurrences that never ran.  ``lost`` is terminal for the
scheduler (it may start a retry), but a worker that comes back with the real result may still
replace it: the real result wins (DESIGN.md, Runs).
"""

from __future__ import annotations

QUEUED = "queued"
DISPATCHED = "dispatched"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
CANCELLED = "cancelled"
LOST = "lost"
SKIPPED = "skipped"
MISSED = "missed"

ACTIVE = frozenset({QUEUED, DISPATCHED, RUNNING})
# Results a worker reports from a script it ran (worker.protocol.OUTCOMES also has "lost": a
# worker that restarted after a crash reports the runs it lost, as the scheduler does)
WORKER_OUTCOMES = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED})
TERMINAL = frozenset(WORKER_OUTCOMES | {LOST, SKIPPED, MISSED})
ALL_STATES = ACTIVE | TERMINAL

# Trigger kinds: why a run exists
SCHEDULE = "schedule"
MANUAL = "manual"
RETRY = "retry"
CHAIN = "chain"  # started by the end of another job's run (desktop/core/chains.py)
TRIGGERS = (SCHEDULE, MANUAL, RETRY, CHAIN)

_ALLOWED: dict[str, frozenset[str]] = {
    # failed: every worker that could take it refused it for good (its env, arguments, script)
    QUEUED: frozenset({DISPATCHED, RUNNING, CANCELLED, MISSED, SKIPPED, LOST, FAILED}),
    # a dispatched run may report straight to a result when the start message was lost/merged
    DISPATCHED: frozenset({RUNNING, QUEUED} | WORKER_OUTCOMES | {LOST}),
    RUNNING: frozenset(WORKER_OUTCOMES | {LOST}),
    # the real result wins over "lost" when the worker comes back
    LOST: WORKER_OUTCOMES,
}


class TransitionError(ValueError):
    """A state change that the run model does not allow."""


def can_transition(current: str, new: str) -> bool:
    return new in _ALLOWED.get(current, frozenset())


def check_transition(current: str, new: str) -> None:
    if new not in ALL_STATES:
        raise TransitionError(f"unknown run state {new!r}")
    if not can_transition(current, new):
        raise TransitionError(f"a run cannot go from {current} to {new}")


def is_terminal(state: str) -> bool:
    return state in TERMINAL
