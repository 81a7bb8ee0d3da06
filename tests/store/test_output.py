from datetime import timedelta

import pytest

from desktop.store import queries as q
from desktop.store.records import OutputChunk
from tests.store.helpers import T0, job_spec


@pytest.fixture
def runs(db):
    job = q.create_job(job_spec())
    return [q.create_run(job.id, T0 + timedelta(minutes=i)) for i in range(2)]


def chunk(run, seq, text, stream="stdout"):
    return OutputChunk(run.id, seq, stream, text, T0)


def test_many_runs_in_one_call_in_seq_order(runs):
    a, b = runs
    acked = q.append_output(
        [chunk(a, 2, "two\n"), chunk(b, 1, "b1\n", "stderr"), chunk(a, 1, "one\n")]
    )
    assert acked == {a.id: 2, b.id: 1}
    assert [(c.seq, c.text) for c in q.read_output(a.id)] == [(1, "one\n"), (2, "two\n")]
    assert q.read_output(b.id)[0].stream == "stderr"
    assert q.read_output(a.id, after_seq=1) == [OutputChunk(a.id, 2, "stdout", "two\n", T0)]
    assert len(q.read_output(a.id, limit=1)) == 1
    assert q.get_run(a.id).output_bytes == len("one\ntwo\n")


def test_replays_are_dropped(runs):
    a, _ = runs
    q.append_output([chunk(a, 1, "one\n"), chunk(a, 2, "two\n")])
    # a worker reconnects and replays everything it had not seen acked, plus one new chunk
    acked = q.append_output([chunk(a, 1, "one\n"), chunk(a, 2, "two\n"), chunk(a, 3, "three\n")])
    assert acked == {a.id: 3}
    assert [c.text for c in q.read_output(a.id)] == ["one\n", "two\n", "three\n"]
    # duplicates inside one batch as well
    assert q.append_output([chunk(a, 4, "x"), chunk(a, 4, "x")]) == {a.id: 4}
    assert len(q.read_output(a.id)) == 4


def test_seq_taken_by_started_message_is_respected(runs):
    a, _ = runs
    q.transition_run(a.id, "running", seq=1)
    assert q.append_output([chunk(a, 1, "late replay"), chunk(a, 2, "real")]) == {a.id: 2}
    assert [c.text for c in q.read_output(a.id)] == ["real"]


def test_unknown_run_is_skipped_not_fatal(runs):
    a, _ = runs
    acked = q.append_output([chunk(a, 1, "ok"), OutputChunk(987654, 1, "stdout", "lost")])
    assert acked == {a.id: 1}


def test_output_cap_stores_one_marker_and_keeps_acking(runs):
    a, b = runs
    q.set_setting("output_cap_bytes", "1024")
    line = "x" * 99 + "\n"  # 100 bytes
    acked = q.append_output([chunk(a, seq, line) for seq in range(1, 16)])
    assert acked == {a.id: 15}
    stored = q.read_output(a.id)
    assert len(stored) == 11  # ten lines fit, then the marker
    assert stored[-1].text.startswith("[output truncated:")
    assert "1,024" in stored[-1].text
    run = q.get_run(a.id)
    assert run.output_truncated and run.output_bytes == 1000 and run.last_seq == 15
    # later batches store nothing more but still advance the seq
    assert q.append_output([chunk(a, 16, line)]) == {a.id: 16}
    assert len(q.read_output(a.id)) == 11
    # other runs are unaffected
    q.append_output([chunk(b, 1, line)])
    assert not q.get_run(b.id).output_truncated


def test_cap_counts_utf8_bytes(runs):
    a, _ = runs
    q.set_setting("output_cap_bytes", "1024")
    q.append_output([chunk(a, 1, "é" * 600)])  # 1200 bytes in UTF-8, 600 characters
    assert q.get_run(a.id).output_truncated
