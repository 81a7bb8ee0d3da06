"""Output batching rules, without processes: whole lines, 64 KiB, stream order."""

from __future__ import annotations

import pytest

from worker.runner import FLUSH_BYTES, _Batcher


def make() -> tuple[_Batcher, list[list[dict]]]:
    batches: list[list[dict]] = []
    return _Batcher(9, batches.append), batches


def pairs(batches: list[list[dict]]) -> list[tuple[str, str]]:
    return [(m["stream"], m["text"]) for batch in batches for m in batch]


@pytest.mark.asyncio
async def test_partial_lines_wait_for_their_newline():
    b, batches = make()
    b.add("stdout", "hel")
    b.flush()
    assert batches == []
    b.add("stdout", "lo\nwor")
    b.flush()
    assert pairs(batches) == [("stdout", "hello\n")]
    b.end("stdout")
    b.flush()
    assert pairs(batches)[-1] == ("stdout", "wor")


@pytest.mark.asyncio
async def test_streams_keep_arrival_order_and_merge_neighbours():
    b, batches = make()
    b.add("stdout", "a\n")
    b.add("stdout", "b\n")
    b.add("stderr", "oops\n")
    b.add("stdout", "c\n")
    b.flush()
    assert len(batches) == 1
    assert pairs(batches) == [("stdout", "a\nb\n"), ("stderr", "oops\n"), ("stdout", "c\n")]
    assert all(m["run_id"] == 9 and m["type"] == "output" for m in batches[0])


@pytest.mark.asyncio
async def test_64_kib_flushes_at_once_and_huge_lines_are_split():
    b, batches = make()
    b.add("stdout", "x" * 100 + "\n")
    assert batches == []  # below the size limit: waits for the 50 ms window
    b.add("stdout", "y" * FLUSH_BYTES)  # one line with no newline yet, over the limit
    assert pairs(batches) == [("stdout", "x" * 100 + "\n" + "y" * FLUSH_BYTES)]
