"""Shared test setup: offscreen Qt, and one time unit that every wait scales by."""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Every timeout in the tests is a multiple of this, so a slow machine scales one number.
TIME_UNIT = float(os.environ.get("JOBTRIGGER_TEST_TIME_UNIT", "1.0"))


def timeout(units: float) -> float:
    return units * TIME_UNIT


def _hypothesis_profiles() -> None:
    """On CI, property tests explore a fixed set of examples: a red CI then always means a
    change broke something, never that this run happened to draw a new counterexample (run
    locally without CI set to keep exploring)."""
    try:
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()
