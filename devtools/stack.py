"""The whole live path on one machine: Pub/Sub emulator, PostgreSQL, Kafka, the CDC capture
and bridge, the Beam job and the collector, each a child process in its own process group.

`LocalStack` starts them in dependency order and stops them in reverse (SIGTERM first, so the
collector, the bridge and Beam drain what they hold). Used by `make demo`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools.cdc.processes import (
    ChildProcess,
    KafkaService,
    spawn,
    start_bridge,
    start_capture,
    start_mock_kafka,
)
from devtools.services import (
    Service,
    ServiceError,
    free_port,
    start_pubsub_emulator,
    wait_for_port,
)
from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import LocalPostgres
from platform_core.settings import Settings
from streaming.beam.pubsub_admin import ensure_subscriptions


def _wait_for_log(child: ChildProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise ServiceError(f"{child.name} exited:\n{child.log_tail()}")
        if text in child.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise ServiceError(f"{child.name} not ready within {timeout:.0f}s:\n{child.log_tail()}")


@dataclass
class LocalStack:
    settings: Settings
    log_dir: Path
    say: Callable[[str], None] = print
    emulator: Service | None = None
    postgres: LocalPostgres | None = None
    kafka: KafkaService | None = None
    children: dict[str, ChildProcess] = field(default_factory=dict)
    collector_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        assert self.emulator is not None
        return {
            "PUBSUB_EMULATOR_HOST": self.emulator.address,
            "GCP_PROJECT": self.settings.gcp_project,
            "LAKE_DIR": str(self.settings.lake_path),
            "DATA_DIR": str(self.settings.data_path),
        }

    def start_transport(self) -> None:
        """Emulator with the Beam subscriptions, PostgreSQL (migrated), Kafka, Beam, collector."""

        s = self.settings
        self.emulator = start_pubsub_emulator(self.log_dir)
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulator.address
        ensure_subscriptions(
            s.gcp_project,
            [
                (s.pubsub_events_topic, s.pubsub_events_subscription),
                (s.pubsub_dead_letter_topic, s.pubsub_dead_letter_subscription),
                (s.pubsub_cdc_topic, s.pubsub_cdc_subscription),
            ],
        )
        self.say(f"      Pub/Sub emulator on {self.emulator.address}")
        self.postgres = LocalPostgres(s.data_path / "sourcedb").start()
        migrate(self.postgres.dsn())
        self.say(f"      PostgreSQL (wal_level=logical) at {self.postgres.address}")
        self.kafka = start_mock_kafka(self.log_dir)
        self.say(f"      Kafka (librdkafka mock cluster) at {self.kafka.address}")
        beam = spawn(
            "beam",
            "streaming.beam",
            [
                "--runner",
                "DirectRunner",
                "--create_subscriptions",
                "false",
                "--lake_dir",
                str(s.lake_path),
            ],
            self.log_dir,
            self.env,
        )
        self.children["beam"] = beam
        _wait_for_log(beam, "running on the DirectRunner", 120)
        self.say("      Beam job on the DirectRunner (Pub/Sub -> raw lake)")
        port = free_port()
        collector = spawn(
            "collector",
            "collector",
            ["--port", str(port)],
            self.log_dir,
            {**self.env, "COLLECTOR_PORT": str(port), "COLLECTOR_WRITE_KEYS": ""},
        )
        self.children["collector"] = collector
        wait_for_port("127.0.0.1", port, 60, collector.process)
        self.collector_url = f"http://127.0.0.1:{port}"
        self.say(f"      collector on {self.collector_url}")

    def start_cdc(self) -> None:
        """Capture (snapshot, then the slot) and bridge (Kafka -> Pub/Sub `cdc` -> Beam)."""
        assert self.postgres is not None and self.kafka is not None
        self.children["capture"] = start_capture(
            self.log_dir,
            self.postgres.dsn(),
            self.kafka.address,
            prefix=self.settings.cdc_topic_prefix,
            env=self.env,
        )
        self.children["bridge"] = start_bridge(
            self.log_dir,
            self.kafka.address,
            prefix=self.settings.cdc_topic_prefix,
            sink="pubsub",
            env=self.env,
        )
        self.say(
            "      CDC capture (pgoutput -> Debezium envelopes -> Kafka) and bridge "
            "(Kafka -> Pub/Sub cdc)"
        )

    def check_alive(self) -> None:
        for child in self.children.values():
            if not child.alive():
                raise ServiceError(f"{child.name} exited:\n{child.log_tail()}")

    def stop(self) -> None:
        # the edge first, so what is in flight drains towards raw
        for name in ("collector", "capture", "bridge", "beam"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop(timeout=60)
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
