"""The collector's promise: an event answered 2xx is in Pub/Sub or fsynced to the spool.

`Delivery.deliver` publishes a request's messages (one Publish RPC per topic, at most 1,000
messages and 9 MiB each; concurrent requests share RPCs, see `collector.coalescer`). If Pub/Sub does
not acknowledge them by the request's publish deadline (COLLECTOR_PUBLISH_TIMEOUT_S from when
the request started waiting, queueing behind other RPCs included), or is already known to be
unreachable, they are appended to the spool and fsynced (several concurrent requests share
one fsync: group commit) before the caller answers. A spool that is full raises a 503 with
Retry-After, so nothing is acknowledged that is not stored. A request Pub/Sub refuses for
good (not retryable) gets a 500 `publish_refused`; when it shared an RPC with other requests,
the RPC is re-sent in halves until the refused request is alone, so only it fails.

A background task replays the spool to Pub/Sub in order: it publishes the next records,
then persists the new position. A crash between those two steps re-publishes the records
once more: delivery is at-least-once, and staging deduplicates by `messageId`. While Pub/Sub
is unreachable the task probes it with growing backoff (up to 5 s) and new requests go
straight to the spool instead of waiting for a timeout each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from collector import wire
from collector.coalescer import Coalescer
from collector.config import (
    MAX_MESSAGES_PER_PUBLISH,
    MAX_PUBLISH_BYTES,
    RETRY_AFTER_S,
    CollectorConfig,
)
from collector.errors import ApiError
from collector.metrics import Metrics
from collector.publisher import Publisher, PublishError
from collector.spool import Record, Spool, SpoolError

log = logging.getLogger("collector.delivery")

MAX_BACKOFF_S = 5.0
REPLAY_BATCH = 16  # records published concurrently while Pub/Sub is healthy
STARTUP_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 2.0


class CollectorStartError(RuntimeError):
    """The collector cannot serve with this configuration (e.g. an invalid topic name)."""


class Delivery:
    def __init__(
        self, config: CollectorConfig, publisher: Publisher, spool: Spool, metrics: Metrics
    ) -> None:
        self.config = config
        self.publisher = publisher
        self.spool = spool
        self.metrics = metrics
        self.available = False
        self._topics_ready = not config.is_local
        self._queue: list[tuple[list[tuple[bytes, int]], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # new spool data (or stopping): replay now
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._coalescers: dict[str, Coalescer] = {}
        self._latencies: dict[str, Any] = {}  # publish_latency's children, per topic kind
        self._topic_kind = {
            config.events_topic_path: "events",
            config.dead_letter_topic_path: "dead_letter",
        }
        metrics.watch_spool(*self.spool_gauges())
        metrics.pubsub_available.set_function(lambda: 1.0 if self.available else 0.0)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._stopping = False
        await asyncio.to_thread(self.spool.open)
        await self.publisher.start()
        topics = [self.config.events_topic_path, self.config.dead_letter_topic_path]
        if self.config.is_local:
            await self._ensure_topics()
        else:
            found = [await self.publisher.probe(t, STARTUP_TIMEOUT_S) for t in topics]
            self.available = all(found)
            if not self.available:
                log.error(
                    "Pub/Sub topics not reachable at startup; events will be spooled until "
                    "they are",
                    extra={"topics": [t for t, ok in zip(topics, found, strict=True) if not ok]},
                )
        self._replayer = asyncio.create_task(self._replay_loop(), name="spool-replay")

    async def stop(self) -> None:
        """Finish the replay step in progress, flush spool writes, persist, close."""
        self._stopping = True
        if self._wake is not None and self._stop is not None:
            self._wake.set()
            self._stop.set()
        if self._replayer is not None:
            try:
                await asyncio.wait_for(self._replayer, self.config.publish_timeout_s + 5)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("spool replay did not stop in time; cancelled")
        if self._flusher is not None:
            await self._flusher
        await asyncio.to_thread(self.spool.close)
        await self.publisher.close()
        log.info(
            "collector stopped",
            extra={
                "spool_events": self.spool.pending_events,
                "spool_position": list(self.spool.position),
            },
        )
        if self.spool.pending_events:
            # acknowledged events stay on this volume until a collector (or
            # `python -m collector.drain`) opens it again: README, "Stranded spool"
            log.warning(
                "collector stopped with acknowledged events in its spool",
                extra={
                    "spool_dir": str(self.spool.directory),
                    "spool_events": self.spool.pending_events,
                    "spool_bytes": self.spool.pending_bytes,
                },
            )

    async def _ensure_topics(self) -> None:
        topics = [self.config.events_topic_path, self.config.dead_letter_topic_path]
        try:
            await self.publisher.ensure_topics(topics, STARTUP_TIMEOUT_S)
        except PublishError as error:
            if not error.retryable:  # e.g. an invalid topic name: waiting cannot help
                raise CollectorStartError(f"cannot create topics {topics}: {error}") from None
            log.warning(
                "could not create the topics yet; retrying in the background",
                extra={"error": str(error), "topics": topics},
            )
            self.available = False
            return
        self._topics_ready = True
        self.available = True

    # --- the request path ---------------------------------------------------------------

    async def deliver(self, events: list[bytes], dead_letters: list[bytes]) -> str:
        """Publish or spool encoded messages; returns "published" or "spooled". Raises
        ApiError: 503 when the spool cannot take what Pub/Sub did not, 500 when Pub/Sub
        refused this request for good."""
        parts = _chunks(self.config.events_topic_path, events) + _chunks(
            self.config.dead_letter_topic_path, dead_letters
        )
        if not parts:
            return "published"
        failed = parts
        if self.available:
            failed = await self._publish_parts(parts)
            if not failed:
                return "published"
        await self._spool([(wire.publish_request(t, m), len(m)) for t, m in failed])
        return "spooled"

    async def _publish_parts(
        self, parts: list[tuple[str, list[bytes]]]
    ) -> list[tuple[str, list[bytes]]]:
        """Hand each part to its topic's coalescer and wait until the publish deadline; the
        parts not acknowledged by then (to be spooled)."""
        futures = [self._coalescer(topic).submit(messages) for topic, messages in parts]
        try:
            # Limit check: the request's publish deadline (COLLECTOR_PUBLISH_TIMEOUT_S),
            # counted from now, so time spent queued behind other RPCs counts too.
            await asyncio.wait(futures, timeout=self.config.publish_timeout_s)
        finally:  # past the deadline (or cancelled): leave the queue, spool instead
            for (topic, _), future in zip(parts, futures, strict=True):
                if not future.done():
                    self._coalescer(topic).withdraw(future)
        failed: list[tuple[str, list[bytes]]] = []
        refused: PublishError | None = None
        reason = ""
        for part, future in zip(parts, futures, strict=True):
            if future.cancelled():
                failed.append(part)
                reason = reason or "publish deadline passed"
                continue
            error = future.exception()
            if isinstance(error, PublishError) and not error.retryable:
                refused = error
            elif isinstance(error, PublishError):
                failed.append(part)
                reason = reason or str(error)
            elif error is not None:
                raise error
        if refused is not None:
            raise ApiError(
                500,
                "publish_refused",
                "Pub/Sub refused the request",
                f"Pub/Sub refused this request's messages and retrying cannot help: {refused}",
            )
        if failed:
            self._set_available(False, reason)
        return failed

    def _coalescer(self, topic: str) -> Coalescer:
        coalescer = self._coalescers.get(topic)
        if coalescer is None:
            coalescer = self._coalescers[topic] = Coalescer(self._publish, topic)
        return coalescer

    async def _publish(self, topic: str, body: bytes, kind: str | None = None) -> None:
        kind = kind or self._topic_kind.get(topic, "other")
        started = time.perf_counter()
        try:
            await self.publisher.publish(topic, body, self.config.publish_timeout_s)
        except PublishError as error:
            self.metrics.publish_failures.labels(error.code).inc()
            raise
        latency = self._latencies.get(kind)
        if latency is None:  # "events", "dead_letter", "replay", "other": looked up once
            latency = self._latencies[kind] = self.metrics.publish_latency.labels(kind)
        latency.observe(time.perf_counter() - started)

    async def _spool(self, frames: list[tuple[bytes, int]]) -> None:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((frames, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="spool-flush")
        try:
            stored = await future
        except SpoolError as error:
            log.error("spool write failed", extra={"error": str(error)})
            raise ApiError(
                503,
                "spool_unavailable",
                "the collector cannot store events now",
                "Pub/Sub is unreachable and the local spool could not be written",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        if not stored:
            self.metrics.spool_full.inc()
            raise ApiError(
                503,
                "spool_full",
                "the collector is temporarily full",
                "Pub/Sub is unreachable and the local spool has reached "
                "COLLECTOR_SPOOL_MAX_MB; retry later",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.metrics.events_spooled.inc(sum(n for _, n in frames))
        if self._wake is not None:
            self._wake.set()

    async def _flush(self) -> None:
        """Group commit: every queued request's frames in one write + fsync."""
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await asyncio.to_thread(
                    self.spool.append_groups, [frames for frames, _ in batch]
                )
            except SpoolError as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), stored in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(stored)

    def _set_available(self, available: bool, reason: str = "") -> None:
        if available != self.available:
            if available:
                log.info("Pub/Sub reachable again")
            else:
                log.warning("Pub/Sub unavailable; spooling events", extra={"error": reason})
        self.available = available

    # --- readiness and lag --------------------------------------------------------------

    async def ready(self) -> dict[str, Any]:
        reachable = await self.publisher.probe(self.config.events_topic_path, PROBE_TIMEOUT_S)
        full = self.spool.is_full()
        return {
            "ready": reachable and not full,
            "pubsub_reachable": reachable,
            "spool_full": full,
            "spool_events": self.spool.pending_events,
        }

    def spool_gauges(self) -> tuple[Callable[[], float], ...]:
        """This process's spool gauges, in `Metrics.watch_spool`'s order."""
        return (
            lambda: self.spool.pending_events,
            lambda: self.spool.pending_bytes,
            lambda: self.spool.disk_bytes,
            self.replay_lag_seconds,
            lambda: self.spool.quarantine_bytes,
            lambda: (self.spool.oldest_written_at_ms() or 0) / 1000,
        )

    def replay_lag_seconds(self) -> float:
        oldest = self.spool.oldest_written_at_ms()
        return 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)

    # --- replay -------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        assert self._wake is not None and self._stop is not None
        backoff = 0.25
        while not self._stopping:
            try:
                progressed = await self._replay_step()
            except Exception:  # never let the replay task die
                log.exception("spool replay step failed")
                progressed = False
            if self._stopping:
                break
            if progressed:
                backoff = 0.25
                continue
            if self.available and not self.spool.pending_records:
                self._wake.clear()
                await _wait(self._wake, 1.0)
            else:
                await _wait(self._stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _replay_step(self) -> bool:
        """One round; True when it made progress (or nothing was waiting)."""
        if not self._topics_ready:
            await self._ensure_topics()
            return self._topics_ready
        if not self.spool.pending_records:
            if self.available:
                return False
            ok = await self.publisher.probe(self.config.events_topic_path, PROBE_TIMEOUT_S)
            self._set_available(ok)
            return ok
        # one record at a time while Pub/Sub is doubtful, so a failure re-sends nothing
        limit = REPLAY_BATCH if self.available else 1
        records = await asyncio.to_thread(self.spool.read, limit)
        if not records:
            return False
        results = await asyncio.gather(*(self._replay_record(r) for r in records))
        done: list[Record] = []
        for record, ok in zip(records, results, strict=True):
            if not ok:
                break
            done.append(record)
        if done:
            await asyncio.to_thread(self.spool.commit, done)
            self.metrics.events_replayed.inc(sum(r.events for r in done))
        if len(done) < len(records):
            self._set_available(False, "replay publish failed")
            return False
        self._set_available(True)
        return True

    async def _replay_record(self, record: Record) -> bool:
        """Publish one spooled record; True when it is done with (published or quarantined)."""
        if record.damage is not None:
            await self._quarantine(record, record.damage, "damaged on disk")
            return True
        try:
            topic = wire.topic_of(record.payload)
        except (ValueError, IndexError) as error:
            await self._quarantine(record, "foreign", f"not a PublishRequest: {error}")
            return True
        if topic not in self._topic_kind:  # only this collector's topics, whatever the bytes say
            await self._quarantine(record, "foreign", f"topic {topic!r} is not the collector's")
            return True
        try:
            await self._publish(topic, record.payload, "replay")
        except PublishError as error:
            if error.retryable:
                return False
            await self._quarantine(record, "refused", str(error))
            return True
        return True

    async def _quarantine(self, record: Record, kind: str, reason: str) -> None:
        """Keep a record Pub/Sub will never take, out of the replay path but on disk."""
        await asyncio.to_thread(self.spool.quarantine, record, reason)
        self.metrics.spool_quarantined.labels(kind).inc()


def _chunks(topic: str, messages: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """(topic, messages) parts within Pub/Sub's limits per request: at most 1,000 messages
    and MAX_PUBLISH_BYTES (every part is also one spool frame)."""
    if not messages:
        return []
    if len(messages) <= MAX_MESSAGES_PER_PUBLISH and (
        sum(map(len, messages)) + _FRAMING * len(messages) <= MAX_PUBLISH_BYTES
    ):
        return [(topic, messages)]
    parts: list[tuple[str, list[bytes]]] = []
    current: list[bytes] = []
    size = 0
    for message in messages:
        if current and (
            len(current) == MAX_MESSAGES_PER_PUBLISH
            or size + len(message) + _FRAMING > MAX_PUBLISH_BYTES
        ):
            parts.append((topic, current))
            current, size = [], 0
        current.append(message)
        size += len(message) + _FRAMING
    parts.append((topic, current))
    return parts


_FRAMING = 6  # bytes a PublishRequest adds around each message (tag + length varint)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
