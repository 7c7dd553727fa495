"""Write keys: where clients put them, and a lookup that does not leak which key is close.

Real SDKs send the key three ways: HTTP Basic with the key as user name (`writeKey:`, or
without the colon for old clients), a `writeKey` field in the JSON body (analytics.js,
Segment's Python SDK), and `Authorization: Bearer <key>`.

The lookup hashes the presented key (SHA-256, so every comparison is between equal-length
digests) and compares it with `hmac.compare_digest` against *every* configured key, with no
early exit: the time taken does not depend on which key, if any, matched, nor on how long a
common prefix was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any


class WriteKeys:
    """Configured write keys → source names, looked up in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ValueError("at least one write key is required")
        self._entries = [(_digest(key), source) for key, source in keys.items()]

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
