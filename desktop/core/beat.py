"""A shared grid for the console's idle timers, so that they wake it together.

An idle console has a few periodic looks of its own (the scheduler's wall-clock check, the
alive mark).  Each one timed from its own start fires at its own phase: one wake-up of the
process each.  Timed to the same grid on the loop's monotonic clock (multiples of the period),
they fall due at the same instant and asyncio runs them in one turn of the loop: one wake-up.
Every timer with a period of P fires on the multiples of P, so any two of 15 s meet, and a 5 s
one meets a 15 s one every third time.
"""

from __future__ import annotations

import asyncio
import math


def next_beat(now: float, period: float) -> float:
    """The first multiple of PERIOD strictly after NOW (the loop's clock, seconds)."""
    beat = math.floor(now / period) * period
    while beat <= now:  # floor of a float quotient may land a period short, or on NOW itself
        beat += period
    return beat


def last_beat_within(now: float, span: float, period: float) -> float:
    """The last multiple of PERIOD at most SPAN after NOW, for a look due within SPAN that
    should share a beat's wake-up (it comes between SPAN - PERIOD and SPAN after NOW); NOW +
    SPAN when SPAN is shorter than a period (no beat need fall within it)."""
    if span < period:
        return now + span
    return next_beat(now + span - period, period)


async def wait_until(event: asyncio.Event, when: float) -> bool:
    """Wait until EVENT is set or the loop's clock reaches WHEN; return whether it was set.

    The timer is ``call_at(when)`` itself, not ``when - now`` handed to a timeout: two waits on
    the same beat then hold the same instant to the bit and are run in the same loop turn.
    Built on ``asyncio.wait``, not ``wait_for``: with a timeout, wait_for (3.10, 3.11) loses a
    cancel that comes while the event is being set."""
    loop = asyncio.get_running_loop()
    waiter = asyncio.ensure_future(event.wait())
    timer = loop.call_at(when, waiter.cancel)
    try:
        await asyncio.wait({waiter})
    finally:
        timer.cancel()
        waiter.cancel()
    return event.is_set()
