"""A bounded, durable, append-only spool of Pub/Sub publish requests.

When Pub/Sub cannot take a request's events, the collector writes the serialized
`PublishRequest`s here and fsyncs before it answers 2xx; a background task replays them in
order once Pub/Sub is reachable (see `collector.delivery`).

Layout of the spool directory::

    LOCK                      flock held by the one collector process that owns the spool
    position.json             {"segment": n, "offset": k}: the next record to replay
    segment-000000000001.log  frames, appended; a segment is deleted once fully replayed
    quarantine/               records set aside (refused by Pub/Sub, damaged on disk, torn
                              writes), kept for an operator; they count towards the limit

Frames and how damage is found are described in `collector.spool_format`. What the spool
promises, fault by fault:

- A write that fails part-way (ENOSPC, EIO, a failed fsync) raises SpoolError for every
  group of that call (none is acknowledged), and the bytes it wrote are cut off the segment.
  If even that fails, the segment is retired at its last good frame and the next frames go
  to a new segment, so a partial frame can never sit in front of an acknowledged one.
- A frame damaged on disk costs only itself: reading resynchronises at the next intact frame
  and keeps every frame after it. The damaged bytes become a record of their own (`damage`
  set, no events), which replay moves to the quarantine folder.
- A crash mid-append leaves a torn tail (never acknowledged); after a restart new frames go to
  a new segment, and the tail is set aside like any damage.
- A frame larger than one Pub/Sub publish request (10 MB) is refused before anything is
  written (the collector's own limits keep requests far below).

Delivery is at-least-once: the position is persisted (fsync) after a replayed record was
acknowledged by Pub/Sub, so a crash between the two re-publishes that record once more.
Consumers deduplicate by `messageId`.

One class of ~500 lines on purpose: segment sizes, record ends, the replay position and the
pending counters are one invariant kept under one lock by every method; the frame format and
resynchronisation live in `collector.spool_format`.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from collector.spool_format import (
    FrameTooLarge,
    damaged_region,
    encode,
    frame_at,
    header_time,
)
from platform_core.durable import fsync_dir

log = logging.getLogger("collector.spool")

QUARANTINE = "quarantine"


class SpoolError(RuntimeError):
    """The spool cannot be used (directory locked by another process, disk error)."""


class SegmentFile(Protocol):
    """What the spool needs of a segment opened for appending (io.FileIO; tests inject one
    that fails like a full or broken disk)."""

    def write(self, data: bytes | memoryview, /) -> int | None: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def truncate(self, size: int | None = None, /) -> int: ...

    def close(self) -> None: ...


def open_for_append(path: Path) -> SegmentFile:
    return io.FileIO(path, "ab")


@dataclass(frozen=True)
class Record:
    segment: int
    offset: int  # where the frame starts
    end: int  # where the next frame starts
    payload: bytes  # the PublishRequest; for damage, the damaged bytes
    written_at_ms: int
    events: int
    damage: str | None = None  # "corrupt" or "torn": not a frame; quarantine it

    @property
    def corrupt(self) -> bool:
        return self.damage is not None


def _segment_name(number: int) -> str:
    return f"segment-{number:012d}.log"


def segment_bytes_for(max_bytes: int) -> int:
    """Segment size: small enough that replayed bytes are freed promptly."""
    return max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 16))


class Spool:
    """Thread-safe; every method does blocking file I/O (call it from a worker thread)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int | None = None,
        opener: Callable[[Path], SegmentFile] = open_for_append,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or segment_bytes_for(max_bytes)
        self._opener = opener
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._sizes: dict[int, int] = {}  # segment number -> bytes on disk
        self._ends: dict[int, int] = {}  # closed segments: where their records end
        self._active: int | None = None
        self._active_file: SegmentFile | None = None
        self._read_fds: dict[int, int] = {}
        self._position = (1, 0)
        self._next_segment = 1
        self.pending_records = 0
        self.pending_events = 0
        self.pending_bytes = 0
        self.quarantine_bytes = 0
        self._refused = False
        self._opened = False

    # --- lifecycle ----------------------------------------------------------------------

    def open(self) -> Spool:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(
                f"spool {self.directory} is in use by another collector process; "
                "give each collector process its own COLLECTOR_SPOOL_DIR"
            ) from None
        self._lock_fd = fd
        self._position = self._load_position()
        numbers = sorted(
            int(p.name[8:20])
            for p in self.directory.glob("segment-*.log")
            if p.name[8:20].isdigit()
        )
        for number in numbers:
            path = self.directory / _segment_name(number)
            if number < self._position[0]:
                path.unlink()  # fully replayed before a crash, not yet deleted
                continue
            self._sizes[number] = path.stat().st_size
        self._next_segment = max([self._position[0], *self._sizes]) + 1
        # count what is still to replay; every segment is closed (new frames go to new ones)
        for number, size in self._sizes.items():
            self._ends[number] = size
            start = self._position[1] if number == self._position[0] else 0
            records, events, damaged = self._scan(number, start, size)
            self.pending_records += records
            self.pending_events += events
            self.pending_bytes += size - start
            if damaged:
                log.warning(
                    "spool segment has damaged regions; they will be moved to the quarantine "
                    "folder and every intact frame after them replayed",
                    extra={"segment": _segment_name(number), "damaged": damaged},
                )
        self.quarantine_bytes = self._measure_quarantine()
        self._opened = True
        if self.pending_records or self.quarantine_bytes:
            log.info(
                "spool holds records to replay",
                extra={
                    "spool_dir": str(self.directory),
                    "records": self.pending_records,
                    "events": self.pending_events,
                    "bytes": self.pending_bytes,
                    "quarantine_bytes": self.quarantine_bytes,
                },
            )
        return self

    def close(self) -> None:
        with self._lock:
            if self._active_file is not None:
                _sync(self._active_file)
                self._active_file.close()
                self._active_file = None
                self._active = None
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None
            self._opened = False

    # --- state --------------------------------------------------------------------------

    @property
    def disk_bytes(self) -> int:
        """Segments and quarantine: what the limit applies to."""
        return sum(self._sizes.values()) + self.quarantine_bytes

    @property
    def position(self) -> tuple[int, int]:
        return self._position

    def is_full(self, headroom: int = 0) -> bool:
        """At its limit: it refused a write since it last freed space, or no room is left."""
        return self._refused or self.disk_bytes + headroom >= self.max_bytes

    def oldest_written_at_ms(self) -> int | None:
        """Write time of the next record to replay, None when the spool is empty."""
        with self._lock:
            if not self.pending_records:
                return None
            segment, offset = self._position
            for number in sorted(n for n in self._sizes if n >= segment):
                start = offset if number == segment else 0
                if start < self._end_of(number):
                    fd = self._read_fd(number)
                    written = header_time(lambda at, size, fd=fd: os.pread(fd, size, at), start)
                    if written is not None:
                        return written
                    # a damaged header: the segment's own time is the best estimate
                    return int(os.fstat(fd).st_mtime * 1000)
            return None

    # --- writing ------------------------------------------------------------------------

    def append_groups(self, groups: list[list[tuple[bytes, int]]]) -> list[bool]:
        """Append each group of (payload, events) frames and fsync once.

        Returns, per group, True when it is durably written, False when it did not fit in
        the spool's limit (nothing of that group was written). Raises SpoolError on I/O
        errors: then no group of the call is durable, and what the call wrote is removed
        (or, failing that, fenced off in a retired segment)."""
        if not self._opened:
            raise SpoolError("spool is not open")
        now_ms = int(time.time() * 1000)
        try:  # Limit check: a frame must be publishable as one request (before any write)
            encoded = [[(encode(p, n, now_ms), n) for p, n in frames] for frames in groups]
        except FrameTooLarge as error:
            raise SpoolError(str(error)) from None
        results: list[bool] = []
        with self._lock:
            snapshot = self._snapshot()
            try:
                for blobs in encoded:
                    # Limit check: COLLECTOR_SPOOL_MAX_MB, quarantine included
                    if not self._fits(sum(len(b) for b, _ in blobs)):
                        results.append(False)
                        self._refused = True
                        continue
                    for blob, events in blobs:
                        segment = self._writable_segment(len(blob))
                        _write_all(segment, blob)
                        self._sizes[self._active] += len(blob)  # type: ignore[index]
                        self.pending_records += 1
                        self.pending_events += events
                        self.pending_bytes += len(blob)
                    results.append(True)
                if self._active_file is not None and any(results):
                    _sync(self._active_file)
            except OSError as error:
                self._roll_back(snapshot)
                raise SpoolError(f"writing the spool failed: {error}") from error
        return results

    def _fits(self, size: int) -> bool:
        if self.disk_bytes + size <= self.max_bytes:
            return True
        # an operator may have emptied the quarantine folder since it was last measured
        self.quarantine_bytes = self._measure_quarantine()
        return self.disk_bytes + size <= self.max_bytes

    def _writable_segment(self, incoming: int) -> SegmentFile:
        if self._active_file is not None and self._active is not None:
            size = self._sizes[self._active]
            if size == 0 or size + incoming <= self.segment_bytes:
                return self._active_file
            # rotate: the full segment is made durable and closed
            _sync(self._active_file)
            self._active_file.close()
            self._ends[self._active] = size
            self._active_file = None
        number = self._next_segment
        self._next_segment += 1
        self._active_file = self._opener(self.directory / _segment_name(number))
        self._active = number
        self._sizes[number] = 0
        fsync_dir(self.directory)
        return self._active_file

    def _snapshot(self) -> tuple[int | None, int, int, tuple[int, int, int]]:
        active = self._active
        size = self._sizes[active] if active is not None else 0
        counters = (self.pending_records, self.pending_events, self.pending_bytes)
        return active, size, self._next_segment, counters

    def _roll_back(self, snapshot: tuple[int | None, int, int, tuple[int, int, int]]) -> None:
        """Undo a failed append: cut the segment that was active back to its size before the
        call, drop segments the call created, and retire the active segment, so the next
        frame starts on a clean boundary in a new segment whatever this disk still does."""
        active, size, next_segment, counters = snapshot
        self.pending_records, self.pending_events, self.pending_bytes = counters
        cut = False
        if active is not None and active == self._active and self._active_file is not None:
            with contextlib.suppress(OSError):
                self._active_file.truncate(size)
                cut = True
        elif active is not None:  # rotated out during this call: cut it by name
            with contextlib.suppress(OSError):
                os.truncate(self._path(active), size)
                cut = True
        if self._active_file is not None:
            with contextlib.suppress(OSError):
                self._active_file.close()
        retired = self._active
        self._active_file, self._active = None, None
        for number in range(next_segment, self._next_segment):
            self._forget_reader(number)
            try:
                (self.directory / _segment_name(number)).unlink()
            except OSError:  # still there: count its bytes; replay may re-send them (dup)
                self._ends[number] = self._sizes[number] = _size_of(self._path(number))
            else:
                self._sizes.pop(number, None)
                self._ends.pop(number, None)
        if active is not None:
            # if the cut failed, the torn bytes stay after `size`: reads stop before them,
            # the limit counts them, and a reopen sets them aside as damage
            self._sizes[active] = size if cut else max(size, _size_of(self._path(active)))
            self._ends[active] = size
        log.error(
            "spool write failed; what it wrote was removed and the segment retired",
            extra={"segment": retired, "good_size": size, "cut": cut},
        )

    # --- reading and committing ---------------------------------------------------------

    def read(self, max_records: int = 16, max_bytes: int = 8 * 1024 * 1024) -> list[Record]:
        """The next records to replay, oldest first (does not move the position). A damaged
        region comes as one record with `damage` set; the intact frames after it follow."""
        with self._lock:
            return self._read_locked(max_records, max_bytes)

    def commit(self, records: list[Record]) -> None:
        """Mark `records` (a prefix of what `read` returned) replayed; persist the position."""
        if not records:
            return
        with self._lock:
            last = records[-1]
            self.pending_records -= len(records)
            self.pending_events -= sum(r.events for r in records)
            self.pending_bytes -= sum(r.end - r.offset for r in records)
            position = (last.segment, last.end)
            if last.segment == self._active and last.end >= self._sizes[last.segment]:
                # caught up with the writer: retire the active segment so its bytes free up
                _sync(self._active_file)  # type: ignore[arg-type]
                self._active_file.close()  # type: ignore[union-attr]
                self._ends[last.segment] = last.end
                self._active_file = None
                self._active = None
                position = (self._next_segment, 0)
            elif last.segment != self._active and last.end >= self._ends.get(last.segment, 0):
                later = [n for n in self._sizes if n > last.segment]
                position = (min(later), 0) if later else (self._next_segment, 0)
            self._position = position
            if position == (self._next_segment, 0):
                # caught up: nothing is pending, whatever the counters say (a region damaged
                # after it was written is read as one record without events)
                self.pending_records = self.pending_events = self.pending_bytes = 0
            self._refused = False
            self._store_position()
            for number in [n for n in self._sizes if n < position[0]]:
                self._forget_reader(number)
                self._path(number).unlink(missing_ok=True)
                del self._sizes[number]
                self._ends.pop(number, None)

    def quarantine(self, record: Record, reason: str) -> Path:
        """Keep a record that will never be published on disk, out of the replay path, in
        the quarantine folder (which counts towards the limit until an operator empties it).
        Commit the record afterwards."""
        folder = self.directory / QUARANTINE
        created = not folder.exists()
        folder.mkdir(exist_ok=True)
        suffix = "pb" if record.damage is None else f"{record.damage}.bin"
        path = folder / f"{record.segment:012d}-{record.offset:012d}.{suffix}"
        with open(path, "wb") as handle:
            handle.write(record.payload)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(folder)
        if created:
            fsync_dir(self.directory)
        with self._lock:
            self.quarantine_bytes += len(record.payload)
        log.error(
            "spool record quarantined",
            extra={"path": str(path), "reason": reason, "events": record.events},
        )
        return path

    def _read_locked(self, max_records: int, max_bytes: int) -> list[Record]:
        records: list[Record] = []
        taken = 0
        segment, offset = self._position
        for number in sorted(n for n in self._sizes if n >= segment):
            start = offset if number == segment else 0
            end = self._end_of(number)
            fd = self._read_fd(number)

            def read(at: int, size: int, fd: int = fd) -> bytes:
                return os.pread(fd, size, at)

            while start < end and len(records) < max_records:
                record = _record_at(number, read, start, end)
                records.append(record)
                taken += record.end - record.offset
                start = record.end
                if taken >= max_bytes:
                    return records
            if len(records) >= max_records:
                break
        return records

    def _end_of(self, number: int) -> int:
        return self._sizes[number] if number == self._active else self._ends.get(number, 0)

    def _path(self, number: int) -> Path:
        return self.directory / _segment_name(number)

    def _read_fd(self, number: int) -> int:
        fd = self._read_fds.get(number)
        if fd is None:
            fd = os.open(self._path(number), os.O_RDONLY)
            self._read_fds[number] = fd
        return fd

    def _forget_reader(self, number: int) -> None:
        fd = self._read_fds.pop(number, None)
        if fd is not None:
            os.close(fd)

    def _scan(self, number: int, start: int, end: int) -> tuple[int, int, list[str]]:
        """(records, events, damaged regions) of a segment from `start` to `end`."""
        records = events = 0
        damaged: list[str] = []
        with open(self._path(number), "rb") as handle:
            fd = handle.fileno()

            def read(at: int, size: int) -> bytes:
                return os.pread(fd, size, at)

            offset = start
            while offset < end:
                record = _record_at(number, read, offset, end)
                records += 1
                events += record.events
                if record.damage is not None:
                    damaged.append(f"{record.damage} {record.offset}..{record.end}")
                offset = record.end
        return records, events, damaged

    def _measure_quarantine(self) -> int:
        folder = self.directory / QUARANTINE
        if not folder.is_dir():
            return 0
        return sum(_size_of(path) for path in folder.iterdir())

    def _load_position(self) -> tuple[int, int]:
        path = self.directory / "position.json"
        if not path.exists():
            return (1, 0)
        data = json.loads(path.read_text())
        return int(data["segment"]), int(data["offset"])

    def _store_position(self) -> None:
        path = self.directory / "position.json"
        tmp = path.with_suffix(".tmp")
        segment, offset = self._position
        with open(tmp, "w") as handle:
            handle.write(json.dumps({"segment": segment, "offset": offset}))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(self.directory)


def _record_at(number: int, read: Callable[[int, int], bytes], offset: int, end: int) -> Record:
    """The intact frame at `offset`, or the damaged region that starts there."""
    frame = frame_at(read, offset, end)
    if frame is not None:
        return Record(number, offset, frame.end, frame.payload, frame.written_at_ms, frame.events)
    damage = damaged_region(read, offset, end)
    data = read(offset, damage.end - offset)
    written = int(time.time() * 1000)
    return Record(number, offset, damage.end, data, written, 0, damage.kind)


def _write_all(segment: SegmentFile, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        written = segment.write(view)
        if not written:
            raise OSError("short write to the spool")
        view = view[written:]


def _sync(segment: SegmentFile) -> None:
    segment.flush()
    os.fsync(segment.fileno())


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
