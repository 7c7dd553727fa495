"""`python -m devtools.cdc.mock_kafka`: host librdkafka's mock Kafka cluster in a process of
its own, so the capture and the bridge can be killed and restarted while Kafka stays up.

The mock cluster is a real Kafka-protocol broker held in memory (produce, fetch, consumer
groups, offset commits, idempotent producers). It prints ``bootstrap=<host:port>`` on stdout,
writes the address to ``--address-file`` (default ``DATA_DIR/cdc/kafka.bootstrap``) and
stays up until SIGTERM/SIGINT. Topics are created on first use with 4 partitions.

A consumer group is formed as soon as its first member joins: the cluster's
`group.initial.rebalance.delay.ms` is 0, as Kafka's own development configuration sets it
(a broker's default, 3 s, lets several members of a starting application join one rebalance;
here every bridge or reader started by a test or the demo waited those 3 s for nothing).
librdkafka's Python client does not expose the mock cluster's settings, so the cluster is
created through librdkafka's C API (`rdkafka_mock.h`), from the library the client loaded.

Limits worth knowing: it keeps at most 5 MB (or 100,000 message sets) per partition and
drops the oldest data beyond that, like a short retention. Producers compress (zstd) and the
bridge fails loudly (auto.offset.reset=error) rather than skip data that was dropped.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
from pathlib import Path

from confluent_kafka import cimpl

from platform_core.settings import get_settings

_PRODUCER = 0  # rd_kafka_type_t RD_KAFKA_PRODUCER
_CONF_OK = 0  # rd_kafka_conf_res_t RD_KAFKA_CONF_OK
_ERRSTR_SIZE = 512


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent_kafka loaded (its extension's symbols and dependencies), with
    the signatures of the calls made here."""
    lib = ctypes.CDLL(cimpl.__file__)
    pointer, text = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_conf_new.restype = pointer
    lib.rd_kafka_conf_set.argtypes = [pointer, text, text, text, ctypes.c_size_t]
    lib.rd_kafka_conf_destroy.argtypes = [pointer]
    lib.rd_kafka_new.restype = pointer
    lib.rd_kafka_new.argtypes = [ctypes.c_int, pointer, text, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [pointer]
    lib.rd_kafka_mock_cluster_new.restype = pointer
    lib.rd_kafka_mock_cluster_new.argtypes = [pointer, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [pointer]
    lib.rd_kafka_mock_cluster_bootstraps.restype = text
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [pointer]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [pointer, ctypes.c_int32]
    return lib


class MockCluster:
    """A mock cluster of `brokers` brokers in this process (owned by a client handle of its
    own), up until `close`."""

    def __init__(self, brokers: int = 1, rebalance_delay_ms: int = 0) -> None:
        lib = self._lib = _librdkafka()
        error = ctypes.create_string_buffer(_ERRSTR_SIZE)
        conf = lib.rd_kafka_conf_new()
        # log_level 4: warnings and errors (not the owner's notice that it has no bootstrap
        # servers of its own, which it does not need)
        for name, value in ((b"client.id", b"mock-kafka-host"), (b"log_level", b"4")):
            if lib.rd_kafka_conf_set(conf, name, value, error, _ERRSTR_SIZE) != _CONF_OK:
                lib.rd_kafka_conf_destroy(conf)
                raise RuntimeError(f"mock Kafka: {error.value.decode()}")
        self._handle = lib.rd_kafka_new(_PRODUCER, conf, error, _ERRSTR_SIZE)  # owns conf
        if not self._handle:
            lib.rd_kafka_conf_destroy(conf)
            raise RuntimeError(f"mock Kafka: {error.value.decode()}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            lib.rd_kafka_destroy(self._handle)
            raise RuntimeError("mock Kafka: librdkafka could not create the mock cluster")
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, rebalance_delay_ms)
        self.bootstrap: str = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._lib.rd_kafka_destroy(self._handle)
            self._cluster = self._handle = None


def start_cluster(brokers: int = 1) -> tuple[MockCluster, str]:
    """A mock cluster in this process, and its bootstrap address (up until the cluster's
    `close`)."""
    cluster = MockCluster(brokers)
    return cluster, cluster.bootstrap


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
    cluster, bootstrap = start_cluster(args.brokers)
    address_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = address_file.with_name(f".{address_file.name}.{os.getpid()}")
    tmp.write_text(bootstrap + "\n")
    os.replace(tmp, address_file)
    print(f"bootstrap={bootstrap}", flush=True)
    try:
        stop.wait()  # the cluster runs on librdkafka's own threads
    finally:
        cluster.close()
        if address_file.exists() and address_file.read_text().strip() == bootstrap:
            address_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
