"""Pub/Sub wire format: `PubsubMessage`s and `PublishRequest`s encoded straight to bytes.

At tens of thousands of events a second, building a protobuf object per event (and a
proto-plus wrapper around it, as google-cloud-pubsub does) costs more than the rest of the
collector's work. The two messages involved are tiny and stable:

    PubsubMessage  { bytes data = 1; map<string, string> attributes = 2; }
    PublishRequest { string topic = 1; repeated PubsubMessage messages = 2; }

so the collector writes their wire encoding itself (a map entry is a nested message
`{key = 1; value = 2}`), reusing the attribute entries that are the same for a whole request
(source, received_at) or for every event of a type. `tests/collector/test_collector_unit.py` checks
the bytes against the protobuf runtime. An encoded `PublishRequest` is also the spool's
record format: a replay sends exactly the bytes that could not be sent the first time.
"""

from __future__ import annotations

from google.pubsub_v1.types import pubsub as _types

# the protobuf classes, for decoding (responses, tests) and the admin calls
PubsubMessage = _types.PubsubMessage.pb()
PublishRequest = _types.PublishRequest.pb()
PublishResponse = _types.PublishResponse.pb()
Topic = _types.Topic.pb()
GetTopicRequest = _types.GetTopicRequest.pb()

PUBLISH = "/google.pubsub.v1.Publisher/Publish"
CREATE_TOPIC = "/google.pubsub.v1.Publisher/CreateTopic"
GET_TOPIC = "/google.pubsub.v1.Publisher/GetTopic"

# Pub/Sub limits attribute values to 1,024 bytes.
MAX_ATTRIBUTE_BYTES = 1024

_SMALL = [bytes((n,)) for n in range(128)]


def varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# varint(n) for the lengths that occur per message (up to the 33 KB of a stamped event),
# looked up instead of computed on the hot path
VARINTS = [varint(n) for n in range(1 << 16)]


def varint_of(value: int) -> bytes:
    return VARINTS[value] if value < 65536 else varint(value)


_KEY_PREFIXES: dict[str, bytes] = {}


def attribute(key: str, value: str) -> bytes:
    """One encoded `attributes` map entry (field 2 of PubsubMessage)."""
    prefix = _KEY_PREFIXES.get(key)
    if prefix is None:  # key field (1) of the entry, then the value field's tag (2)
        k = key.encode()
        prefix = b"\x0a" + varint(len(k)) + k + b"\x12"
        if len(_KEY_PREFIXES) < 64:
            _KEY_PREFIXES[key] = prefix
    v = value.encode()
    size = varint(len(v))
    return b"\x12" + varint(len(prefix) + len(size) + len(v)) + prefix + size + v


def attributes(values: dict[str, str]) -> bytes:
    return b"".join(attribute(k, v) for k, v in values.items())


def message(data: bytes, encoded_attributes: bytes) -> bytes:
    """An encoded PubsubMessage: data, then the already encoded attribute entries."""
    return b"\x0a" + varint_of(len(data)) + data + encoded_attributes


def publish_request(topic: str, messages: list[bytes]) -> bytes:
    """An encoded PublishRequest of already encoded PubsubMessages."""
    name = topic.encode()
    count = len(messages)
    lengths = list(map(len, messages))
    # each message as field 2: its tag, its length, itself (interleaved by slice
    # assignment: no Python-level step per message)
    parts: list[bytes] = [b"\x12"] * (3 * count)
    if max(lengths, default=0) < len(VARINTS):
        parts[1::3] = map(VARINTS.__getitem__, lengths)
    else:
        parts[1::3] = map(varint, lengths)
    parts[2::3] = messages
    return b"".join((b"\x0a", varint(len(name)), name, *parts))


def topic_of(request: bytes) -> str:
    """The topic of an encoded PublishRequest (its first field, as `publish_request` writes)."""
    if not request or request[0] != 0x0A:
        raise ValueError("not an encoded PublishRequest")
    length, shift, position = 0, 0, 1
    while True:
        byte = request[position]
        length |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            break
        shift += 7
    return request[position : position + length].decode()


def attribute_value(text: str, limit: int = MAX_ATTRIBUTE_BYTES) -> str:
    """`text` as a valid attribute value: UTF-8 encodable, at most `limit` bytes."""
    encoded = text.encode("utf-8", "replace")  # a lone surrogate becomes "?"
    return encoded[:limit].decode("utf-8", "ignore")  # never half a character
