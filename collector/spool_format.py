"""How the spool lays a record out on disk, checks it, and finds its way again after damage.

A frame is a 24-byte header followed by the payload (an encoded Pub/Sub PublishRequest):

    header  = struct ">4sIQII": magic b"CSP2", payload length, write time (ms since the epoch),
              number of events, CRC-32 of the header's first 20 bytes followed by the payload

so a flipped bit anywhere in a frame, its header included, fails the check. Frames written by
the previous version (magic b"CSP1", header ">4sIIQI": magic, length, CRC-32 of the payload
only, write time, events) are still read, so a spool survives an upgrade.

Damage is found and stepped over, never allowed to hide the frames after it
(`damaged_region`): when a frame fails its check, the damaged region runs to the next intact
frame. If the damaged frame's header still looks right, its declared length is tried first, so
a frame-shaped byte string inside a payload (event contents are the client's) is not mistaken
for a frame; otherwise the bytes are searched for the next magic whose frame checks out.
A damaged region that runs to the end of the segment and whose header is cut short or claims
more bytes than there are is a *torn* write (a crash or a disk error in the middle of an
append: never acknowledged); any other is *corrupt* (bytes damaged after they were written).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from collector.config import PUBSUB_REQUEST_LIMIT_BYTES

MAGIC = b"CSP2"
MAGIC_V1 = b"CSP1"
HEADER = struct.Struct(">4sIQII")  # magic, length, written_at_ms, events, crc
HEADER_V1 = struct.Struct(">4sIIQI")  # magic, length, crc (payload only), written_at_ms, events
CHECKED = 20  # header bytes the CRC covers (all but the CRC itself)
# A frame is replayed as one Publish request: no larger than Pub/Sub takes.
MAX_PAYLOAD = PUBSUB_REQUEST_LIMIT_BYTES
SCAN_WINDOW = 1024 * 1024

Reader = Callable[[int, int], bytes]  # (offset, size) -> at most `size` bytes from the segment


class FrameTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class Frame:
    offset: int
    end: int
    payload: bytes
    written_at_ms: int
    events: int


@dataclass(frozen=True)
class Damage:
    offset: int
    end: int
    kind: str  # "corrupt" or "torn"


def encode(payload: bytes, events: int, written_at_ms: int) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise FrameTooLarge(
            f"a spool frame holds at most {MAX_PAYLOAD} bytes (one Pub/Sub publish request), "
            f"got {len(payload)}"
        )
    head = HEADER.pack(MAGIC, len(payload), written_at_ms, events, 0)[:CHECKED]
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack(">I", crc) + payload


def _declared(head: bytes) -> tuple[int, int, int, int, bool] | None:
    """(length, crc, written_at_ms, events, is_v2) of a header with a known magic and a
    plausible length, else None."""
    if len(head) < HEADER.size:
        return None
    if head[:4] == MAGIC:
        _, length, written_at, events, crc = HEADER.unpack(head)
        is_v2 = True
    elif head[:4] == MAGIC_V1:
        _, length, crc, written_at, events = HEADER_V1.unpack(head)
        is_v2 = False
    else:
        return None
    if length > MAX_PAYLOAD:
        return None
    return length, crc, written_at, events, is_v2


def frame_at(read: Reader, offset: int, end: int) -> Frame | None:
    """The intact frame that starts at `offset` and ends by `end`, or None."""
    if end - offset < HEADER.size:
        return None
    head = read(offset, HEADER.size)
    declared = _declared(head)
    if declared is None:
        return None
    length, crc, written_at, events, is_v2 = declared
    stop = offset + HEADER.size + length
    if stop > end:
        return None
    payload = read(offset + HEADER.size, length)
    if len(payload) != length:
        return None
    actual = zlib.crc32(payload, zlib.crc32(head[:CHECKED])) if is_v2 else zlib.crc32(payload)
    if actual != crc:
        return None
    return Frame(offset, stop, payload, written_at, events)


def header_time(read: Reader, offset: int) -> int | None:
    """The write time in the header at `offset`, unchecked (for the lag metric)."""
    declared = _declared(read(offset, HEADER.size))
    return None if declared is None else declared[2]


def damaged_region(read: Reader, offset: int, end: int) -> Damage:
    """The damaged bytes from `offset` (where no intact frame starts) to the next intact
    frame, or to `end`."""
    declared = _declared(read(offset, min(HEADER.size, end - offset)))
    claimed = None if declared is None else offset + HEADER.size + declared[0]
    # the header looks right, so the damage is inside this frame: trust its length when an
    # intact frame (or the end) follows, rather than searching inside its payload
    if claimed is not None and (
        claimed == end or (claimed < end and frame_at(read, claimed, end) is not None)
    ):
        return Damage(offset, claimed, "corrupt")
    following = next_frame_offset(read, offset + 1, end)
    if following is not None:
        return Damage(offset, following, "corrupt")
    torn = end - offset < HEADER.size or (claimed is not None and claimed > end)
    return Damage(offset, end, "torn" if torn else "corrupt")


def next_frame_offset(read: Reader, start: int, end: int) -> int | None:
    """Where the first intact frame at or after `start` begins, or None."""
    position = start
    while position < end:
        window = read(position, min(SCAN_WINDOW + len(MAGIC) - 1, end - position))
        if not window:
            return None
        found = _magic_positions(window)
        for index in found:
            if frame_at(read, position + index, end) is not None:
                return position + index
        position += SCAN_WINDOW
    return None


def _magic_positions(window: bytes) -> list[int]:
    positions: list[int] = []
    for magic in (MAGIC, MAGIC_V1):
        index = window.find(magic)
        while index != -1 and index < SCAN_WINDOW:
            positions.append(index)
            index = window.find(magic, index + 1)
    return sorted(positions)
