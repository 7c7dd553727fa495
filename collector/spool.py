"""A bounded, durable, append-only spool of Pub/Sub publish requests.

When Pub/Sub cannot take a request's events, the collector writes the serialized
`PublishRequest`s here and fsyncs before it answers 2xx; a background task replays them in
order once Pub/Sub is reachable (see `collector.delivery`).

Layout of the spool directory::

    LOCK                      flock held by the one collector process that owns the spool
    position.json             {"segment": n, "offset": k}: the next record to replay
    segment-000000000001.log  frames, appended; a segment is deleted once fully replayed

A frame is a 24-byte header (magic `CSP1`, payload length, CRC-32 of the payload, write
time in ms, number of events) followed by the payload. A frame that is incomplete or fails
its CRC can only be the tail of a segment that was being written when the process died
before its fsync returned, i.e. a request that was never answered 2xx; the reader stops
reading that segment there. After a restart new frames always go to a new segment.

Delivery is at-least-once: the position is persisted (fsync) after a replayed record was
acknowledged by Pub/Sub, so a crash between the two re-publishes that record once more.
Consumers deduplicate by `messageId`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from platform_core.durable import fsync_dir

log = logging.getLogger("collector.spool")

MAGIC = b"CSP1"
HEADER = struct.Struct(">4sIIQI")  # magic, payload length, crc32, written_at_ms, events
MAX_FRAME = 64 * 1024 * 1024


class SpoolError(RuntimeError):
    """The spool cannot be used (directory locked by another process, disk error)."""


@dataclass(frozen=True)
class Record:
    segment: int
    offset: int  # where the frame starts
    end: int  # where the next frame starts
    payload: bytes
    written_at_ms: int
    events: int
    corrupt: bool = False  # the payload fails its CRC (disk corruption): quarantine it


def _segment_name(number: int) -> str:
    return f"segment-{number:012d}.log"


def segment_bytes_for(max_bytes: int) -> int:
    """Segment size: small enough that replayed bytes are freed promptly."""
    return max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 16))


class Spool:
    """Thread-safe; every method does blocking file I/O (call it from a worker thread)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or segment_bytes_for(max_bytes)
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._sizes: dict[int, int] = {}  # segment number -> bytes on disk
        self._ends: dict[int, int] = {}  # closed segments: end of their last valid frame
        self._active: int | None = None
        self._active_fd: int | None = None
        self._read_fds: dict[int, int] = {}
        self._position = (1, 0)
        self._next_segment = 1
        self.pending_records = 0
        self.pending_events = 0
        self.pending_bytes = 0
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
        # count what is still to replay; find the valid end of each (closed) segment
        for number in list(self._sizes):
            start = self._position[1] if number == self._position[0] else 0
            end, records, events, size = self._scan(number, start)
            self._ends[number] = end
            self.pending_records += records
            self.pending_events += events
            self.pending_bytes += size
        self._opened = True
        if self.pending_records:
            log.info(
                "spool holds records to replay",
                extra={
                    "spool_dir": str(self.directory),
                    "records": self.pending_records,
                    "events": self.pending_events,
                    "bytes": self.pending_bytes,
                },
            )
        return self

    def close(self) -> None:
        with self._lock:
            if self._active_fd is not None:
                os.fsync(self._active_fd)
                os.close(self._active_fd)
                self._active_fd = None
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
        return sum(self._sizes.values())

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
            records = self._read_locked(1, headers_only=True)
            return records[0].written_at_ms if records else None

    # --- writing ------------------------------------------------------------------------

    def append_groups(self, groups: list[list[tuple[bytes, int]]]) -> list[bool]:
        """Append each group of (payload, events) frames atomically-enough and fsync once.

        Returns, per group, True when it is durably written, False when it did not fit in
        the spool's limit (nothing of that group was written). Raises SpoolError on I/O
        errors (nothing may be reported as durable then)."""
        if not self._opened:
            raise SpoolError("spool is not open")
        now_ms = int(time.time() * 1000)
        results: list[bool] = []
        with self._lock:
            try:
                for frames in groups:
                    blobs = [
                        (HEADER.pack(MAGIC, len(p), zlib.crc32(p), now_ms, n) + p, n)
                        for p, n in frames
                    ]
                    if self.disk_bytes + sum(len(b) for b, _ in blobs) > self.max_bytes:
                        results.append(False)
                        self._refused = True
                        continue
                    for blob, events in blobs:
                        fd = self._writable_segment(len(blob))
                        _write_all(fd, blob)
                        self._sizes[self._active] += len(blob)  # type: ignore[index]
                        self.pending_records += 1
                        self.pending_events += events
                        self.pending_bytes += len(blob)
                    results.append(True)
                if self._active_fd is not None and any(results):
                    os.fsync(self._active_fd)
            except OSError as error:
                raise SpoolError(f"writing the spool failed: {error}") from error
        return results

    def _writable_segment(self, incoming: int) -> int:
        if self._active_fd is not None and self._active is not None:
            size = self._sizes[self._active]
            if size == 0 or size + incoming <= self.segment_bytes:
                return self._active_fd
            # rotate: the full segment is made durable and closed
            os.fsync(self._active_fd)
            os.close(self._active_fd)
            self._ends[self._active] = size
        number = self._next_segment
        self._next_segment += 1
        path = self.directory / _segment_name(number)
        self._active_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._active = number
        self._sizes[number] = 0
        fsync_dir(self.directory)
        return self._active_fd

    # --- reading and committing ---------------------------------------------------------

    def read(self, max_records: int = 16, max_bytes: int = 8 * 1024 * 1024) -> list[Record]:
        """The next records to replay, oldest first (does not move the position)."""
        with self._lock:
            return self._read_locked(max_records, max_bytes=max_bytes)

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
                os.fsync(self._active_fd)  # type: ignore[arg-type]
                os.close(self._active_fd)  # type: ignore[arg-type]
                self._ends[last.segment] = last.end
                self._active_fd = None
                self._active = None
                position = (self._next_segment, 0)
            elif last.segment != self._active and last.end >= self._ends.get(last.segment, 0):
                later = [n for n in self._sizes if n > last.segment]
                position = (min(later), 0) if later else (self._next_segment, 0)
            self._position = position
            self._refused = False
            self._store_position()
            for number in [n for n in self._sizes if n < position[0]]:
                fd = self._read_fds.pop(number, None)
                if fd is not None:
                    os.close(fd)
                (self.directory / _segment_name(number)).unlink(missing_ok=True)
                del self._sizes[number]
                self._ends.pop(number, None)

    def _read_locked(
        self, max_records: int, max_bytes: int = 8 * 1024 * 1024, headers_only: bool = False
    ) -> list[Record]:
        records: list[Record] = []
        taken = 0
        segment, offset = self._position
        for number in sorted(n for n in self._sizes if n >= segment):
            start = offset if number == segment else 0
            end = self._sizes[number] if number == self._active else self._ends.get(number, 0)
            fd = self._read_fd(number)
            while start < end and len(records) < max_records:
                header = os.pread(fd, HEADER.size, start)
                magic, length, crc, written_at, events = HEADER.unpack(header)
                payload = b"" if headers_only else os.pread(fd, length, start + HEADER.size)
                corrupt = not headers_only and (
                    magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc
                )
                stop = start + HEADER.size + length
                records.append(Record(number, start, stop, payload, written_at, events, corrupt))
                taken += length
                start = stop
                if taken >= max_bytes:
                    return records
            if len(records) >= max_records:
                break
        return records

    def _read_fd(self, number: int) -> int:
        fd = self._read_fds.get(number)
        if fd is None:
            fd = os.open(self.directory / _segment_name(number), os.O_RDONLY)
            self._read_fds[number] = fd
        return fd

    def _scan(self, number: int, start: int) -> tuple[int, int, int, int]:
        """(valid end, records, events, bytes) of a closed segment from `start`."""
        path = self.directory / _segment_name(number)
        records = events = 0
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            offset = start
            while offset + HEADER.size <= size:
                handle.seek(offset)
                magic, length, crc, _, count = HEADER.unpack(handle.read(HEADER.size))
                if magic != MAGIC or length > MAX_FRAME or offset + HEADER.size + length > size:
                    break
                if zlib.crc32(handle.read(length)) != crc:
                    break
                offset += HEADER.size + length
                records += 1
                events += count
        if offset < size:
            log.warning(
                "spool segment has an incomplete tail (a write interrupted before its fsync; "
                "that request was never acknowledged)",
                extra={"segment": path.name, "valid_bytes": offset, "size": size},
            )
        return offset, records, events, offset - start

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


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        written = os.write(fd, view)
        view = view[written:]
