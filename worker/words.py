"""Counted nouns in the worker's messages: '1 slot', '2 slots'.  The console has its own
(desktop/core/words.py); the worker may not import desktop."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'1 job' / '0 jobs' / '3 jobs'; `many` for nouns that do not just take an 's'."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"
