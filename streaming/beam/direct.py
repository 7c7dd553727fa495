"""Running the job locally: Beam's bundle-based DirectRunner in streaming mode, made usable.

Facts about the DirectRunner (apache-beam 2.77) this module works around, all measured here:

- `DirectRunner` first tries the Prism runner, a Go binary downloaded on first use (not
  possible offline) and without Pub/Sub support; we run `BundleBasedDirectRunner` directly.
- Its executor has ONE worker thread. Every `ReadFromPubSub` does a blocking pull of at most
  10 messages with a 30 s deadline, and the Pub/Sub emulator holds an empty pull until about
  one second before the deadline. With three subscriptions, an idle one (say `cdc`) stalled the
  whole job for ~29 s per round, and processing-time timers (the micro-batch flush) could not
  fire meanwhile. `tune_pubsub_reads` makes each pull take up to `max_messages` and wait at
  most `wait_seconds` on an idle subscription (the emulator still answers at once when a
  message arrives).
- It acknowledges messages as soon as they are pulled, before processing; it ignores id_label.
  Rows buffered in a micro-batch when the process is killed (SIGKILL) are lost to raw, and a
  message may be delivered twice (Pub/Sub is at-least-once); staging deduplicates events by
  messageId and CDC rows by pk + LSN, so duplicates never change results. On SIGTERM/SIGINT
  the entry point drains instead: `DRAIN` stops the pulls (unpulled messages stay in the
  subscription), the flush timers write what is buffered, and only then the job is cancelled.
  Dataflow has none of these limits: it acknowledges only after a bundle's output is durably
  committed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

_LOG = logging.getLogger(__name__)

DRAIN = threading.Event()


@dataclass
class PullTuning:
    max_messages: int = 500
    wait_seconds: float = 0.25


TUNING = PullTuning()
# The emulator (and Pub/Sub's long poll) answers an empty pull about this long before the deadline.
_EMULATOR_DEADLINE_MARGIN = 1.0


class _TunedSubscriber:
    """Wraps the DirectRunner's SubscriberClient: bigger, shorter pulls; no pulls while draining."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def pull(self, subscription: str, max_messages: int = 10, timeout: float = 30) -> Any:
        from google.api_core import exceptions
        from google.cloud.pubsub_v1.types import PullResponse

        if DRAIN.is_set():
            time.sleep(TUNING.wait_seconds)
            return PullResponse()
        try:
            return self._client.pull(
                subscription=subscription,
                max_messages=TUNING.max_messages,
                timeout=_EMULATOR_DEADLINE_MARGIN + TUNING.wait_seconds,
            )
        except (exceptions.DeadlineExceeded, exceptions.RetryError):
            return PullResponse()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def tune_pubsub_reads(max_messages: int = 500, wait_seconds: float = 0.25) -> bool:
    """Patch the DirectRunner's Pub/Sub read (in this process only). False if Beam changed."""
    from apache_beam.runners.direct import transform_evaluator

    TUNING.max_messages = max_messages
    TUNING.wait_seconds = wait_seconds
    evaluator = getattr(transform_evaluator, "_PubSubReadEvaluator", None)
    original = getattr(evaluator, "_get_subscriber_client", None)
    if evaluator is None or original is None:
        _LOG.warning(
            "this Beam version has no _PubSubReadEvaluator._get_subscriber_client; "
            "Pub/Sub reads keep Beam's defaults (10 messages, 30 s pulls)"
        )
        return False
    if getattr(original, "_tuned", False):
        return True
    raw = original.__func__

    def _get_subscriber_client(cls: Any, transform: Any) -> Any:
        return _TunedSubscriber(raw(cls, transform))

    _get_subscriber_client._tuned = True  # type: ignore[attr-defined]
    evaluator._get_subscriber_client = classmethod(_get_subscriber_client)
    return True


def direct_runner() -> Any:
    """The bundle-based DirectRunner (streaming, processing-time timers, Pub/Sub reads)."""
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

    return BundleBasedDirectRunner()
