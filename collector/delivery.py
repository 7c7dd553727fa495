"""The collector's promise: an event answered 2xx is in Pub/Sub or fsynced to the spool.

`Delivery.deliver` publishes a request's messages (one Publish RPC per topic, at most 1,000
messages each). If Pub/Sub does not acknowledge them within the publish timeout, or is
already known to be unreachable, they are appended to the spool and fsynced (several
concurrent requests share one fsync: group commit) before the caller answers. A spool that
is full raises a 503 with Retry-After, so nothing is acknowledged that is not stored.

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
import os
import time
from pathlib import Path
from typing import Any

from collector import wire
from collector.config import MAX_MESSAGES_PER_PUBLISH, RETRY_AFTER_S, CollectorConfig
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
        self._coalescers: dict[str, _Coalescer] = {}
        self._topic_kind = {
            config.events_topic_path: "events",
            config.dead_letter_topic_path: "dead_letter",
        }
        metrics.watch_spool(
            lambda: self.spool.pending_events,
            lambda: self.spool.pending_bytes,
            lambda: self.spool.disk_bytes,
            self.replay_lag_seconds,
        )
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
        ApiError(503) when the spool cannot take what Pub/Sub did not."""
        parts = _chunks(self.config.events_topic_path, events) + _chunks(
            self.config.dead_letter_topic_path, dead_letters
        )
        if not parts:
            return "published"
        failed = parts
        if self.available:
            if len(parts) == 1:
                results: list[Any] = [await self._send_caught(*parts[0])]
            else:
                results = await asyncio.gather(*(self._send_caught(t, m) for t, m in parts))
            failed = []
            first_error: PublishError | None = None
            for part, result in zip(parts, results, strict=True):
                if isinstance(result, PublishError):
                    if not result.retryable:
                        raise RuntimeError(f"Pub/Sub refused a publish request: {result}")
                    failed.append(part)
                    first_error = first_error or result
            if not failed:
                return "published"
            self._set_available(False, str(first_error))
        await self._spool([(wire.publish_request(t, m), len(m)) for t, m in failed])
        return "spooled"

    async def _send_caught(self, topic: str, messages: list[bytes]) -> PublishError | None:
        coalescer = self._coalescers.get(topic)
        if coalescer is None:
            coalescer = self._coalescers[topic] = _Coalescer(self, topic)
        try:
            await coalescer.send(messages)
        except PublishError as error:
            return error
        return None

    async def _publish(self, topic: str, body: bytes, kind: str | None = None) -> list[str]:
        kind = kind or self._topic_kind.get(topic, "other")
        started = time.perf_counter()
        try:
            ids = await self.publisher.publish(topic, body, self.config.publish_timeout_s)
        except PublishError as error:
            self.metrics.publish_failures.labels(error.code).inc()
            raise
        self.metrics.publish_latency.labels(kind).observe(time.perf_counter() - started)
        return ids

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
        if record.corrupt:
            await asyncio.to_thread(self._quarantine, record, "payload fails its CRC")
            return True
        try:
            topic = wire.topic_of(record.payload)
        except (ValueError, IndexError) as error:
            await asyncio.to_thread(self._quarantine, record, f"not a PublishRequest: {error}")
            return True
        try:
            await self._publish(topic, record.payload, "replay")
        except PublishError as error:
            if error.retryable:
                return False
            await asyncio.to_thread(self._quarantine, record, str(error))
            return True
        return True

    def _quarantine(self, record: Record, reason: str) -> None:
        """Keep a record Pub/Sub will never take, out of the replay path but on disk."""
        folder = Path(self.spool.directory) / "quarantine"
        folder.mkdir(exist_ok=True)
        path = folder / f"{record.segment:012d}-{record.offset:012d}.pb"
        with open(path, "wb") as handle:
            handle.write(record.payload)
            handle.flush()
            os.fsync(handle.fileno())
        self.metrics.spool_quarantined.inc()
        log.error(
            "spool record quarantined",
            extra={"path": str(path), "reason": reason, "events": record.events},
        )


def _chunks(topic: str, messages: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """(topic, messages) parts of at most 1,000 messages (Pub/Sub's limit per request)."""
    return [
        (topic, messages[i : i + MAX_MESSAGES_PER_PUBLISH])
        for i in range(0, len(messages), MAX_MESSAGES_PER_PUBLISH)
    ]


class _Coalescer:
    """Merges the messages of concurrent requests for one topic into shared Publish RPCs.

    At most `MAX_IN_FLIGHT` RPCs per topic are outstanding; requests that arrive meanwhile
    wait and leave together in the next RPC (up to 1,000 messages / 9 MB). Under light load
    every request is sent at once, alone; under heavy load Pub/Sub gets fewer, larger
    requests, which is what it (and the emulator) handles best. Each request still learns
    whether *its* messages were acknowledged; when an RPC fails, it and every waiting request
    fail with the error, and each caller spools its own messages."""

    MAX_IN_FLIGHT = 4
    MAX_BYTES = 9 * 1024 * 1024

    def __init__(self, delivery: Delivery, topic: str) -> None:
        self.delivery = delivery
        self.topic = topic
        self.queue: list[tuple[list[bytes], int, asyncio.Future[None]]] = []
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, messages: list[bytes]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((messages, sum(len(m) for m in messages), future))
        self._drain()
        await future

    def _drain(self) -> None:
        while self.queue and self.in_flight < self.MAX_IN_FLIGHT:
            group = [self.queue.pop(0)]
            count, size = len(group[0][0]), group[0][1]
            while self.queue:
                messages, bytes_, _ = self.queue[0]
                if count + len(messages) > MAX_MESSAGES_PER_PUBLISH or size + bytes_ > (
                    self.MAX_BYTES
                ):
                    break
                group.append(self.queue.pop(0))
                count += len(messages)
                size += bytes_
            self.in_flight += 1
            task = asyncio.create_task(self._rpc(group))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _rpc(self, group: list[tuple[list[bytes], int, asyncio.Future[None]]]) -> None:
        try:
            messages = group[0][0] if len(group) == 1 else [m for g in group for m in g[0]]
            await self.delivery._publish(self.topic, wire.publish_request(self.topic, messages))
        except Exception as error:  # handed to every request of the group
            waiting = group
            if isinstance(error, PublishError):  # Pub/Sub is in trouble: nobody waits more
                waiting = group + self.queue
                self.queue = []
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(error)
        except BaseException:  # cancelled (shutdown): so are the requests waiting on it
            for _, _, future in group:
                future.cancel()
            raise
        else:
            for _, _, future in group:
                if not future.done():
                    future.set_result(None)
        finally:
            self.in_flight -= 1
            self._drain()


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
