"""Known settings: their defaults and checks, in one place.  Values are stored as text.

Unknown keys may be stored too (the UI keeps its own small preferences), but a known key only
takes a value its check accepts, so a typo in the CLI cannot break the console's next start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from desktop.core.zones import zone_problem

DEFAULTS: dict[str, str] = {
    "display_tz": "Asia/Hong_Kong",
    "hub_host": "127.0.0.1",
    "hub_port": "8000",
    "local_worker": "1",
    "retention_days": "90",  # 0 = keep runs forever
    "retention_runs_per_job": "1000",  # 0 = no per-job limit
    "audit_retention_days": "365",  # 0 = keep the audit trail forever
    "output_cap_bytes": "10485760",  # 10 MB of output stored per run
    "heartbeat_interval": "10",  # seconds between worker heartbeats
    "lost_grace_seconds": "60",  # silence after which a worker's runs are lost
    "hub_tls_cert": "",  # PEM certificate (chain) of the hub; empty = plain ws://
    "hub_tls_key": "",  # its PEM private key
}

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{0,99}$")


def _int_range(lo: int, hi: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        try:
            number = int(value)
        except ValueError:
            return f"{value!r} is not a whole number"
        if not lo <= number <= hi:
            return f"must be between {lo} and {hi}"
        return None

    return check


def _time_zone(value: str) -> str | None:
    return zone_problem(value)


def _host(value: str) -> str | None:
    if not value or len(value) > 255 or any(c.isspace() for c in value):
        return "must be a host name or IP address without spaces"
    return None


def _pem_file(value: str) -> str | None:
    # Checked where the console runs (the CLI and the UI run there too), so a typo is caught
    # when saved rather than as a failed hub start.
    if value and not Path(value).is_file():
        return f"{value} is not a file here; give the full path of the PEM file (empty: no TLS)"
    return None


CHECKS: dict[str, Callable[[str], str | None]] = {
    "display_tz": _time_zone,
    "hub_host": _host,
    "hub_port": _int_range(0, 65535),
    "local_worker": _int_range(0, 1),
    "retention_days": _int_range(0, 36500),
    "retention_runs_per_job": _int_range(0, 100_000_000),
    "audit_retention_days": _int_range(0, 36500),
    "output_cap_bytes": _int_range(1024, 2**40),
    "heartbeat_interval": _int_range(1, 3600),
    "lost_grace_seconds": _int_range(1, 86400),
    "hub_tls_cert": _pem_file,
    "hub_tls_key": _pem_file,
}


def check(key: str, value: str) -> str | None:
    """None when ``value`` is acceptable for ``key``, else what is wrong with it."""
    if not KEY_PATTERN.match(key):
        return "a setting name is lower case letters, digits, '_' and '.' (at most 100)"
    if not isinstance(value, str):
        return "a setting value must be text"
    checker = CHECKS.get(key)
    return checker(value) if checker else None
