"""Write keys: where clients put them, and a lookup that does not leak which key is close.

Real SDKs send the key three ways: HTTP Basic with the key as user name (`writeKey:`, or
without the colon for old clients), a `writeKey` field in the JSON body (analytics.js,
Segment's Python SDK), and `Authorization: Bearer <key>`.

The lookup hashes the presented key (SHA-256, so every comparison is between equal-length
digests) and compares it with `hmac.compare_digest` against *every* configured key, with no
early exit: the time taken does not depend on which key, if any, matched, nor on how long a
common prefix was.

Keys never travel further: accepted events lose their top-level `writeKey` (contract.stamp),
and everything kept as a dead letter (data, reason, message id) goes through `Redactor`,
which blanks every write key field and every configured key wherever a client put it (a
header, the query string and the body are all the same key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from platform_core.contract import redact_write_key_fields

REDACTED = b"[redacted]"


class Redactor:
    """Removes write keys from what is kept as a dead letter: the value of any `writeKey`
    field (contract.redact_write_key_fields), then every configured key's text wherever it
    appears (a client may paste its key into any field). Dead letters are the exception,
    so this is off the hot path."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        # longest first, so a key that contains another is removed whole
        self._keys = sorted({k.encode("utf-8", "surrogatepass") for k in keys if k}, key=len)[::-1]

    def redact(self, data: bytes) -> bytes:
        data = redact_write_key_fields(data)
        for key in self._keys:
            if key in data:
                data = data.replace(key, REDACTED)
        return data

    def redact_text(self, text: str) -> str:
        return self.redact(text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")


class WriteKeys:
    """Configured write keys → source names, looked up in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ValueError("at least one write key is required")
        self._entries = [(_digest(key), source) for key, source in keys.items()]
        self.redactor = Redactor(keys)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def sources(self) -> set[str]:
        return {source for _, source in self._entries}

    def source_for(self, key: str | None) -> str | None:
        """The source of a write key, or None when it is unknown or absent."""
        if not key:
            return None
        presented = _digest(key)
        found: str | None = None
        for digest, source in self._entries:
            # compare against every key; remember a match without leaving the loop
            if hmac.compare_digest(presented, digest):
                found = source
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_from_authorization(header: str | None) -> str | None:
    """The write key in an Authorization header (Basic or Bearer), or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        # `writeKey:` (user name = key, empty password); old clients omit the colon
        user, _, _ = decoded.partition(":")
        return user or None
    if scheme == "bearer" and value:
        return value
    return None


def key_from_body(payload: Any) -> str | None:
    """The `writeKey` field of a JSON body (a single event or a batch), or None."""
    if isinstance(payload, dict):
        key = payload.get("writeKey")
        if isinstance(key, str) and key:
            return key
    return None
