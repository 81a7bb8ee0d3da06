"""Who may report what about a run (pure: plain values in, a verdict out).

A worker is trusted with its own runs only (docs/SECURITY.md, "Ownership on the hub").  A run
belongs to the worker named in its ``worker_name`` column, which only the console writes (the
scheduler's dispatch).  Every report, decline and claim names a run; each is checked here against
the run's committed row, inside the transaction that would write it (hub/commit.py) or, for
things that write nothing (a decline, the runs a worker says it holds), against a fresh read.

A verdict is ``None`` (allowed) or the reason the report is refused, said to the worker in an
``error`` frame and written to the console log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from desktop.core import runs as states

# Reports that carry a seq and may change a run: started, output, finished.
REPORTS = ("started", "output", "finished")


def report_verdict(kind: str, reporter: str, owner: str | None, state: str) -> str | None:
    """May ``reporter`` report ``kind`` for a run in ``state`` assigned to ``owner``?

    Only the worker the run is assigned to may report.  A queued run is assigned to nobody (its
    dispatch was taken back, or it was never dispatched): no worker may start it.  A run that is
    decided (lost, cancelled) still takes reports from its own worker: the real result wins over
    "lost", and the run model (desktop.core.runs) decides what is written.
    """
    if owner is None:
        if state == states.QUEUED:
            return f"run is queued and not dispatched to any worker; {kind} refused"
        return f"run is not assigned to any worker; {kind} refused"
    if owner != reporter:
        return f"run is assigned to another worker; {kind} refused"
    return None


def decline_verdict(reporter: str, owner: str | None, state: str | None) -> str | None:
    """A decline takes a dispatch back (the run is queued again), so only the worker the run is
    dispatched to, and only before it started, may decline it."""
    if state is None:
        return "no such run; declined ignored"
    if owner != reporter:
        return "run is not dispatched to this worker; declined refused"
    if state != states.DISPATCHED:
        return f"run is {state}, not waiting to start; declined refused"
    return None


def own_runs(reporter: str, claimed: Iterable[int], owners: Mapping[int, str | None]) -> list[int]:
    """The runs among ``claimed`` (hello ``runs``) that are assigned to ``reporter``; the rest
    are ignored, so a claim can neither keep another worker's run alive nor get its cancel."""
    return [rid for rid in claimed if owners.get(rid) == reporter]
