"""What a job secret may be: the same checks for the editor, the CLI, import and the store.

A secret reaches the job as an environment variable, so its name must be a portable variable
name, and the worker's environment policy (worker/envpolicy.py) applies to it like to any
other variable: a name the worker refuses (PATH, LD_*, PYTHON*...) gets the dispatch declined.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from worker import envpolicy

MAX_VALUE_BYTES = 64 * 1024
MIN_VALUE_CHARS = 4  # shorter values cannot be masked without masking ordinary output
PLACEHOLDER = "<secret: not exported; set it with `secrets set`>"


def check_name(name: Any) -> str | None:
    """Why NAME cannot be a secret's name, or None."""
    if not isinstance(name, str) or not envpolicy.valid_name(name):
        return (
            f"{str(name)[:60]!r} is not a valid environment variable name (letters, digits "
            "and _, not starting with a digit)"
        )
    if name.upper() in envpolicy.RESERVED:
        return f"{name} is set by the worker itself"
    return None


def check_value(value: Any) -> str | None:
    """Why VALUE cannot be a secret's value, or None (the message never holds the value)."""
    if not isinstance(value, str):
        return "a secret's value must be text"
    if "\x00" in value:
        return "a secret's value cannot hold a NUL character"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        return f"a secret's value must be at most {MAX_VALUE_BYTES // 1024} KiB"
    if len(value) < MIN_VALUE_CHARS:
        return (
            f"a secret's value must be at least {MIN_VALUE_CHARS} characters (a shorter one "
            "cannot be masked in output without masking ordinary text)"
        )
    return None


def worker_warning(name: str) -> str | None:
    """A note when workers refuse NAME by default (the dispatch would be declined)."""
    if envpolicy.default_refuses(name):
        return (
            f"workers refuse {name} by default (it could change which program runs): a dispatch "
            f"setting it is declined unless the worker's admin permits it with "
            f"{envpolicy.ALLOW_KEY} in worker.ini"
        )
    return None
