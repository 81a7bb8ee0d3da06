"""Small builders shared by the store tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def job_spec(name: str = "backup", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "script": "backup.py",
        "args": ["--full"],
        "env": {"MODE": "nightly"},
        "schedule": {"v": 1, "kind": "daily", "times": ["02:30"], "tz": "Asia/Hong_Kong"},
    }
    spec.update(overrides)
    return spec
