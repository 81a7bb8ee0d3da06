"""Is a worker's token crossing the network in clear?  (pure)

A plain ``ws://`` hub receives each worker's token as it is in ``hello``.  From a loopback
address that stays on this machine; from any other address anyone on the path could read it
and act as that worker.  The console says so in its log and marks the worker in the Workers
panel, so the admin knows to configure TLS (hub_tls_cert / hub_tls_key, docs/SECURITY.md).
"""

from __future__ import annotations

import functools
import ipaddress

ADVICE = "token sent in clear; configure TLS (hub_tls_cert and hub_tls_key in Settings)"


# Cached: the workers table asks for every connected worker on each refresh (10,000 addresses
# parsed took 40 ms of the Qt thread), and a worker keeps its address while connected.
@functools.lru_cache(maxsize=65536)
def is_loopback(remote: str) -> bool:
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])  # an IPv6 zone id is not an address
    except ValueError:
        return False  # unknown: assume the worst
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def token_in_clear(tls: bool, remote: str) -> bool:
    """True when a worker at ``remote`` sent its token over an unencrypted, off-host link."""
    return not tls and not is_loopback(remote)
