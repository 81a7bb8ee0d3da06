"""offline_row: an offline worker's row from its record, no older than what was shown (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from desktop.ui.rows import WorkerRow, offline_row

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
RECORD = WorkerRow("w", "old-host", "Windows", "1.0", False, True, T0, 0, 1, ())


def test_without_a_row_shown_before_the_record_is_the_row():
    assert offline_row(RECORD, None) is RECORD


def test_the_last_heartbeat_seen_online_outlives_an_older_record():
    shown = replace(RECORD, host="new-host", version="2.0", online=True, running=1)
    shown = replace(shown, last_heartbeat=T0 + timedelta(hours=3))
    row = offline_row(RECORD, shown)
    assert (row.host, row.version, row.last_heartbeat) == ("new-host", "2.0", shown.last_heartbeat)
    assert (row.online, row.running) == (False, 0)  # still the record's: offline, nothing running


def test_a_newer_record_wins_over_what_was_shown():
    """Another console recorded a later login since: the record is the fresher."""
    shown = replace(RECORD, host="new-host", last_heartbeat=T0 - timedelta(minutes=1))
    assert offline_row(RECORD, shown) is RECORD


def test_a_record_never_seen_takes_the_shown_heartbeat():
    never = replace(RECORD, host="", last_heartbeat=None)
    shown = replace(RECORD, host="h", last_heartbeat=T0)
    assert offline_row(never, shown).last_heartbeat == T0
    assert offline_row(never, shown).host == "h"
