"""The durable outbox: every started/output/finished message is on disk before it is sent.

Layout: one folder per run (``run-<id>/``) holding JSON-lines segment files named by their first
seq.  A run's messages get seq 1, 2, 3... here, so seq order is file order.  Appends come in
batches (one per output flush), each batch ends with flush + fsync: that is the durability point
and the only fsync, so throughput scales with the batch size, not the line count.

With ``deferred_sync`` (the worker) an append only writes; the fsync is a group commit done off
the event loop (``take_unsynced`` -> ``sync_files`` in a thread -> ``mark_synced``), and
``pending`` hands out only messages already synced.  The guarantee is the same, on disk before
sent, but one fsync serves every run that wrote meanwhile and the loop never waits for the disk
(the fsyncs were a third of a busy worker's time).

The hub acks cumulatively per run.  Whole segments whose last seq is acked are deleted; when the
``finished`` message is acked the run's folder goes.  Nothing else is ever deleted, so after a
worker restart every unacked message is replayed (plus possibly a few acked ones from a partly
acked segment: the hub drops duplicates by (run, seq)).

Cap: each run may keep at most ``max_bytes`` on disk.  Past it, *output* is dropped (counted, and
a warning is logged once); ``started`` and ``finished`` are always written.  As soon as acks free
room, or when the run finishes, one stderr line records how many bytes were dropped, so the lost
range is visible in the console instead of silently missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker import private
from worker.protocol import PROTOCOL_VERSION, encode_dict, validate

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 * 1024 * 1024
# Recent messages kept in memory so live sending never re-reads files; older ones come from disk.
TAIL_MESSAGES = 2000
SPOOLED_TYPES = ("started", "output", "finished")


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int
    size: int


@dataclass
class RunSpool:
    run_id: int
    folder: Path
    segments: list[_Segment] = field(default_factory=list)
    last_seq: int = 0
    acked: int = 0
    finished: bool = False
    synced: int = 0  # highest seq known to be on disk (fsynced): what may be sent
    dropped_bytes: int = 0
    tail: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TAIL_MESSAGES))

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)


class Spool:
    def __init__(
        self, folder: Path, max_bytes: int = 256 * 1024 * 1024, *, deferred_sync: bool = False
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.deferred_sync = deferred_sync
        self.runs: dict[int, RunSpool] = {}
        self._unsynced_files: dict[Path, None] = {}  # written since the last sync, in order
        self._unsynced_seqs: dict[int, int] = {}  # run id -> highest seq written, not synced
        private.make_dir(folder)  # every job's output: the worker's account only
        self._load()

    # --- startup ---------------------------------------------------------------------------------

    def _load(self) -> None:
        for run_dir in sorted(self.folder.glob("run-*")):
            try:
                run_id = int(run_dir.name[4:])
            except ValueError:
                continue
            run = RunSpool(run_id, run_dir)
            for seg_path in sorted(run_dir.glob("*.jsonl")):
                seqs = [m["seq"] for m in _read_segment(seg_path)]
                if not seqs:
                    seg_path.unlink(missing_ok=True)
                    continue
                run.segments.append(_Segment(seg_path, seqs[0], seqs[-1], seg_path.stat().st_size))
                run.last_seq = seqs[-1]
            if not run.segments:
                shutil.rmtree(run_dir, ignore_errors=True)
                continue
            last = next(_read_segment(run.segments[-1].path, from_end=True), None)
            run.finished = bool(last and last.get("type") == "finished")
            run.synced = run.last_seq  # what a previous process left is sent again regardless
            self.runs[run_id] = run

    def unfinished(self) -> list[int]:
        """Runs whose process was lost with a previous worker (no ``finished`` on disk)."""
        return [r.run_id for r in self.runs.values() if not r.finished]

    # --- writing ---------------------------------------------------------------------------------

    def has(self, run_id: int) -> bool:
        return run_id in self.runs

    def append(self, run_id: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Give MESSAGES (protocol dicts without seq) the next seqs, write them durably, return
        what was written (output over the cap is left out, a drop notice may be added).
        All or nothing: an OSError (disk full) leaves the spool as it was, to retry later."""
        run = self.runs.get(run_id)
        if run is None:
            folder = self.folder / f"run-{run_id}"
            private.make_dir(folder)
            run = self.runs[run_id] = RunSpool(run_id, folder)
        if run.finished:
            raise RuntimeError(f"run {run_id} already has its finished message spooled")
        dropped_before = run.dropped_bytes  # restored if the write fails: all or nothing
        written: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        size = run.size

        def emit(msg: dict[str, Any]) -> None:
            nonlocal size
            msg = {**msg, "seq": run.last_seq + len(written) + 1}
            # Our own bug if this raises; better here than replaying a poison message forever.
            validate(msg)
            data = (encode_dict(msg) + "\n").encode("utf-8")
            written.append(msg)
            chunks.append(data)
            size += len(data)

        for msg in messages:
            # Resume below half the cap, so one freed segment does not flap drop/notice/drop.
            if run.dropped_bytes and (msg["type"] == "finished" or size < self.max_bytes // 2):
                emit(self._drop_notice(run))
            if msg["type"] == "output":
                need = len(msg["text"].encode("utf-8")) + 200
                if run.dropped_bytes or size + need > self.max_bytes:
                    if not run.dropped_bytes:
                        log.warning(
                            "Spool for run %s is full (%d MB, spool_max_mb): dropping its output "
                            "until the console confirms what it has; the result will still be "
                            "sent.",
                            run_id,
                            self.max_bytes // (1024 * 1024),
                        )
                    run.dropped_bytes += len(msg["text"].encode("utf-8"))
                    continue
            emit(msg)
        if not written:
            return []
        try:
            path = self._write(run, written[0]["seq"], written[-1]["seq"], b"".join(chunks))
        except OSError:
            run.dropped_bytes = dropped_before
            raise
        run.last_seq = written[-1]["seq"]
        if self.deferred_sync:
            self._unsynced_files[path] = None
            self._unsynced_seqs[run_id] = run.last_seq
        else:
            run.synced = run.last_seq
        run.tail.extend(written)
        run.finished = written[-1]["type"] == "finished"
        return written

    @staticmethod
    def _drop_notice(run: RunSpool) -> dict[str, Any]:
        text = (
            f"[worker] {run.dropped_bytes} bytes of output were dropped here because the "
            "worker's spool was full while the console was unreachable (spool_max_mb)\n"
        )
        run.dropped_bytes = 0
        return {
            "type": "output",
            "v": PROTOCOL_VERSION,
            "run_id": run.run_id,
            "stream": "stderr",
            "text": text,
        }

    def _write(self, run: RunSpool, first: int, last: int, data: bytes) -> Path:
        """Append DATA to the run's open segment (or a new one).  On failure (disk full, a
        file size limit) nothing of it stays behind: the file is cut back to what it held, so
        the batch can be written again whole later, and the error is raised."""
        seg = run.segments[-1] if run.segments else None
        new = seg is None or seg.size >= SEGMENT_BYTES
        if new:
            seg = _Segment(run.folder / f"{first:012d}.jsonl", first, first - 1, 0)
        assert seg is not None
        try:
            # Only a new segment needs its mode set: an append is the hot path.
            with open(seg.path, "ab", opener=private.opener if new else None) as f:
                f.write(data)
                if not self.deferred_sync:
                    # One flush + fsync per batch: the durability point, before anything is sent.
                    f.flush()
                    os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):  # cutting a file back needs no space
                if new:
                    seg.path.unlink(missing_ok=True)
                else:
                    os.truncate(seg.path, seg.size)
            raise
        if new:
            run.segments.append(seg)
        seg.size += len(data)
        seg.last_seq = last
        return seg.path

    # --- group commit (deferred_sync) -------------------------------------------------------------

    def take_unsynced(self) -> tuple[list[Path], dict[int, int]]:
        """The files written since the last call and each run's highest seq in them."""
        files, self._unsynced_files = list(self._unsynced_files), {}
        seqs, self._unsynced_seqs = self._unsynced_seqs, {}
        return files, seqs

    @staticmethod
    def sync_files(paths: list[Path]) -> None:
        """fsync each file (any thread).  A file deleted meanwhile needs nothing."""
        for path in paths:
            try:
                fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def mark_synced(self, seqs: dict[int, int]) -> None:
        for run_id, seq in seqs.items():
            run = self.runs.get(run_id)
            if run is not None and seq > run.synced:
                run.synced = seq

    def retry_unsynced(self, paths: list[Path], seqs: dict[int, int]) -> None:
        """Put back what a failed sync held, ahead of anything written since."""
        self._unsynced_files = {**dict.fromkeys(paths), **self._unsynced_files}
        for run_id, seq in seqs.items():
            self._unsynced_seqs[run_id] = max(seq, self._unsynced_seqs.get(run_id, 0))

    def sync_now(self) -> None:
        """The group commit done at once, on this thread (no loop yet, or a last flush)."""
        paths, seqs = self.take_unsynced()
        self.sync_files(paths)
        self.mark_synced(seqs)

    # --- acks and replay -------------------------------------------------------------------------

    def ack(self, run_id: int, seq: int) -> bool:
        """Record a cumulative ack; return True when the run is now fully delivered and gone."""
        run = self.runs.get(run_id)
        if run is None or seq <= run.acked:
            return False
        run.acked = min(seq, run.last_seq)
        if run.finished and run.acked >= run.last_seq:
            _remove_run_folder(run)
            del self.runs[run_id]
            return True
        keep = []
        for i, seg in enumerate(run.segments):
            is_open = i == len(run.segments) - 1
            if seg.last_seq <= run.acked and not is_open:
                seg.path.unlink(missing_ok=True)
            else:
                keep.append(seg)
        run.segments = keep
        return False

    def pending(self, run_id: int, after_seq: int, limit: int = 100) -> list[dict[str, Any]]:
        """Up to LIMIT spooled messages of RUN_ID with seq > max(AFTER_SEQ, acked), in order."""
        run = self.runs.get(run_id)
        if run is None:
            return []
        after = max(after_seq, run.acked)
        upto = run.synced  # never anything that is not on disk yet
        if after >= upto:
            return []
        if run.tail and run.tail[0]["seq"] <= after + 1:
            return [m for m in run.tail if after < m["seq"] <= upto][:limit]
        out: list[dict[str, Any]] = []
        for seg in run.segments:
            if seg.last_seq <= after:
                continue
            for msg in _read_segment(seg.path):
                if after < msg["seq"] <= upto:
                    out.append(msg)
                    if len(out) >= limit:
                        return out
        return out


def _remove_run_folder(run: RunSpool) -> None:
    """The run's own segment files, then its folder: rmtree's safe walk cost a seventh of a busy
    worker's time (py-spy, 8 slots of no-op runs).  Anything unexpected in it: rmtree."""
    for seg in run.segments:
        with contextlib.suppress(OSError):  # Windows: a scanner may hold it a moment
            seg.path.unlink(missing_ok=True)
    try:
        run.folder.rmdir()
    except OSError:
        shutil.rmtree(run.folder, ignore_errors=True)


def _read_segment(path: Path, from_end: bool = False) -> Iterator[dict[str, Any]]:
    """Messages of one segment; a torn last line (crash mid-write) is skipped with a warning."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        log.warning("Cannot read spool file %s: %s", path, exc)
        return
    lines = raw.split(b"\n")
    if from_end:
        lines.reverse()
    for line in lines:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            if isinstance(msg, dict) and isinstance(msg.get("seq"), int):
                yield msg
                continue
        except ValueError:
            pass
        log.warning("Skipping a damaged line in spool file %s (a crash while writing)", path)
