"""Output batching rules, without processes: whole lines, 64 KiB, stream order."""

from __future__ import annotations

import pytest

from worker.runner import FLUSH_BYTES, OutputDecoder, _Batcher


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


def test_decoder_keeps_split_utf8_characters_whole_and_replaces_bad_bytes():
    d = OutputDecoder()
    data = "naïve €\n".encode()
    assert "".join(d.decode(data[i : i + 1]) for i in range(len(data))) == "naïve €\n"
    assert d.decode(b"bad \xff byte\n") == "bad \ufffd byte\n"


def test_decoder_falls_back_to_the_console_code_page():
    d = OutputDecoder("cp850")
    assert d.decode("Größe\n".encode()) == "Größe\n"  # UTF-8 still wins when valid
    assert d.decode("Größe\n".encode("cp850")) == "Größe\n"
    euro = "€".encode()
    assert d.decode(euro[:2]) == ""  # incomplete: held back
    assert d.decode(euro[2:] + b"\n") == "€\n"
