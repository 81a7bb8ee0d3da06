"""Shared test setup: offscreen Qt, and one time unit that every wait scales by."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never the real user's keyring, here or in any subprocess a test starts: the secrets key goes
# to a file beside each test's database (tests/store/test_secrets_store.py tests the keyring
# path with an in-memory keyring).
os.environ["JOBTRIGGER_SECRET_KEY_BACKEND"] = "file"
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

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


@pytest.fixture(params=["system", "tzdata"])
def zone_source(request):
    """Run a test once with the host's zone files and once through the `tzdata` package, which is
    how every Windows host resolves zones (and where a folder name raises IsADirectoryError)."""
    import zoneinfo

    saved = list(zoneinfo.TZPATH)
    if request.param == "tzdata":
        zoneinfo.reset_tzpath([])
    zoneinfo.ZoneInfo.clear_cache()
    yield request.param
    zoneinfo.reset_tzpath(saved)
    zoneinfo.ZoneInfo.clear_cache()
