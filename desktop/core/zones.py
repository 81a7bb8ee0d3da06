"""The one time-zone name check, shared by the store, the CLI, the settings and the job editor.

A name is good only when it is one of the zone database's own keys, spelled exactly so.  Asking
ZoneInfo() alone is not enough: through the `tzdata` package (every Windows host) a folder of the
database such as 'America' raises IsADirectoryError, a data file such as 'zone.tab' raises
ValueError, and on a case-insensitive file system 'utc' would be accepted on one host and not on
another.  Every bad name gets the same one-line reason, so the editor's field, the CLI and the
store always say the same thing.
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any, TypeGuard

EXAMPLES = "a name like Europe/London (IANA)"


def zone_problem(value: Any) -> str | None:
    """None when `value` names a time zone; otherwise the one reason shown for every bad name."""
    if isinstance(value, str) and value in known_zones():
        try:
            zoneinfo.ZoneInfo(value)
            return None
        except Exception:  # listed but unreadable (a broken install): still not usable
            pass
    return f"{shown(value)} is not a time zone; use {EXAMPLES}"


def is_zone(value: Any) -> TypeGuard[str]:
    return zone_problem(value) is None


def known_zones() -> frozenset[str]:
    # Keyed on the search path so a test (or a host) that switches to the tzdata package sees
    # that package's list, not a stale one.
    return _known(tuple(zoneinfo.TZPATH))


def shown(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = text if len(text) <= 40 else text[:37] + "..."
    return repr(text)


@functools.lru_cache(maxsize=4)
def _known(_tzpath: tuple[str, ...]) -> frozenset[str]:
    # UTC is a key on every host, even one whose database leaves it out of the listing.
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}
