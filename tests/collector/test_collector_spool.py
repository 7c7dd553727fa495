"""The spool under disk faults: writes that fail part-way (ENOSPC, EIO) through a segment file
that breaks on demand, flipped bytes on disk, a full quarantine. What it promises: a frame
the spool reported durable survives a reopen, whatever failed before or after it; a damaged
frame costs only itself (kept in quarantine), never the acknowledged frames after it.

Frames are built here by hand from the format the spool documents (collector/spool.py):
a 24-byte header `>4sIQII` (magic `CSP2`, payload length, write time in ms, events, CRC-32 of
the first 20 header bytes followed by the payload), then the payload."""

from __future__ import annotations

import errno
import io
import struct
import zlib
from pathlib import Path

import pytest

from collector.spool import Spool, SpoolError

MB = 1024 * 1024
V2 = struct.Struct(">4sIQII")
V1 = struct.Struct(">4sIIQI")  # the previous format: magic CSP1, length, crc, time, events


def frame_v2(payload: bytes, events: int = 1, written_at_ms: int = 1_700_000_000_000) -> bytes:
    head = V2.pack(b"CSP2", len(payload), written_at_ms, events, 0)[:20]
    return head + struct.pack(">I", zlib.crc32(head + payload)) + payload


def frame_v1(payload: bytes, events: int = 1) -> bytes:
    return V1.pack(b"CSP1", len(payload), zlib.crc32(payload), 1_700_000_000_000, events) + payload


class Disk:
    """Opens segment files that fail on demand: once `budget` more bytes were written (the
    write that crosses it is partial, as on a full disk), when flushed before fsync, or when
    truncated."""

    def __init__(self) -> None:
        self.budget: int | None = None
        self.error = errno.ENOSPC
        self.fail_flush = False
        self.fail_truncate = False

    def open(self, path: Path) -> FaultyFile:
        return FaultyFile(path, self)


class FaultyFile(io.FileIO):
    def __init__(self, path: Path, disk: Disk) -> None:
        super().__init__(path, "ab")
        self.disk = disk

    def write(self, data) -> int:  # type: ignore[override]
        budget = self.disk.budget
        if budget is None:
            return super().write(data)
        if budget <= 0:
            raise OSError(self.disk.error, errno.errorcode[self.disk.error])
        written = super().write(bytes(data[:budget]))
        self.disk.budget = budget - written
        return written

    def flush(self) -> None:
        if self.disk.fail_flush:
            raise OSError(errno.EIO, "EIO")
        super().flush()

    def truncate(self, size: int | None = None) -> int:
        if self.disk.fail_truncate:
            raise OSError(errno.EIO, "EIO")
        return super().truncate(size)


def payloads(prefix: str, n: int, size: int = 100) -> list[tuple[bytes, int]]:
    return [((f"{prefix}{i}:".encode() * size)[:size], i + 1) for i in range(n)]


def valid(spool: Spool) -> list[bytes]:
    """Payloads of the intact records still to replay, oldest first."""
    return [r.payload for r in spool.read(1000) if not r.corrupt]


def names(frames: list[tuple[bytes, int]]) -> list[bytes]:
    return [p for p, _ in frames]


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_write_failing_part_way_leaves_nothing_that_swallows_the_next_frame(tmp_path, error):
    disk = Disk()
    disk.error = error
    spool = Spool(tmp_path, 10 * MB, opener=disk.open).open()
    a, b, c = payloads("a", 2), payloads("b", 2), payloads("c", 2)
    assert spool.append_groups([a]) == [True]
    disk.budget = 150  # the first of b's frames fits, the second stops half-way
    with pytest.raises(SpoolError):
        spool.append_groups([b])
    disk.budget = None
    assert spool.append_groups([c]) == [True]
    assert valid(spool) == names(a + c), "nothing of the failed write is pending"
    assert spool.pending_events == 3 + 3
    spool.close()
    again = Spool(tmp_path, 10 * MB).open()
    records = again.read(1000)
    assert [r.payload for r in records] == names(a + c), "after a reopen too"
    assert not any(r.corrupt for r in records)
    again.close()


def test_a_failed_sync_reports_nothing_durable_and_the_next_frames_survive(tmp_path):
    disk = Disk()
    spool = Spool(tmp_path, 10 * MB, opener=disk.open).open()
    a, b, c = payloads("a", 1), payloads("b", 3), payloads("c", 1)
    spool.append_groups([a])
    disk.fail_flush = True
    with pytest.raises(SpoolError):
        spool.append_groups([b, c])
    disk.fail_flush = False
    assert spool.append_groups([c]) == [True]
    spool.close()
    again = Spool(tmp_path, 10 * MB).open()
    assert valid(again) == names(a + c)
    again.close()


