"""The request handling shared by every event route: read the body within its limit,
authenticate the write key, ingest the event(s), deliver them, and answer.

Bad input gets a 4xx with its reason (`collector.errors`); what an authenticated client sent
but could not be read still goes to the dead-letter topic. See `collector.ingest` for how a
body becomes messages and `collector.delivery` for what a 200 guarantees.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from collector.auth import WriteKeys, key_from_authorization, key_from_body
from collector.body import check_content_type, decode_content, parse_json, read_limited
from collector.config import MAX_BATCH_BYTES, MAX_EVENT_BYTES, CollectorConfig
from collector.delivery import Delivery
from collector.errors import ApiError, json_response
from collector.ingest import Ingested, dead_letter, ingest_batch, ingest_event
from collector.metrics import Metrics
from platform_core.contract import isoformat_z

MAX_ERRORS_LISTED = 100


class Collector:
    """The request handling shared by every event route."""

    def __init__(
        self, config: CollectorConfig, keys: WriteKeys, delivery: Delivery, metrics: Metrics
    ) -> None:
        self.config = config
        self.keys = keys
        self.delivery = delivery
        self.metrics = metrics

    async def handle(self, request: Request, route_type: str | None) -> Response:
        """`route_type` is the message type of a single-event route, None for a batch."""
        try:
            return await self._handle(request, route_type)
        except ApiError as error:
            self.metrics.events_rejected.labels(error.code).inc()
            return error.response()
        except ClientDisconnect:  # gone before its body arrived: nothing was accepted
            self.metrics.events_rejected.labels("client_disconnected").inc()
            return ApiError(400, "client_disconnected", "the client went away").response()

    async def _handle(self, request: Request, route_type: str | None) -> Response:
        headers = request.headers
        body = await self._read_body(request, headers, route_type)
        header_key = key_from_authorization(headers.get("authorization"))
        source = self.keys.source_for(header_key)
        payload = await self._parse(body, source)
        if source is None:
            source = self._source_from_body(payload, header_key)
        result = await self._ingest(payload, body, source, route_type)
        delivery = await self.delivery.deliver(result.messages, result.dead_letters)
        self._count(result, source)
        if route_type is None:
            return self._batch_answer(result, delivery)
        return self._event_answer(result, delivery)

    # --- the steps -----------------------------------------------------------------------

    async def _read_body(self, request: Request, headers: Headers, route_type: str | None) -> bytes:
        """The body, inflated, refused before reading past the route's limit."""
        limit = MAX_EVENT_BYTES if route_type else MAX_BATCH_BYTES
        check_content_type(headers.get("content-type"))
        raw = await read_limited(request.stream(), headers.get("content-length"), limit)
        return decode_content(raw, headers.get("content-encoding"), limit)

    async def _parse(self, body: bytes, source: str | None) -> Any:
        try:
            return parse_json(body)
        except ApiError as error:
            if source is not None:  # keep what an authenticated client sent
                await self.delivery.deliver([], [dead_letter(body, source, error.reason)])
            raise

    def _source_from_body(self, payload: Any, header_key: str | None) -> str:
        """The source of a request whose Authorization header named none (analytics.js and
        some server SDKs send the write key in the body)."""
        body_key = key_from_body(payload)
        source = self.keys.source_for(body_key)
        if source is not None:
            return source
        if header_key or body_key:
            raise ApiError(
                401,
                "invalid_write_key",
                "unknown write key",
                "the write key is not one of COLLECTOR_WRITE_KEYS",
            )
        raise ApiError(
            401,
            "missing_write_key",
            "no write key",
            "send the write key as HTTP Basic user name (`writeKey:`), "
            "as `Authorization: Bearer <key>`, or as `writeKey` in the body",
        )

    async def _ingest(
        self, payload: Any, body: bytes, source: str, route_type: str | None
    ) -> Ingested:
        received_at_z = isoformat_z(datetime.now(UTC))
        if route_type is not None:
            return ingest_event(payload, body, source, received_at_z, route_type)
        try:
            return ingest_batch(payload, body, source, received_at_z)
        except ApiError as error:  # not a batch at all: the whole body is one dead letter
            await self.delivery.deliver([], [dead_letter(body, source, error.reason)])
            raise

    def _count(self, result: Ingested, source: str) -> None:
        for kind, count in result.accepted_types.items():
            self.metrics.events_accepted.labels(source, kind).inc(count)
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
