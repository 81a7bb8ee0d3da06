"""The console's limit on open files (RLIMIT_NOFILE): every connected worker holds one socket,
so the common default soft limit of 1,024 (many Linux distributions, macOS 256) stops a console
at about a thousand workers with "Too many open files".

``raise_limit`` lifts the soft limit to the hard limit, which a process may do without
privileges; ``advice`` says, in numbers, when the limit is still too low for the workers
registered.  No-op where the resource module does not exist (Windows: sockets are not limited
this way).  The decisions are pure (``wanted``, ``advice``); ``raise_limit`` does the call.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

# descriptors the console needs besides its workers: database, log files, the UDP nudge port,
# the listening socket, Qt's own, connections in their handshake, the CLI
HEADROOM = 256
# macOS refuses a soft limit above OPEN_MAX (10,240) with EINVAL even when the hard limit is
# "unlimited"
MACOS_OPEN_MAX = 10_240


def wanted(soft: int, hard: int, infinity: int, platform: str = sys.platform) -> int:
    """The soft limit to ask for: the hard limit (capped where the OS caps it); never lower
    than the current soft limit."""
    target = hard
    if platform == "darwin" and (hard == infinity or hard > MACOS_OPEN_MAX):
        target = MACOS_OPEN_MAX
    elif hard == infinity:
        target = max(soft, 1_048_576)  # Linux: "unlimited" is refused; nr_open's default
    return max(soft, target)


def advice(limit: int, workers: int, headroom: int = HEADROOM) -> str | None:
    """A warning naming the numbers when ``limit`` open files cannot serve ``workers``
    connections plus ``headroom``; None when it can (or the limit is unknown: -1)."""
    need = workers + headroom
    if limit < 0 or limit >= need:
        return None
    return (
        f"this console may open only {limit} files but {workers} workers are registered "
        f"(each connection takes one, plus about {headroom} for the console itself): "
        f"workers beyond about {max(0, limit - headroom)} will be refused with 'too many "
        f"open files'; raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit, "
        f"/etc/security/limits.conf) to at least {need}"
    )


def raise_limit() -> int:
    """Raise the soft limit as far as allowed; returns the limit now in force (-1: none)."""
    try:
        import resource
    except ImportError:  # Windows
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted(soft, hard, resource.RLIM_INFINITY)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
    return -1 if soft == resource.RLIM_INFINITY else soft


def check(workers: int) -> int:
    """Raise the limit and warn if it is still too low for ``workers``; returns the limit."""
    limit = raise_limit()
    text = advice(limit, workers)
    if text:
        log.warning("%s", text)
    return limit
