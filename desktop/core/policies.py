"""Small pure policy helpers for the scheduler: retry backoff and whether to retry at all."""

from __future__ import annotations

import math

from desktop.core import runs

# Outcomes worth another attempt: the script failed, ran too long, or its worker vanished.
# A cancelled run was stopped on purpose and a succeeded one is done.
RETRYABLE = frozenset({runs.FAILED, runs.TIMED_OUT, runs.LOST})


def retry_delay(attempt: int, base_seconds: float, factor: float, max_seconds: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    ``base_seconds * factor ** (attempt - 1)``, never more than ``max_seconds``.  A factor of 1
    gives a fixed delay; large attempts do not overflow, they just stay at the maximum.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be a whole number >= 1 (1 = first retry), got {attempt!r}")
    for name, value in (("base_seconds", base_seconds), ("max_seconds", max_seconds)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not math.isfinite(factor) or factor < 1:
        raise ValueError(f"factor must be a finite number >= 1, got {factor!r}")
    if base_seconds == 0 or max_seconds <= base_seconds or factor == 1:
        return float(min(base_seconds, max_seconds))
    # Compare exponents in log space so attempt 10_000 with factor 2 cannot overflow a float.
    if (attempt - 1) * math.log(factor) >= math.log(max_seconds) - math.log(base_seconds):
        return float(max_seconds)
    try:
        delay = base_seconds * factor ** (attempt - 1)
    except OverflowError:  # a tiny base with a huge power: go through logs instead
        delay = math.exp(math.log(base_seconds) + (attempt - 1) * math.log(factor))
    return float(min(max_seconds, delay))


def jittered(delay: float, fraction: float, unit_random: float) -> float:
    """``delay`` spread by up to ``±fraction`` of itself; ``unit_random`` in [0, 1) is passed
    in (the caller owns the random source, so this stays testable)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction!r}")
    if not 0 <= unit_random < 1:
        raise ValueError(f"unit_random must be in [0, 1), got {unit_random!r}")
    return max(0.0, delay * (1 + fraction * (2 * unit_random - 1)))


def should_retry(outcome: str, attempt: int, max_retries: int) -> bool:
    """Whether a run that ended with ``outcome`` gets another attempt.

    ``attempt`` is the run's attempt number as stored (1 = the scheduled run, 2 = the first
    retry, ...), so up to ``max_retries + 1`` attempts happen.  The delay before the next one is
    ``retry_delay(attempt, ...)``: retry number ``attempt`` follows attempt ``attempt``.
    """
    return outcome in RETRYABLE and 1 <= attempt <= max_retries
