"""Chains, pure logic: when a run's end fires a chain, the target's arguments, and cycles."""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

from desktop.core import runs as states

SUCCESS, FAILURE, END = "success", "failure", "end"
ON_EVENTS = (SUCCESS, FAILURE, END)
FAILURE_STATES = frozenset({states.FAILED, states.TIMED_OUT, states.LOST})
# "any end": every run that ran (or was meant to) and stopped; skipped/missed never started
END_STATES = FAILURE_STATES | {states.SUCCEEDED, states.CANCELLED}
FIELDS = ("run_id", "exit_code", "state", "job")


class ChainError(ValueError):
    """A chain that cannot be saved (unknown job, cycle, bad argument template)."""


def fires(on_event: str, state: str) -> bool:
    if on_event == SUCCESS:
        return state == states.SUCCEEDED
    if on_event == FAILURE:
        return state in FAILURE_STATES
    return on_event == END and state in END_STATES


def check_on(value: str) -> str:
    if value not in ON_EVENTS:
        raise ChainError(f"on: use one of {', '.join(ON_EVENTS)} (not {value!r})")
    return value


def check_args(templates: Iterable[str]) -> list[str]:
    """Argument templates may name {run_id}, {exit_code}, {state}, {job} of the source run."""
    out = []
    for t in templates:
        if not isinstance(t, str):
            raise ChainError("arguments must be strings")
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(t) if name is not None]
        except ValueError as exc:
            raise ChainError(f"argument {t!r}: {exc} (write {{{{ for a literal brace)") from None
        bad = [n for n in names if n not in FIELDS]
        if bad:
            raise ChainError(f"argument {t!r}: unknown field {{{bad[0]}}}; use {', '.join(FIELDS)}")
        out.append(t)
    return out


def render_args(
    templates: Iterable[str], run_id: int, exit_code: int | None, state: str, job: str
) -> list[str]:
    values = {
        "run_id": str(run_id),
        "exit_code": "" if exit_code is None else str(exit_code),
        "state": state,
        "job": job,
    }
    return [t.format(**values) for t in templates]


def find_cycle(edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """A cycle in the graph source -> target, as the job names around it (first repeated at the
    end), or None.  Any cycle is refused, whatever the events: A -> B on success and B -> A on
    failure can still run forever."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    WHITE, GREY, BLACK = 0, 1, 2
    colour: dict[str, int] = {}
    for start in sorted(graph):
        if colour.get(start, WHITE) != WHITE:
            continue
        stack = [(start, iter(sorted(graph.get(start, []))))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = BLACK
                stack.pop()
                path.pop()
                continue
            c = colour.get(nxt, WHITE)
            if c == GREY:
                return [*path[path.index(nxt) :], nxt]
            if c == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph.get(nxt, [])))))
    return None


def describe(chain: Mapping[str, Any]) -> str:
    args = chain.get("args")
    extra = f" with arguments {' '.join(args)}" if args else ""
    return f"on {chain['on']} -> {chain['then']}{extra}"
