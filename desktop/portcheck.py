"""Is the hub's port free, asked before the database is opened?

A first start with the port taken must leave nothing behind (no new database file).  The stored
settings can only move the port when the database already exists, so: when the port is given on
the command line, or there is no database yet (the default port applies), try to bind it first.
Binding and closing is a hint, not a reservation; the hub's own bind still decides.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from desktop.store.db import parse_url
from desktop.store.settings import DEFAULTS


def new_sqlite_file(url: str) -> bool:
    """True when `url` is a SQLite file that does not exist yet (opening it would create it)."""
    try:
        parsed = parse_url(url)
    except Exception:  # a bad URL: the store says why, later
        return False
    return parsed.kind == "sqlite" and parsed.path != ":memory:" and not Path(parsed.path).exists()


def busy_port(url: str, host: str | None, port: int | None) -> tuple[str, int, OSError] | None:
    """(host, port, error) when the hub could not bind, as far as can be told without the
    database; None when it can or when only the stored settings know the address."""
    if port is None and not new_sqlite_file(url):
        return None
    host = host or DEFAULTS["hub_host"]
    port = int(DEFAULTS["hub_port"]) if port is None else port
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return None  # the hub reports a bad host itself
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        if os.name == "posix":  # as asyncio's server does: a TIME_WAIT port counts as free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return host, port, exc
    return None