def test_when_the_torn_frame_cannot_be_cut_off_later_frames_still_survive(tmp_path):
    """ENOSPC part-way and the truncate fails too (EIO): the segment is abandoned with its
    garbage; the next acknowledged frames go to a new segment, and after a reopen they are
    all there (the garbage is quarantined, never mistaken for a frame)."""
    disk = Disk()
    spool = Spool(tmp_path, 10 * MB, opener=disk.open).open()
    a, b, c = payloads("a", 2), payloads("b", 1, size=1000), payloads("c", 2)
    spool.append_groups([a])
    disk.budget, disk.fail_truncate = 40, True
    with pytest.raises(SpoolError):
        spool.append_groups([b])
    disk.budget, disk.fail_truncate = None, False
    assert spool.append_groups([c]) == [True]
    assert valid(spool) == names(a + c)
    spool.close()
    again = Spool(tmp_path, 10 * MB).open()
    records = again.read(1000)
    assert [r.payload for r in records if not r.corrupt] == names(a + c)
    assert all(r.events == 0 for r in records if r.corrupt)
    again.close()


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(24 + 10, id="payload"),
        pytest.param(1, id="magic"),
        pytest.param(6, id="length"),
        pytest.param(16, id="events"),
    ],
)
def test_one_flipped_byte_in_frame_1_of_3_loses_only_frame_1(tmp_path, where):
    spool = Spool(tmp_path, 10 * MB).open()
    frames = payloads("f", 3)
    assert spool.append_groups([frames[:1], frames[1:2], frames[2:]]) == [True] * 3
    spool.close()
    [segment] = tmp_path.glob("segment-*.log")
    flip(segment, where)
    again = Spool(tmp_path, 10 * MB).open()
    records = again.read(1000)
    assert [r.corrupt for r in records] == [True, False, False]
    assert [r.payload for r in records[1:]] == names(frames[1:])
    assert again.pending_events == 2 + 3, "frame 1's events are the only ones lost"
    again.close()


def test_a_byte_flipped_while_running_costs_only_its_frame(tmp_path):
    spool = Spool(tmp_path, 10 * MB).open()
    frames = payloads("r", 3)
    spool.append_groups([frames])
    [segment] = tmp_path.glob("segment-*.log")
    flip(segment, 124 + 24 + 3)  # inside the second frame's payload
    records = spool.read(1000)
    assert [r.corrupt for r in records] == [False, True, False]
    assert [records[0].payload, records[2].payload] == [frames[0][0], frames[2][0]]
    spool.close()


def test_a_frame_hidden_in_a_damaged_payload_is_not_resurrected(tmp_path):
    """A payload may contain bytes that look like a whole frame (an attacker controls event
    contents). When the frame around it is damaged but its header is intact, the spool
    skips the frame by its declared length instead of searching inside it."""
    fake = frame_v2(b"projects/evil/topics/x" * 3, events=99)
    outer = b"x" * 50 + fake + b"y" * 50
    spool = Spool(tmp_path, 10 * MB).open()
    spool.append_groups([[(outer, 1)], [(b"after", 1)]])
    spool.close()
    [segment] = tmp_path.glob("segment-*.log")
    flip(segment, 24 + 5)
    again = Spool(tmp_path, 10 * MB).open()
    records = again.read(1000)
    assert [(r.corrupt, r.payload if not r.corrupt else None) for r in records] == [
        (True, None),
        (False, b"after"),
    ]
    assert records[0].end - records[0].offset == 24 + len(outer)
    again.close()


def test_torn_tail_of_a_crashed_write_is_set_aside_and_new_frames_follow(tmp_path):
    spool = Spool(tmp_path, MB).open()
    first = payloads("t", 2)
    spool.append_groups([first])
    spool.close()
    [segment] = tmp_path.glob("segment-*.log")
    with open(segment, "ab") as handle:  # a crash in the middle of a write
        handle.write(frame_v2(b"z" * 500)[:300])
    again = Spool(tmp_path, MB).open()
    assert again.pending_events == 1 + 2
    again.append_groups([payloads("n", 1)])
    records = again.read(10)
    assert [r.corrupt for r in records] == [False, False, True, False]
    assert records[2].damage == "torn" and records[2].events == 0
    assert records[3].payload == payloads("n", 1)[0][0]
    again.close()


def test_frames_of_the_previous_format_are_still_replayed(tmp_path):
    """A spool written by the previous collector version (CSP1 frames) survives an upgrade."""
    (tmp_path / f"segment-{1:012d}.log").write_bytes(frame_v1(b"old-1", 2) + frame_v1(b"old-2", 3))
    spool = Spool(tmp_path, MB).open()
    assert [(r.payload, r.events, r.corrupt) for r in spool.read(10)] == [
        (b"old-1", 2, False),
        (b"old-2", 3, False),
    ]
    spool.close()


def test_the_quarantine_counts_towards_the_spool_limit(tmp_path):
    spool = Spool(tmp_path, max_bytes=4000).open()
    assert spool.append_groups([payloads("q", 1, size=1500)]) == [True]
    [record] = spool.read(10)
    path = spool.quarantine(record, "refused by Pub/Sub")
    spool.commit([record])
    assert path.parent == tmp_path / "quarantine" and path.read_bytes() == record.payload
    assert spool.pending_records == 0 and spool.quarantine_bytes >= 1500
    assert spool.disk_bytes >= 1500
    assert spool.append_groups([payloads("r", 1, size=3000)]) == [False], "full"
    spool.close()
    again = Spool(tmp_path, max_bytes=4000).open()
    assert again.quarantine_bytes >= 1500, "counted after a restart too"
    assert again.append_groups([payloads("r", 1, size=3000)]) == [False]
    assert again.append_groups([payloads("s", 1, size=500)]) == [True]
    again.close()


def test_frames_larger_than_a_publish_request_are_refused_not_written(tmp_path):
    """A frame is replayed as one Publish request: one Pub/Sub would refuse (> 10 MB) is
    never written (the collector's limits keep requests far below)."""
    spool = Spool(tmp_path, 64 * MB).open()
    with pytest.raises(SpoolError, match="frame"):
        spool.append_groups([[(b"x" * (10 * MB + 1), 1)]])
    assert spool.pending_records == 0 and spool.disk_bytes == 0
    spool.close()
