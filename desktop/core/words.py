"""Counted nouns for people: '1 job', '2 jobs', 'Last 1 run'.  English only (the UI is)."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'1 job' / '0 jobs' / '3 jobs'; `many` for nouns that do not just take an 's'."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"
