"""`python -m devtools.cdc.mock_kafka`: host librdkafka's mock Kafka cluster in a process of
its own, so the capture and the bridge can be killed and restarted while Kafka stays up.

The mock cluster is a real Kafka-protocol broker held in memory (produce, fetch, consumer
groups, offset commits, idempotent producers). It prints ``bootstrap=<host:port>`` on stdout,
writes the address to ``--address-file`` (default ``DATA_DIR/cdc/kafka.bootstrap``) and
stays up until SIGTERM/SIGINT. Topics are created on first use with 4 partitions.

Limits worth knowing: it keeps at most 5 MB (or 100,000 message sets) per partition and
drops the oldest data beyond that, like a short retention. Producers compress (zstd) and the
bridge fails loudly (auto.offset.reset=error) rather than skip data that was dropped.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from confluent_kafka import Producer

from platform_core.settings import get_settings


def start_cluster(brokers: int = 1) -> tuple[Producer, str]:
    """A mock cluster owned by a client handle in this process, and its bootstrap address."""
    handle = Producer({"test.mock.num.brokers": brokers, "client.id": "mock-kafka-host"})
    metadata = handle.list_topics(timeout=10)
    addresses = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    if not addresses:
        raise RuntimeError("the mock cluster reported no brokers")
    return handle, ",".join(addresses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.cdc.mock_kafka",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--address-file", type=Path)
    args = parser.parse_args(argv)
    address_file = args.address_file
    if address_file is None:
        address_file = get_settings().kafka_address_file
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    handle, bootstrap = start_cluster(args.brokers)
    address_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = address_file.with_name(f".{address_file.name}.{os.getpid()}")
    tmp.write_text(bootstrap + "\n")
    os.replace(tmp, address_file)
    print(f"bootstrap={bootstrap}", flush=True)
    try:
        while not stop.wait(1.0):
            handle.poll(0)
    finally:
        if address_file.exists() and address_file.read_text().strip() == bootstrap:
            address_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
