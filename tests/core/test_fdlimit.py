"""The console's open files limit: what it asks for, and when it warns (desktop/fdlimit.py)."""

from __future__ import annotations

import logging
import sys

import pytest

from desktop import fdlimit

INF = -1  # what resource.RLIM_INFINITY is on Linux and macOS


def test_the_soft_limit_goes_up_to_the_hard_limit():
    assert fdlimit.wanted(1024, 524_288, INF, "linux") == 524_288
    assert fdlimit.wanted(1024, 4096, INF, "linux") == 4096


def test_it_never_lowers_the_soft_limit():
    assert fdlimit.wanted(8192, 8192, INF, "linux") == 8192
    assert fdlimit.wanted(2_000_000, INF, INF, "linux") == 2_000_000


def test_an_unlimited_hard_limit_asks_for_a_number_the_os_accepts():
    assert fdlimit.wanted(1024, INF, INF, "linux") == 1_048_576
    # macOS refuses more than OPEN_MAX for the soft limit, whatever the hard limit says
    assert fdlimit.wanted(256, INF, INF, "darwin") == fdlimit.MACOS_OPEN_MAX
    assert fdlimit.wanted(256, 100_000, INF, "darwin") == fdlimit.MACOS_OPEN_MAX
    assert fdlimit.wanted(256, 5000, INF, "darwin") == 5000


def test_advice_names_the_numbers_when_the_limit_is_too_low():
    text = fdlimit.advice(1024, 10_000)
    assert text is not None
    assert "1024" in text and "10000 workers" in text and "at least 10256" in text
    assert "768" in text  # about this many workers fit


def test_no_advice_when_the_limit_suffices_or_is_unknown():
    assert fdlimit.advice(20_000, 10_000) is None
    assert fdlimit.advice(10_256, 10_000) is None
    assert fdlimit.advice(-1, 10_000) is None  # Windows / unlimited


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")
def test_raising_reaches_the_hard_limit_and_warns_only_when_short(caplog):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        with caplog.at_level(logging.WARNING, logger="desktop.fdlimit"):
            limit = fdlimit.check(10)
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert limit == now and now == fdlimit.wanted(256, hard, resource.RLIM_INFINITY)
        assert not caplog.records  # 10 workers fit
        with caplog.at_level(logging.WARNING, logger="desktop.fdlimit"):
            fdlimit.check(now + 1)
        assert f"may open only {now} files" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
