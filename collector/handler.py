"""The request handling shared by every event route: admit the request, read the body within
its limit, authenticate the write key, inflate and parse, ingest the event(s), deliver them,
and answer.

The order is the cheapest refusal first: too many requests in flight (503 + Retry-After, body
unread), the media type, the header's write key, the body's size as read, gzip only once the
header's key is known (a key in the body cannot be read before inflating, so gzip bodies need
it in the header), the inflated size, JSON, the body's key, then the batch's limits and each
event (`collector.ingest`). Bad input gets a 4xx with its reason (`collector.errors`); what
an authenticated client sent but could not be read still goes to the dead-letter topic, minus
its write key. See `collector.delivery` for what a 200 guarantees.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from collector.auth import WriteKeys, key_from_authorization, key_from_body
from collector.body import check_content_type, decode_content, is_gzip, parse_json, read_limited
from collector.config import MAX_BATCH_BYTES, MAX_EVENT_BYTES, RETRY_AFTER_S, CollectorConfig
from collector.delivery import Delivery
from collector.errors import ApiError, json_response
from collector.fastpath import Decoded, NotJson, decode_batch, ingest_decoded
from collector.ingest import Ingested, dead_letter, ingest_batch, ingest_event
from collector.metrics import Metrics

MAX_ERRORS_LISTED = 100


def received_at_text(now: datetime) -> str:
    """An aware UTC time of these years (1000-9999) as `platform_core.contract.isoformat_z`
    writes it (RFC 3339, milliseconds, `Z`), without strftime's cost."""
    return now.isoformat(timespec="milliseconds")[:-6] + "Z"


