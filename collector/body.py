"""Request bodies: bounded reading, gzip inflation that stops at the limit, JSON parsing.

Limits are on the decompressed size (what Segment's 32 KB / 500 KB limits mean). Inflation
never produces more than `limit + 1` bytes and reads at most `MAX_GZIP_MEMBERS` members, so a
gzip bomb (or a body of thousands of empty members) costs at most the limit in memory and CPU
before it is refused. The handler inflates only bodies whose write key it already checked.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from collector.config import MAX_GZIP_MEMBERS
from collector.errors import ApiError

JSON_TYPES = ("application/json", "text/plain")


def check_content_type(content_type: str | None) -> None:
    """JSON as `application/json` (SDKs), `text/plain` (analytics.js, to avoid a CORS
    preflight), `application/*+json`, or no Content-Type at all."""
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ApiError(
        415,
        "unsupported_media_type",
        "request body must be JSON",
        f"Content-Type {media!r} is not accepted; send application/json or text/plain",
    )


def too_large(size_text: str, limit: int) -> ApiError:
    kind = "event" if limit <= 32 * 1024 else "batch"
    return ApiError(
        413,
        "payload_too_large",
        f"{kind} exceeds the {limit // 1024} KB limit",
        f"the {size_text} is larger than {limit} bytes, the limit per {kind} request "
        "(measured after decompression)",
    )


async def read_limited(
    stream: AsyncIterator[bytes], content_length: str | None, limit: int
) -> bytes:
    """The raw request body; 413 as soon as it is known to exceed `limit` bytes."""
    if content_length:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(
                400,
                "invalid_request",
                "invalid Content-Length header",
                "Content-Length is not a number",
            ) from None
        if declared > limit:
            raise too_large(f"body ({declared} bytes declared)", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        if not chunk:
            continue
        size += len(chunk)
        if size > limit:
            raise too_large("body", limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_content(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding: gzip` (or `identity`), inflating at most `limit` bytes."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(
            415,
            "unsupported_encoding",
            "unsupported Content-Encoding",
            f"Content-Encoding {encoding!r} is not supported; use gzip or none",
        )
    return gunzip_limited(body, limit)


def is_gzip(content_encoding: str | None) -> bool:
    return (content_encoding or "").strip().lower() in ("gzip", "x-gzip")


def gunzip_limited(data: bytes, limit: int, max_members: int = MAX_GZIP_MEMBERS) -> bytes:
    """Inflate gzip data (one or more members) to at most `limit` bytes, else 413."""
    out = bytearray()
    remaining = data
    for _ in range(max_members):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            # never more than limit + 1 bytes: enough to know the limit is exceeded
            out += inflater.decompress(remaining, limit + 1 - len(out))
        except zlib.error as error:
            raise ApiError(
                400, "invalid_gzip", "body is not valid gzip", f"gzip decoding failed: {error}"
            ) from None
        if len(out) > limit:
            raise too_large("decompressed body", limit)
        if not inflater.eof:
            raise ApiError(
                400, "invalid_gzip", "body is not valid gzip", "the gzip stream is truncated"
            )
        remaining = inflater.unused_data
        if not remaining.strip(b"\x00"):
            # zero padding after the last member is tolerated, as gzip(1) does
            return bytes(out)
    raise ApiError(
        400,
        "invalid_gzip",
        "body is not valid gzip",
        f"the body has more than {max_members} gzip members",
    )


def parse_json(body: bytes) -> Any:
    """Parse a JSON body (orjson: strict RFC 8259, UTF-8; NaN, Infinity and lone surrogates
    are refused, integers beyond 64 bits become floats)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400, "invalid_json", "request body is not valid JSON", f"JSON parse error: {error}"
        ) from None
