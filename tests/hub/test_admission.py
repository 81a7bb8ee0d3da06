"""The cap on logins at once and the appointments given to the others (pure)."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

from desktop.hub.admission import (
    FLOOR_RATE,
    MAX_RETRY_AFTER,
    MIN_CAP,
    MIN_SAMPLES,
    PER_ADDRESS,
    RATE_WINDOW,
    TARGET_WAIT,
    Admission,
)


def addr(key: object) -> str:
    """Each worker from a host of its own, as in a storm."""
    return f"host-{key}"


def test_logins_up_to_the_cap_go_in_and_a_slot_frees_when_one_ends():
    gate: Admission[str] = Admission(limit=2)
    assert gate.admit("a", addr("a"), 0.0) is None
    assert gate.admit("b", addr("b"), 0.0) is None
    assert gate.admit("c", addr("c"), 0.0) is not None  # over the cap: an appointment
    gate.done("a", 0.1, welcomed=False)  # closed before its welcome: room again
    gate.done("a", 0.1, welcomed=True)  # a second report is ignored
    gate.done("zzz", 0.1, welcomed=True)  # and an unknown one
    assert gate.in_progress == 1
    assert gate.admit("d", addr("d"), 0.2) is None
    assert gate.refused == 1


def test_appointments_follow_one_another_at_the_measured_welcome_rate():
    gate: Admission[int] = Admission(limit=100)
    # 4,000 workers welcomed over 2 s: 2,000/s, above the floor
    for i in range(4000):
        assert gate.admit(i, addr(i), i / 2000) is None
        gate.done(i, i / 2000, welcomed=True)
    now = 2.0
    assert abs(gate.rate(now) - 2000) < 10
    for i in range(100):
        assert gate.admit(10_000 + i, addr(10_000 + i), now) is None
    # 50 ms for the 100 in progress, then one appointment every 0.5 ms
    waits = [gate.admit(20_000 + i, addr(20_000 + i), now) for i in range(5000)]
    assert waits == sorted(waits)
    assert waits[0] == 1 and waits[-1] == 3  # 0.05 s + 5,000 x 0.5 ms, in whole seconds
    assert sum(1 for w in waits if w == 2) == 2000  # a second's worth per second


def test_a_low_measured_rate_does_not_stretch_the_appointments():
    """At a storm's start few logins have ended yet: the measured rate is low and says
    nothing of the hub's capacity.  Planning at it sent 2,000 workers away for up to 40 s."""
    gate: Admission[int] = Admission(limit=1000)
    for i in range(60):  # 60 welcomes in the first second
        gate.admit(i, addr(i), i / 60)
        gate.done(i, i / 60, welcomed=True)
    assert gate.rate(1.0) == FLOOR_RATE
    for i in range(1000):
        gate.admit(100 + i, addr(100 + i), 1.0)
    waits = [gate.admit(5000 + i, addr(5000 + i), 1.0) for i in range(2000)]
    assert max(waits) == 1 + math.ceil(2000 / FLOOR_RATE)


def test_appointments_are_bounded_and_old_welcomes_no_longer_count():
    gate: Admission[int] = Admission(limit=1)
    assert gate.admit(0, addr(0), 0.0) is None
    waits = [gate.admit(i, addr(i), 0.0) for i in range(1, 100_001)]
    assert min(waits) >= 1 and max(waits) == MAX_RETRY_AFTER
    gate = Admission(limit=10_000)
    for i in range(5000):
        gate.admit(i, addr(i), 0.0)
        gate.done(i, 0.0, welcomed=True)
    assert gate.rate(1.0) == 5000
    assert gate.rate(RATE_WINDOW + 1) == FLOOR_RATE


def storm(
    hub_rate: float, n: int = 10_000, limit: int | None = 1000
) -> tuple[int, int, float, float]:
    """n workers at once against a hub welcoming ``hub_rate`` a second: each refused worker
    returns at its appointment plus up to a second (as worker/backoff.py).  Returns (refused at
    first, refused again later, seconds until the last is welcomed, the longest wait of an
    admitted login for its welcome)."""
    rng = random.Random(7)
    gate: Admission[int] = Admission(limit=limit)
    queue: deque[tuple[int, float]] = deque()
    back: list[tuple[float, int]] = []
    for i in range(n):
        wait = gate.admit(i, addr(i), 0.0)
        if wait is None:
            queue.append((i, 0.0))
        else:
            heapq.heappush(back, (wait + rng.random(), i))
    first, again, t, longest = len(back), 0, 0.0, 0.0
    while queue or back:
        t += 1 / hub_rate
        if queue:
            i, since = queue.popleft()
            longest = max(longest, t - since)
            gate.done(i, t, welcomed=True)
        while back and back[0][0] <= t:
            _, i = heapq.heappop(back)
            wait = gate.admit(i, addr(i), t)
            if wait is None:
                queue.append((i, t))
            else:
                again += 1
                heapq.heappush(back, (t + wait + rng.random(), i))
    return first, again, t, longest


