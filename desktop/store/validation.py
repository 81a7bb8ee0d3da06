"""Checking a job definition (pure: no database).  Every problem is collected, keyed by field,
in words a person understands, so the editor can mark fields and import can list them all."""

from __future__ import annotations

import json
import re
from typing import Any

from desktop.core.zones import zone_problem
from desktop.store.errors import ValidationError
from desktop.store.records import JOB_SPEC_FIELDS

try:  # written by another part of the team; fall back to a shape check until it exists
    from desktop.core import schedules as _schedules
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the checkout
    if exc.name != "desktop.core.schedules":
        raise
    _schedules = None  # type: ignore[assignment]

TARGET_KINDS = ("any", "worker", "tag")
MISFIRE_POLICIES = ("skip", "run_once", "run_all")
CONCURRENCY = ("allow", "skip", "queue")

DEFAULTS: dict[str, Any] = {
    "description": "",
    "args": [],
    "env": {},
    "target_kind": "any",
    "target_value": "",
    "enabled": True,
    "misfire_policy": "run_once",
    "misfire_cap": 10,
    "concurrency": "skip",
    "timeout_seconds": None,
    "max_retries": 0,
    "retry_delay_seconds": 60,
    "retry_backoff": 2.0,
    "retry_max_delay_seconds": 3600,
    "queue_timeout_seconds": None,
}
REQUIRED = ("name", "script", "schedule")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
DAY = 86400

# field -> (minimum, maximum, may be None)
_INT_RANGES: dict[str, tuple[int, int, bool]] = {
    "misfire_cap": (1, 10_000, False),
    "timeout_seconds": (1, 30 * DAY, True),
    "max_retries": (0, 100, False),
    "retry_delay_seconds": (0, 7 * DAY, False),
    "retry_max_delay_seconds": (0, 30 * DAY, False),
    "queue_timeout_seconds": (1, 30 * DAY, True),
}


def script_name_problem(name: Any) -> str | None:
    """Why ``name`` is not a safe script name (a plain file name inside the worker's scripts
    folder), or None.  The worker checks again; this catches mistakes when the job is saved."""
    if not isinstance(name, str) or not name.strip():
        return "is required: the file name of a script in the worker's scripts folder"
    if len(name) > 255:
        return "is longer than 255 characters"
    if "/" in name or "\\" in name:
        return "must be a plain file name, without folders ('/' or '\\')"
    if name in (".", "..") or ".." in name:
        return "must not contain '..'"
    if ":" in name:
        return "must not contain ':' (no drive letters or streams)"
    if _CONTROL.search(name):
        return "must not contain control characters"
    if name != name.strip():
        return "must not start or end with spaces"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "is required"
    if len(value) > 200:
        return "is longer than 200 characters"
    if value != value.strip():
        return "must not start or end with spaces"
    if _CONTROL.search(value):
        return "must not contain control characters"
    return None


def _schedule_problems(schedule: dict[str, Any]) -> dict[str, str]:
    if _schedules is not None:
        return {
            f"schedule.{k}" if k else "schedule": v
            for k, v in _schedules.validate(schedule).items()
        }
    if not isinstance(schedule.get("kind"), str):
        return {"schedule": "needs a 'kind'"}
    return {}


def schedule_text(schedule: dict[str, Any]) -> str:
    """The schedule as stored: the schedule module's stable form when available."""
    if _schedules is not None:
        return _schedules.dumps(_schedules.parse(schedule))
    return json.dumps(schedule, sort_keys=True, separators=(",", ":"))


def describe_schedule(schedule: dict[str, Any]) -> str:
    if _schedules is not None:
        try:
            return _schedules.parse(schedule).describe()
        except ValueError:
            pass
    return str(schedule.get("kind", "?"))


def next_fire(schedule: dict[str, Any], after):
    """The first firing strictly after ``after`` (aware), or None (manual, past one-shot, or
    when the schedule engine is not installed yet: the scheduler then fills it in)."""
    if _schedules is None:
        return None
    return _schedules.parse(schedule).next_after(after)


