"""`python -m collector.drain [--spool-dir DIR] [--timeout S]`: replay a collector's spool to
Pub/Sub and exit once it is empty.

For a stranded spool: a collector pod removed (scale-down, node loss) while Pub/Sub was
unreachable leaves acknowledged events on its volume. Run this with the volume mounted (a
one-off Job, or on the machine that holds the directory), with the same settings as the
collector (GCP_PROJECT, PUBSUB_EVENTS_TOPIC, PUBSUB_DEAD_LETTER_TOPIC, PUBSUB_EMULATOR_HOST
locally). It takes the spool's lock, so it cannot run beside a collector that owns the same
directory; it replays exactly as a collector would (in order, at-least-once, damaged or
refused records to quarantine/).

Exit status: 0 when the spool is empty, 1 when events remain at the timeout (Pub/Sub still
unreachable: run it again later), 2 when it cannot start (settings, spool in use).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from collector.config import CollectorConfig, CollectorConfigError
from collector.delivery import Delivery
from collector.logs import configure
from collector.metrics import Metrics
from collector.publisher import Publisher, PubSubPublisher
from collector.spool import Spool, SpoolError
from platform_core.settings import SettingsError, get_settings

log = logging.getLogger("collector.drain")

POLL_S = 0.5


async def drain(config: CollectorConfig, publisher: Publisher, timeout_s: float) -> int:
    """Replay the spool of `config` until it is empty or `timeout_s` passed; the number of
    records still in it."""
    spool = Spool(config.spool_dir, config.spool_max_bytes)
    delivery = Delivery(config, publisher, spool, Metrics())
    await delivery.start()
    started = spool.pending_events
    log.info(
        "draining spool",
        extra={
            "spool_dir": str(config.spool_dir),
            "events": started,
            "records": spool.pending_records,
        },
    )
    deadline = time.monotonic() + timeout_s
    try:
        while spool.pending_records and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
    finally:
        await delivery.stop()
    log.info(
        "spool drained" if not spool.pending_records else "spool not drained yet",
        extra={
            "spool_dir": str(config.spool_dir),
            "replayed_events": started - spool.pending_events,
            "remaining_events": spool.pending_events,
            "quarantine_bytes": spool.quarantine_bytes,
        },
    )
    return spool.pending_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.drain", description=__doc__)
    parser.add_argument("--spool-dir", type=Path, help="default COLLECTOR_SPOOL_DIR")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    args = parser.parse_args(argv)
    configure("INFO")
    try:
        config = CollectorConfig.from_settings(get_settings())
    except (CollectorConfigError, SettingsError) as error:
        log.error("cannot drain: %s", error)
        return 2
    if args.spool_dir is not None:
        config = replace(config, spool_dir=args.spool_dir.resolve())
    try:
        remaining = asyncio.run(drain(config, PubSubPublisher(config.emulator_host), args.timeout))
    except SpoolError as error:
        log.error("cannot drain: %s", error)
        return 2
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
