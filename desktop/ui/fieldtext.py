"""The editor's text fields read and written: plain functions, no Qt (shared by the job editor,
the chains editor and Settings; tested without widgets)."""

from __future__ import annotations

import shlex

from desktop.core.zones import known_zones


def zone_names() -> list[str]:
    return sorted(known_zones())


def parse_env(text: str) -> tuple[dict[str, str], str | None]:
    """NAME=value per line (blank lines and # comments ignored) -> (env, problem)."""
    env: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            return env, f"line {n} ({line!r}) is not NAME=value"
        name, value = line.split("=", 1)
        env[name.strip()] = value
    return env, None


def format_env(env: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in env.items())


def parse_args(text: str) -> tuple[list[str], str | None]:
    """Shell-like words (quotes group words) -> (args, problem).  Never run by a shell: the
    worker passes the list as is."""
    try:
        return shlex.split(text), None
    except ValueError as exc:
        return [], f"cannot split the arguments: {exc} (close the quote)"