def test_a_storm_is_spread_over_about_the_time_its_work_takes():
    first, again, seconds, _ = storm(hub_rate=1000)
    assert first == 9000
    assert again == 0  # the planned rate held: everyone came back to room
    assert seconds < 10_000 / 1000 * 1.3
    # a hub three times slower than planned: sent back too soon, refused again (an HTTP
    # answer each), but the storm still takes about its work's time, not a multiple
    first, again, seconds, _ = storm(hub_rate=300)
    assert again > 0
    assert seconds < 10_000 / 300 * 1.15


def test_the_cap_follows_the_rate_the_hub_has_shown():
    gate: Admission[int] = Admission()
    assert gate.cap(0.0) == FLOOR_RATE * TARGET_WAIT  # nothing measured yet
    for i in range(1400):  # 700 welcomes a second for 2 s
        gate.admit(i, addr(i), i / 700)
        gate.done(i, i / 700, welcomed=True)
    now = 2.0
    assert abs(gate.cap(now) - 700 * TARGET_WAIT) < 20
    for i in range(MIN_SAMPLES):  # then 100 a second: a stalled hub
        gate.admit(10_000 + i, addr(10_000 + i), now + i / 100)
        gate.done(10_000 + i, now + i / 100, welcomed=True)
    assert gate.cap(now + MIN_SAMPLES / 100) == MIN_CAP


def test_with_the_measured_cap_a_storm_of_3000_is_not_refused_and_no_login_waits_too_long():
    first, _, _, longest = storm(hub_rate=700, n=3000, limit=None)
    assert first == 0
    # 10,000 on a hub of 700 welcomes a second: those let in are welcomed within the worker's
    # wait (15 s; without a cap the last would wait 14.3 s, at the edge of it)
    first, _, seconds, longest = storm(hub_rate=700, n=10_000, limit=None)
    assert first > 0 and longest < 15
    assert seconds < 10_000 / 700 * 1.2


def test_a_peer_with_many_addresses_cannot_fill_the_cap_with_silent_connections():
    """42 addresses each holding their whole allowance (8 waiting for a welcome, 16 upgrading)
    would be 1,008 logins in progress: the cap counts PER_ADDRESS of each."""
    gate: Admission[tuple[int, int]] = Admission(limit=1000)
    for a in range(42):
        for c in range(24):
            assert gate.admit((a, c), f"10.0.0.{a}", 0.0) is None
    assert gate.in_progress == 1008
    assert gate.admit(("real", 0), "10.9.9.9", 0.0) is None  # a real worker still gets in
    # it takes 500 addresses to fill a cap of 1,000 this way
    for a in range(42, 1000 // PER_ADDRESS):
        for c in range(PER_ADDRESS):
            gate.admit((a, c), f"10.1.{a // 250}.{a % 250}", 0.0)
    assert gate.admit(("real", 1), "10.9.9.8", 0.0) is not None
    # and the count comes back down exactly as logins end
    for a in range(42):
        for c in range(24):
            gate.done((a, c), 1.0, welcomed=False)
    assert gate.admit(("real", 2), "10.9.9.7", 1.0) is None


def test_one_address_asking_again_and_again_cannot_push_back_everyone_elses_appointment():
    gate: Admission[int] = Admission(limit=1)
    gate.admit(0, "busy-host", 0.0)
    first = gate.admit(1, "pest", 0.0)
    for i in range(120_000):  # the same peer, asking again and again
        assert gate.admit(2 + i, "pest", i / 1000) == max(1, math.ceil(first - i / 1000))
    # a real worker asking now gets about what it would have got without the pest
    assert gate.admit(10**6, "real", 120.0) <= 2
    # and however many addresses ask, nobody is given more than the longest wait
    waits = [gate.admit(10**7 + i, f"h{i}", 121.0) for i in range(200_000)]
    assert max(waits) == MAX_RETRY_AFTER
    assert gate._next_slot <= 121.0 + MAX_RETRY_AFTER + 1


def test_prune_releases_logins_whose_connection_closed_unnoticed():
    gate: Admission[str] = Admission(limit=10)
    for key in "abcd":
        gate.admit(key, f"host-{key}", 0.0)
    assert gate.prune(lambda k: k in "bd", 1.0) == 2
    assert gate.in_progress == 2 and not gate.prune_due(1.5) and gate.prune_due(2.0)
    assert gate.prune(lambda k: True, 2.0) == 2 and gate.in_progress == 0
