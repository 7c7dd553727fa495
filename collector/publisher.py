"""Publishing to Pub/Sub: one Publish RPC per request's events, over a grpc.aio channel.

google-cloud-pubsub's `PublisherClient.publish` takes one message at a time, batches in a
background thread and hands back a future per message: at tens of thousands of events a
second that bookkeeping costs more than everything else the collector does. A collector
request already is a batch (up to 100 events from an SDK), so it is sent as one `Publish`
RPC (at most 1,000 messages each, Pub/Sub's limit) on the event loop, built from raw
protobuf messages, and the request is answered when Pub/Sub acknowledged it.

Locally the channel goes to the emulator (`PUBSUB_EMULATOR_HOST`, plaintext); in production
to pubsub.googleapis.com with Application Default Credentials, the same channel the
generated client would build.
"""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import quote

import grpc

from collector.wire import (
    CREATE_TOPIC,
    GET_TOPIC,
    PUBLISH,
    GetTopicRequest,
    Topic,
)

log = logging.getLogger("collector.publisher")

PUBSUB_HOST = "pubsub.googleapis.com:443"
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # reconnect quickly once Pub/Sub is back (the default backoff grows to 2 minutes)
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]

# Codes that mean "Pub/Sub cannot take it now": keep the events (spool) and retry later.
# INVALID_ARGUMENT and the like mean the request itself is wrong and retrying cannot help.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.NOT_FOUND,  # topic missing (e.g. a restarted emulator): wait for it
        grpc.StatusCode.PERMISSION_DENIED,  # IAM being fixed: keep the events meanwhile
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


class PublishError(Exception):
    """A publish that did not succeed; `retryable` says whether waiting can help."""

    def __init__(self, code: str, detail: str, retryable: bool) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.retryable = retryable


class Publisher(Protocol):
    """What the collector needs from a message bus."""

    async def start(self) -> None: ...

    async def publish(self, topic: str, request: bytes, timeout: float) -> None: ...

    async def ensure_topics(self, topics: list[str], timeout: float) -> None: ...

    async def probe(self, topic: str, timeout: float) -> bool: ...

    async def close(self) -> None: ...


class PubSubPublisher:
    """google.pubsub.v1.Publisher over one grpc.aio channel (create it on the serving loop)."""

    def __init__(self, emulator_host: str = "", target: str = PUBSUB_HOST) -> None:
        self.emulator_host = emulator_host
        self.target = emulator_host or target
        self._channel: grpc.aio.Channel | None = None
        self._metadata: dict[str, tuple[tuple[str, str], ...]] = {}  # per topic

    async def start(self) -> None:
        if self._channel is not None:
            return
        if self.emulator_host:
            self._channel = grpc.aio.insecure_channel(self.emulator_host, options=CHANNEL_OPTIONS)
        else:
            from google.pubsub_v1.services.publisher.transports.grpc_asyncio import (
                PublisherGrpcAsyncIOTransport,
            )

            self._channel = PublisherGrpcAsyncIOTransport.create_channel(
                self.target, options=CHANNEL_OPTIONS
            )
        channel = self._channel
        self._publish = channel.unary_unary(
            PUBLISH,
            request_serializer=None,  # requests arrive encoded (collector.wire)
            # the response (a message id per message) is left undecoded: an OK status is
            # the acknowledgement, and nothing reads the ids
            response_deserializer=None,
        )
        self._create_topic = channel.unary_unary(
            CREATE_TOPIC,
            request_serializer=Topic.SerializeToString,
            response_deserializer=Topic.FromString,
        )
        self._get_topic = channel.unary_unary(
            GET_TOPIC,
            request_serializer=GetTopicRequest.SerializeToString,
            response_deserializer=Topic.FromString,
        )

    async def publish(self, topic: str, request: bytes, timeout: float) -> None:
        """Send one encoded PublishRequest for `topic`; returns once Pub/Sub acknowledged
        it."""
        metadata = self._metadata.get(topic)
        if metadata is None:  # the collector's two topics: built once each
            metadata = (("x-goog-request-params", "topic=" + quote(topic, safe="")),)
            self._metadata[topic] = metadata
        try:
            await self._publish(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            raise PublishError(code.name, error.details() or "", code in RETRYABLE) from None

    async def ensure_topics(self, topics: list[str], timeout: float) -> None:
        """Create each topic unless it exists (local mode)."""
        for topic in topics:
            try:
                await self._create_topic(Topic(name=topic), timeout=timeout)
                log.info("created topic", extra={"topic": topic})
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise PublishError(
                        error.code().name, error.details() or "", error.code() in RETRYABLE
                    ) from None

    async def probe(self, topic: str, timeout: float) -> bool:
        """Is Pub/Sub reachable and does `topic` exist?"""
        try:
            await self._get_topic(GetTopicRequest(topic=topic), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return True

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
