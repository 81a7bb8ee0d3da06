"""Several consoles, one leader: which ``server_url`` the worker tries next.

``server_url`` in worker.ini may list several addresses (commas or spaces between them), the
consoles of one cluster (docs/HA.md).  Only the leader takes workers; a standby refuses with
``not_leader``.  The worker keeps to the address that works and moves to the next one when the
connection fails or a console says it does not lead.  Pure: no I/O, tested with plain values.
"""

from __future__ import annotations

# a standby refusal is expected during a takeover: try the next console soon, not in a minute
NOT_LEADER_RETRY = 1.0
# refusals that say "not this console" (a standby; one that lost its database), not "not you"
TRY_NEXT_CONSOLE = frozenset({"not_leader", "unavailable"})


def split_urls(text: str) -> list[str]:
    """The addresses in a ``server_url`` value, in order, without repeats."""
    out: list[str] = []
    for part in text.replace(",", " ").split():
        if part not in out:
            out.append(part)
    return out


class UrlRing:
    def __init__(self, urls: list[str]) -> None:
        if not urls:
            raise ValueError("no server_url")
        self.urls = list(urls)
        self.index = 0
        self.failed_in_round = 0  # consecutive failures since an address last worked

    @property
    def current(self) -> str:
        return self.urls[self.index]

    def worked(self) -> None:
        self.failed_in_round = 0

    def failed(self) -> bool:
        """The current address failed: move on.  True when every address failed once since one
        last worked (a whole round): then the caller waits its backoff before trying again."""
        self.failed_in_round += 1
        self.index = (self.index + 1) % len(self.urls)
        if self.failed_in_round >= len(self.urls):
            self.failed_in_round = 0
            return True
        return False