def normalize_job_spec(spec: Any, *, default_tz: str = "Asia/Hong_Kong") -> dict[str, Any]:
    """Check a whole job definition and return it complete (defaults filled in).
    Raises ValidationError listing every problem."""
    if not isinstance(spec, dict):
        raise ValidationError({"job": "a job definition must be an object of fields"})
    errors: dict[str, str] = {}
    for key in spec:
        if key not in JOB_SPEC_FIELDS:
            errors[str(key)] = "is not a job field (typo?)"
    out: dict[str, Any] = {**DEFAULTS, **{k: v for k, v in spec.items() if k in JOB_SPEC_FIELDS}}
    for key in REQUIRED:
        if key not in spec:
            errors[key] = "is required"

    if "name" in spec and (problem := _check_name(out["name"])):
        errors["name"] = problem
    if "script" in spec and (problem := script_name_problem(out["script"])):
        errors["script"] = problem
    if not isinstance(out["description"], str):
        errors["description"] = "must be text"
    args = out["args"]
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        errors["args"] = "must be a list of text arguments"
    elif len(args) > 1000:
        errors["args"] = "has more than 1000 arguments"
    env = out["env"]
    if not isinstance(env, dict):
        errors["env"] = "must be an object of NAME: value text pairs"
    else:
        for k, v in env.items():
            if not isinstance(k, str) or not _ENV_NAME.match(k):
                errors["env"] = f"{k!r} is not a valid variable name (letters, digits, _)"
                break
            if not isinstance(v, str):
                errors["env"] = f"the value of {k} must be text"
                break
    if out["target_kind"] not in TARGET_KINDS:
        errors["target_kind"] = f"must be one of {', '.join(TARGET_KINDS)}"
    elif not isinstance(out["target_value"], str) or len(out["target_value"]) > 200:
        errors["target_value"] = "must be text of at most 200 characters"
    elif out["target_kind"] != "any" and not out["target_value"].strip():
        what = "worker name" if out["target_kind"] == "worker" else "tag"
        errors["target_value"] = f"needs the {what} to run on"
    elif out["target_kind"] == "any":
        out["target_value"] = ""
    if not isinstance(out["enabled"], bool):
        errors["enabled"] = "must be true or false"
    if out["misfire_policy"] not in MISFIRE_POLICIES:
        errors["misfire_policy"] = f"must be one of {', '.join(MISFIRE_POLICIES)}"
    if out["concurrency"] not in CONCURRENCY:
        errors["concurrency"] = f"must be one of {', '.join(CONCURRENCY)}"
    for key, (lo, hi, nullable) in _INT_RANGES.items():
        value = out[key]
        if value is None and nullable:
            continue
        if not _is_int(value) or not lo <= value <= hi:
            extra = " or empty" if nullable else ""
            errors[key] = f"must be a whole number from {lo} to {hi}{extra}"
    backoff = out["retry_backoff"]
    if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 1 <= backoff <= 10:
        errors["retry_backoff"] = "must be a number from 1 to 10"
    else:
        out["retry_backoff"] = float(backoff)

    schedule = out.get("schedule")
    if "schedule" in spec:
        if not isinstance(schedule, dict):
            errors["schedule"] = "must be a schedule object with a 'kind'"
        else:
            schedule = dict(schedule)
            tz = out.get("time_zone") or schedule.get("tz") or default_tz
            if "time_zone" in spec and (problem := zone_problem(out["time_zone"])):
                errors["time_zone"] = problem
            elif schedule.get("tz") not in (None, tz):
                errors["time_zone"] = (
                    f"is {tz} but the schedule says {schedule['tz']}; make them the same"
                )
            else:
                schedule.setdefault("tz", tz)
                out["time_zone"] = tz
                errors.update(_schedule_problems(schedule))
            out["schedule"] = schedule
    if errors:
        raise ValidationError(errors)
    # The canonical form, so comparing with a stored job sees only real differences.
    out["schedule"] = json.loads(schedule_text(out["schedule"]))
    out["args"] = list(args)
    out["env"] = dict(env)
    return out
