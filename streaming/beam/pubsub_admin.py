"""Create the topics and subscriptions the job reads (idempotent).

Locally the emulator starts empty, so the entry point creates them (`--create_subscriptions`,
on by default for the DirectRunner). A subscription only receives messages published after it
exists: create it before traffic starts (`python -m streaming.beam --setup_only`). In
production Terraform owns them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable


def ensure_subscriptions(
    project: str, pairs: Iterable[tuple[str, str]], ack_deadline_seconds: int = 60
) -> list[str]:
    """Create each (topic, subscription) that is missing; returns the subscription paths."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    paths = []
    try:
        for topic, subscription in pairs:
            topic_path = (
                topic if topic.startswith("projects/") else publisher.topic_path(project, topic)
            )
            sub_path = (
                subscription
                if subscription.startswith("projects/")
                else (subscriber.subscription_path(project, subscription))
            )
            with contextlib.suppress(exceptions.AlreadyExists):
                publisher.create_topic(name=topic_path)
            with contextlib.suppress(exceptions.AlreadyExists):
                subscriber.create_subscription(
                    name=sub_path, topic=topic_path, ack_deadline_seconds=ack_deadline_seconds
                )
            paths.append(sub_path)
    finally:
        subscriber.close()
    return paths
