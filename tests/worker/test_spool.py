"""The durable outbox without processes or sockets: seq, ack, replay, restart, cap, damage."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from worker import spool as spool_mod
from worker.spool import Spool


def out(run_id: int, text: str, stream: str = "stdout") -> dict:
    return {"type": "output", "v": 1, "run_id": run_id, "stream": stream, "text": text}


def started(run_id: int) -> dict:
    return {"type": "started", "v": 1, "run_id": run_id, "pid": 1, "at": 1.0}


def finished(run_id: int, outcome: str = "succeeded") -> dict:
    return {"type": "finished", "v": 1, "run_id": run_id, "outcome": outcome, "exit_code": 0,
            "at": 2.0}  # fmt: skip


def texts(msgs: list[dict]) -> list[str]:
    return [m.get("text", m["type"]) for m in msgs]


def test_seqs_are_assigned_in_order_and_written_before_returning(tmp_path):
    sp = Spool(tmp_path)
    written = sp.append(1, [started(1), out(1, "a\n"), out(1, "b\n")])
    assert [m["seq"] for m in written] == [1, 2, 3]
    lines = (tmp_path / "run-1").glob("*.jsonl")
    on_disk = [json.loads(line) for f in lines for line in f.read_text().splitlines()]
    assert on_disk == written


def test_pending_respects_acks_and_sent_marks(tmp_path):
    sp = Spool(tmp_path)
    sp.append(1, [started(1), out(1, "a\n"), out(1, "b\n")])
    assert texts(sp.pending(1, 0)) == ["started", "a\n", "b\n"]
    assert texts(sp.pending(1, 2)) == ["b\n"]
    sp.ack(1, 2)
    assert texts(sp.pending(1, 0)) == ["b\n"]  # a reconnect replays from the ack
    assert sp.ack(1, 1) is False  # an older ack changes nothing
    assert texts(sp.pending(1, 0)) == ["b\n"]


def test_run_folder_goes_only_when_finished_is_acked(tmp_path):
    sp = Spool(tmp_path)
    sp.append(3, [started(3), out(3, "x\n")])
    assert sp.ack(3, 2) is False
    assert (tmp_path / "run-3").exists()
    sp.append(3, [finished(3)])
    assert sp.ack(3, 3) is True
    assert not (tmp_path / "run-3").exists()
    assert sp.pending(3, 0) == []


def test_finished_is_final(tmp_path):
    sp = Spool(tmp_path)
    sp.append(4, [started(4), finished(4)])
    with pytest.raises(RuntimeError, match="already has its finished"):
        sp.append(4, [out(4, "late\n")])


def test_restart_replays_unacked_and_knows_unfinished_runs(tmp_path):
    sp = Spool(tmp_path)
    sp.append(1, [started(1), out(1, "a\n"), finished(1)])
    sp.append(2, [started(2), out(2, "half\n")])
    sp.ack(1, 1)
    again = Spool(tmp_path)
    assert sorted(again.runs) == [1, 2]
    assert again.unfinished() == [2]
    # the ack was not persisted: replay may repeat seq 1, which the hub drops by (run, seq)
    assert [m["seq"] for m in again.pending(1, 0)] == [1, 2, 3]
    assert again.append(2, [finished(2, "failed")])[0]["seq"] == 3


def test_replay_reads_from_disk_beyond_the_memory_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "TAIL_MESSAGES", 5)
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 200)
    sp = Spool(tmp_path)
    for i in range(50):
        sp.append(1, [out(1, f"{i}\n")])
    assert len(list((tmp_path / "run-1").glob("*.jsonl"))) > 3
    assert texts(sp.pending(1, 0, limit=1000)) == [f"{i}\n" for i in range(50)]
    assert [m["seq"] for m in sp.pending(1, 10, limit=3)] == [11, 12, 13]
    sp.ack(1, 40)  # acked segments are deleted, the open one stays
    assert texts(sp.pending(1, 0)) == [f"{i}\n" for i in range(40, 50)]
    assert Spool(tmp_path).pending(1, 40) == sp.pending(1, 0)


def test_torn_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    sp = Spool(tmp_path)
    sp.append(1, [started(1), out(1, "a\n")])
    seg = next((tmp_path / "run-1").glob("*.jsonl"))
    with open(seg, "ab") as f:
        f.write(b'{"type":"output","v":1,"run_id":1,"seq":3,"str')
    with caplog.at_level(logging.WARNING):
        again = Spool(tmp_path)
    assert "damaged line" in caplog.text
    assert texts(again.pending(1, 0)) == ["started", "a\n"]
    assert again.unfinished() == [1]


def test_cap_drops_output_with_notice_but_never_the_result(tmp_path, caplog):
    sp = Spool(tmp_path, max_bytes=2000)
    sp.append(1, [started(1)])
    with caplog.at_level(logging.WARNING):
        for i in range(100):
            sp.append(1, [out(1, f"{i:03d} " + "x" * 50 + "\n")])
    assert "spool for run 1 is full" in caplog.text.lower()
    assert caplog.text.count("is full") == 1  # warned once, not per batch
    kept = sp.pending(1, 0, limit=1000)
    size = sum(f.stat().st_size for f in (tmp_path / "run-1").glob("*.jsonl"))
    assert size <= 2000
    last = sp.append(1, [finished(1)])
    notice, result = last[-2], last[-1]
    assert result["type"] == "finished"
    dropped = 100 - (len(kept) - 1)
    assert notice["stream"] == "stderr"
    assert f"{dropped * 55} bytes of output were dropped" in notice["text"]


def test_cap_resumes_after_acks_free_room(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 300)
    sp = Spool(tmp_path, max_bytes=2000)
    seqs = [m["seq"] for i in range(60) for m in sp.append(1, [out(1, "y" * 60 + "\n")])]
    sp.ack(1, seqs[-1])  # the hub caught up
    resumed = sp.append(1, [out(1, "after\n")])
    assert "were dropped" in resumed[0]["text"]
    assert resumed[1]["text"] == "after\n"


def test_invalid_message_is_refused_before_it_reaches_disk(tmp_path):
    sp = Spool(tmp_path)
    with pytest.raises(ValueError):
        sp.append(1, [out(1, "x", stream="stdin")])
    assert not list(Path(tmp_path).glob("run-1/*.jsonl"))


def test_deferred_sync_sends_nothing_before_it_is_on_disk(tmp_path):
    sp = Spool(tmp_path, deferred_sync=True)
    sp.append(1, [started(1)])
    sp.append(1, [out(1, "a\n")])
    assert sp.pending(1, 0) == []  # written, not yet synced: not for sending
    paths, seqs = sp.take_unsynced()
    assert seqs == {1: 2} and len(paths) == 1
    sp.append(1, [out(1, "b\n")])  # written while the sync runs: goes with the next one
    Spool.sync_files(paths)
    sp.mark_synced(seqs)
    assert [m["seq"] for m in sp.pending(1, 0)] == [1, 2]
    sp.sync_now()
    assert [m["seq"] for m in sp.pending(1, 0)] == [1, 2, 3]
    # a restart takes everything on disk as sendable
    again = Spool(tmp_path, deferred_sync=True)
    assert [m["seq"] for m in again.pending(1, 0)] == [1, 2, 3]


def test_deferred_sync_failure_is_retried_with_nothing_lost(tmp_path):
    sp = Spool(tmp_path, deferred_sync=True)
    sp.append(1, [started(1)])
    paths, seqs = sp.take_unsynced()
    sp.append(2, [started(2)])
    sp.retry_unsynced(paths, seqs)  # the sync failed: both runs wait for the next one
    paths, seqs = sp.take_unsynced()
    assert seqs == {1: 1, 2: 1} and len(paths) == 2
    Spool.sync_files(paths)
    sp.mark_synced(seqs)
    assert sp.pending(1, 0) and sp.pending(2, 0)


def test_a_write_that_hits_a_full_disk_leaves_the_spool_as_it_was(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE, in a child process so this one keeps writing): the failed
    batch leaves no half line behind and no seq used; once there is room it is written whole."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from worker.spool import Spool

def out(i, size):
    return {{"type": "output", "v": 1, "run_id": 1, "stream": "stdout", "text": str(i) * size}}

spool = Spool(Path({str(tmp_path)!r}))
spool.append(1, [out(1, 1000)])
seg = next(Path({str(tmp_path)!r}).rglob("*.jsonl"))
before = seg.read_bytes()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 500, hard))
try:
    spool.append(1, [out(2, 300), out(3, 5000)])
except OSError as exc:
    print("refused", exc.errno)
assert seg.read_bytes() == before, "a torn batch stayed on disk"
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
written = spool.append(1, [out(2, 300), out(3, 5000)])
print("then", [m["seq"] for m in written])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["refused 27", "then [2, 3]"]  # EFBIG
    again = Spool(tmp_path)
    assert [m["seq"] for m in again.pending(1, 0)] == [1, 2, 3]