class Collector:
    """The request handling shared by every event route."""

    def __init__(
        self, config: CollectorConfig, keys: WriteKeys, delivery: Delivery, metrics: Metrics
    ) -> None:
        self.config = config
        self.keys = keys
        self.delivery = delivery
        self.metrics = metrics
        self.in_flight = 0
        self._accepted: dict[tuple[str, str], Any] = {}  # events_accepted's children
        metrics.requests_in_flight.set_function(lambda: self.in_flight)

    async def handle(self, request: Request, route_type: str | None) -> Response:
        """`route_type` is the message type of a single-event route, None for a batch."""
        try:
            # Limit check: requests handled at once (the first thing; the body is not read).
            # A request waits at most COLLECTOR_PUBLISH_TIMEOUT_S for Pub/Sub, so this bounds
            # the queue in front of Pub/Sub and the spool, and what it holds in memory.
            if self.in_flight >= self.config.max_in_flight:
                raise ApiError(
                    503,
                    "overloaded",
                    "the collector is busy",
                    f"{self.in_flight} requests are in progress (COLLECTOR_MAX_IN_FLIGHT); "
                    "retry later",
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
            self.in_flight += 1
            try:
                return await self._handle(request, route_type)
            finally:
                self.in_flight -= 1
        except ApiError as error:
            self.metrics.events_rejected.labels(error.code).inc()
            return error.response()
        except ClientDisconnect:  # gone before its body arrived: nothing was accepted
            self.metrics.events_rejected.labels("client_disconnected").inc()
            return ApiError(400, "client_disconnected", "the client went away").response()

    async def _handle(self, request: Request, route_type: str | None) -> Response:
        headers = request.headers
        check_content_type(headers.get("content-type"))
        header_key = key_from_authorization(headers.get("authorization"))
        header_source = self.keys.source_for(header_key)
        body = await self._read_body(request, headers, route_type, header_source, header_key)
        received_at_z = received_at_text(datetime.now(UTC))
        decoded = await self._decode(body, header_source) if route_type is None else None
        if decoded is not None:  # the hot path (collector.fastpath)
            source = header_source or self._source_from_body(decoded.payload_key(), header_key)
            try:
                result = ingest_decoded(decoded, source, received_at_z, self.keys.redactor)
            except NotJson:  # an event only orjson could judge: the exact path decides
                payload = await self._parse(body, source)
                result = await self._ingest(payload, body, source, None, received_at_z)
        else:
            payload = await self._parse(body, header_source)
            source = header_source or self._source_from_body(payload, header_key)
            result = await self._ingest(payload, body, source, route_type, received_at_z)
            del payload
        # only the encoded messages stay in memory while Pub/Sub (or the spool) answers
        del decoded, body
        delivery = await self.delivery.deliver(result.messages, result.dead_letters)
        self._count(result, source)
        if route_type is None:
            return self._batch_answer(result, delivery)
        return self._event_answer(result, delivery)

    # --- the steps -----------------------------------------------------------------------

    async def _read_body(
        self,
        request: Request,
        headers: Headers,
        route_type: str | None,
        header_source: str | None,
        header_key: str | None,
    ) -> bytes:
        """The body, refused before reading past the route's limit; inflated (within the
        limit) only when the header's write key is known."""
        limit = MAX_EVENT_BYTES if route_type else MAX_BATCH_BYTES
        raw = await read_limited(request.stream(), headers.get("content-length"), limit)
        encoding = headers.get("content-encoding")
        if is_gzip(encoding) and header_source is None:
            raise self._unauthenticated(
                header_key,
                "a gzip body is inflated only for a known write key: send the key in the "
                "Authorization header (HTTP Basic user name or Bearer)",
            )
        return decode_content(raw, encoding, limit)

    async def _decode(self, body: bytes, source: str | None) -> Decoded | None:
        """A batch body decoded with the compiled contract; None when the exact path must
        parse it (`collector.fastpath`)."""
        try:
            return decode_batch(body)
        except NotJson:
            await self._parse(body, source)  # raises the parse error, as for any body
            return None

    async def _parse(self, body: bytes, source: str | None) -> Any:
        try:
            return parse_json(body)
        except ApiError as error:
            if source is not None:  # keep what an authenticated client sent (redacted)
                letter = dead_letter(body, source, error.reason, redactor=self.keys.redactor)
                await self.delivery.deliver([], [letter])
            raise

    def _source_from_body(self, payload: Any, header_key: str | None) -> str:
        """The source of a request whose Authorization header named none (analytics.js and
        some server SDKs send the write key in the body)."""
        body_key = key_from_body(payload)
        source = self.keys.source_for(body_key)
        if source is not None:
            return source
        raise self._unauthenticated(header_key or body_key)

    @staticmethod
    def _unauthenticated(key: str | None, hint: str | None = None) -> ApiError:
        if key:
            return ApiError(
                401,
                "invalid_write_key",
                "unknown write key",
                hint or "the write key is not one of COLLECTOR_WRITE_KEYS",
            )
        return ApiError(
            401,
            "missing_write_key",
            "no write key",
            hint
            or "send the write key as HTTP Basic user name (`writeKey:`), "
            "as `Authorization: Bearer <key>`, or as `writeKey` in the body",
        )

    async def _ingest(
        self, payload: Any, body: bytes, source: str, route_type: str | None, received_at_z: str
    ) -> Ingested:
        redactor = self.keys.redactor
        if route_type is not None:
            return ingest_event(payload, body, source, received_at_z, route_type, redactor)
        try:
            return ingest_batch(payload, body, source, received_at_z, redactor)
        except ApiError as error:
            if error.code == "invalid_batch":  # not a batch at all: one dead letter
                letter = dead_letter(body, source, error.reason, redactor=redactor)
                await self.delivery.deliver([], [letter])
            raise  # out of limits (413): refused whole, as a body over its size is

    def _count(self, result: Ingested, source: str) -> None:
        """The request's events by source and type, its rejections by reason: one update
        per label set and request (the labelled children are looked up once, not per
        request; sources, types and reasons are few)."""
        children = self._accepted
        for kind, count in result.accepted_types.items():
            child = children.get((source, kind))
            if child is None:
                child = children[source, kind] = self.metrics.events_accepted.labels(source, kind)
            child.inc(count)
        if result.rejections:
            reasons: dict[str, int] = {}
            for rejection in result.rejections:
                reasons[rejection.code] = reasons.get(rejection.code, 0) + 1
            for code, count in reasons.items():
                self.metrics.events_rejected.labels(code).inc(count)

    # --- answers -------------------------------------------------------------------------

    @staticmethod
    def _batch_answer(result: Ingested, delivery: str) -> Response:
        return json_response(
            {
                "success": True,
                "accepted": result.accepted,
                "rejected": len(result.rejections),
                "errors": [
                    {
                        "index": r.index,
                        "code": r.code,
                        "reason": r.reason,
                        "messageId": r.message_id,
                    }
                    for r in result.rejections[:MAX_ERRORS_LISTED]
                ],
                "delivery": delivery,
            }
        )

    @staticmethod
    def _event_answer(result: Ingested, delivery: str) -> Response:
        if result.rejections:
            rejection = result.rejections[0]
            # counted above with the event's reason; the caller must not count it again
            return ApiError(
                400, rejection.code, "the event does not satisfy the contract", rejection.reason
            ).response()
        return json_response(
            {"success": True, "messageId": result.message_ids[0], "delivery": delivery}
        )
