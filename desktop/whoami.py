"""Who made a change, for the audit trail: the OS account and the host, and from where
("console" for the window or headless console, "cli" for the command line)."""

from __future__ import annotations

import getpass
import socket


def who(where: str) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some service accounts and containers
        user = "unknown"
    try:
        host = socket.gethostname()
    except OSError:
        host = "unknown-host"
    return f"{where}:{user}@{host}"[:200]
