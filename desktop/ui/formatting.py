"""How times, durations and outcomes read in the console.  Pure functions (no Qt) so they are
tested with plain values; the table models call them only for the rows on screen."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from desktop.core.words import plural
from desktop.core.zones import is_zone

DEFAULT_DISPLAY_TZ = "Asia/Hong_Kong"

# Outcome -> (label, colour as #rrggbb).  Colours are chosen to read on light and dark palettes.
OUTCOME_STYLE: dict[str, tuple[str, str]] = {
    "succeeded": ("Succeeded", "#2e9d4a"),
    "failed": ("Failed", "#d64541"),
    "timed_out": ("Timed out", "#e07b24"),
    "cancelled": ("Cancelled", "#8c8c8c"),
    "lost": ("Lost", "#b5489b"),
    "skipped": ("Skipped", "#8c8c8c"),
    "missed": ("Missed", "#c9a227"),
    "queued": ("Queued", "#3d7fd9"),
    "dispatched": ("Dispatched", "#3d7fd9"),
    "running": ("Running", "#1e90ff"),
}


@lru_cache(maxsize=64)
def zone(name: str | None) -> ZoneInfo:
    """The display zone; an unknown name falls back to the default instead of breaking views."""
    return ZoneInfo(name if is_zone(name) else DEFAULT_DISPLAY_TZ)


def format_time(dt: datetime | None, tz_name: str | None, *, seconds: bool = True) -> str:
    """An aware instant in the display zone, e.g. '2026-11-29 14:05:09'; '' for None."""
    if dt is None:
        return ""
    if dt.tzinfo is None:  # the store hands out aware UTC; be forgiving with naive UTC
        from desktop.core.timeutil import from_naive_utc

        dt = from_naive_utc(dt)
    local = dt.astimezone(zone(tz_name))
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def format_duration(seconds: float | None) -> str:
    """'850 ms', '12.3 s', '4 min 05 s', '2 h 03 min', '3 d 4 h'; '' for None."""
    if seconds is None:
        return ""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    minutes, sec = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_age(then: datetime | None, now: datetime) -> str:
    """How long ago: 'just now', '42 s ago', '5 min ago', 'never'."""
    if then is None:
        return "never"
    delta = (now - then).total_seconds()
    if delta < 2:
        return "just now"
    return f"{format_duration(delta).replace('.0 s', ' s')} ago"


def outcome_label(state: str | None) -> str:
    if not state:
        return "Never run"
    return OUTCOME_STYLE.get(state, (state.replace("_", " ").capitalize(), ""))[0]


def outcome_colour(state: str | None) -> str | None:
    if not state:
        return None
    return OUTCOME_STYLE.get(state, ("", ""))[1] or None


def describe_target(kind: str | None, value: str | None) -> str:
    if kind == "worker":
        return f"worker {value}"
    if kind == "tag":
        return f"tag {value}"
    return "any worker"


def duration_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start) / timedelta(seconds=1)


def system_status_text(
    workers_online: int, workers_total: int, running: int, queued: int
) -> tuple[str, bool]:
    """The status bar line and whether it is an alarm.  No worker online means nothing can run:
    say so plainly, with the reason, as the old portal did."""
    runs = f"{running} running, {queued} queued"
    if workers_online == 0:
        reason = (
            "no worker is registered: add one in the Workers panel"
            if workers_total == 0
            else (
                "the only worker is not connected"
                if workers_total == 1
                else f"none of the {workers_total} workers is connected"
            )
        )
        return f"System Offline: {reason}  |  {runs}", True
    return f"{workers_online} of {plural(workers_total, 'worker')} online  |  {runs}", False
