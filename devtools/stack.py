"""The whole live path on one machine: Pub/Sub emulator, PostgreSQL, Kafka, the CDC capture
and bridge, the Beam job and the collector, each a child process in its own process group.

`LocalStack` starts them in dependency order, one named step each (`make dev` runs the steps
itself, to overlap them with its backfill; `make demo` calls `start_transport` and
`start_cdc`), restarts a service process that died (`restart`), and stops everything in
reverse (SIGTERM first, so the collector, the bridge and Beam drain what they hold), within a
deadline.
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

# stop order: the edge first, so what is in flight drains towards raw
DRAIN_ORDER = ("collector", "capture", "bridge", "beam")
# Beam flushes its micro-batches every BEAM_FLUSH_SECONDS (2 s by default): what the bridge
# published just before it stopped is pulled and written before Beam gets its SIGTERM
BEAM_SETTLE_SECONDS = 2.5


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
    collector_port: int | None = None  # None: a free port
    postgres_port: int | None = None  # None: a free port
    metrics: bool = False  # capture and bridge serve Prometheus metrics on free ports
    postgres_settings: dict[str, str] = field(default_factory=dict)  # e.g. synchronous_commit
    emulator: Service | None = None
    postgres: LocalPostgres | None = None
    kafka: KafkaService | None = None
    children: dict[str, ChildProcess] = field(default_factory=dict)
    collector_url: str = ""
    metrics_urls: dict[str, str] = field(default_factory=dict)
    _starters: dict[str, Callable[[], ChildProcess]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        assert self.emulator is not None
        return {
            "PUBSUB_EMULATOR_HOST": self.emulator.address,
            "GCP_PROJECT": self.settings.gcp_project,
            "LAKE_DIR": str(self.settings.lake_path),
            "DATA_DIR": str(self.settings.data_path),
        }

    # --- the steps -----------------------------------------------------------------------

    def start_transport(self) -> None:
        """Emulator with the Beam subscriptions, PostgreSQL (migrated), Kafka, Beam, collector."""
        self.start_emulator()
        self.start_postgres()
        self.start_kafka()
        self.start_beam()
        self.start_collector()

    def start_emulator(self) -> None:
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

    def start_postgres(self) -> None:
        self.postgres = LocalPostgres(
            self.settings.data_path / "sourcedb",
            port=self.postgres_port,
            settings=dict(self.postgres_settings),
        ).start()
        migrate(self.postgres.dsn())
        self.say(f"      PostgreSQL (wal_level=logical) at {self.postgres.address}")

    def start_kafka(self) -> None:
        self.kafka = start_mock_kafka(self.log_dir, self.settings.kafka_address_file)
        self.say(f"      Kafka (librdkafka mock cluster) at {self.kafka.address}")

    def start_beam(self) -> None:
        args = ["--runner", "DirectRunner", "--create_subscriptions", "false"]
        args += ["--lake_dir", str(self.settings.lake_path)]
        self._run("beam", lambda: spawn("beam", "streaming.beam", args, self.log_dir, self.env))
        _wait_for_log(self.children["beam"], "running on the DirectRunner", 120)
        self.say("      Beam job on the DirectRunner (Pub/Sub -> raw lake)")

    def start_collector(self) -> None:
        port = self.collector_port or free_port()
        env = {**self.env, "COLLECTOR_PORT": str(port), "COLLECTOR_WRITE_KEYS": ""}
        self._run(
            "collector",
            lambda: spawn("collector", "collector", ["--port", str(port)], self.log_dir, env),
        )
        wait_for_port("127.0.0.1", port, 60, self.children["collector"].process)
        self.collector_url = f"http://127.0.0.1:{port}"
        self.say(f"      collector on {self.collector_url}")

    def start_cdc(self) -> None:
        """Capture (snapshot, then the slot) and bridge (Kafka -> Pub/Sub `cdc` -> Beam)."""
        assert self.postgres is not None and self.kafka is not None
        dsn, bootstrap = self.postgres.dsn(), self.kafka.address
        prefix = self.settings.cdc_topic_prefix
        capture_extra, bridge_extra = self._metrics_args("capture"), self._metrics_args("bridge")
        self._run(
            "capture",
            lambda: start_capture(
                self.log_dir, dsn, bootstrap, prefix=prefix, extra=capture_extra, env=self.env
            ),
        )
        self._run(
            "bridge",
            lambda: start_bridge(
                self.log_dir,
                bootstrap,
                prefix=prefix,
                sink="pubsub",
                extra=bridge_extra,
                env=self.env,
            ),
        )
        self.say(
            "      CDC capture (pgoutput -> Debezium envelopes -> Kafka) and bridge "
            "(Kafka -> Pub/Sub cdc)"
        )

    def _metrics_args(self, name: str) -> list[str]:
        if not self.metrics:
            return []
        port = free_port()
        self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
        return ["--metrics-port", str(port)]

    def _run(self, name: str, starter: Callable[[], ChildProcess]) -> None:
        self._starters[name] = starter
        self.children[name] = starter()

    # --- supervision ---------------------------------------------------------------------

    def check_alive(self) -> None:
        for child in self.children.values():
            if not child.alive():
                raise ServiceError(f"{child.name} exited:\n{child.log_tail()}")

    def exited(self) -> list[ChildProcess]:
        """The service processes that died (the stand-ins for cloud services are checked by
        their owners: the emulator, PostgreSQL and Kafka)."""
        dead = [c for c in self.children.values() if not c.alive()]
        if self.kafka is not None and not self.kafka.child.alive():
            dead.append(self.kafka.child)
        for service in (self.emulator, self.postgres):
            process = service.process if service is not None else None
            if process is not None and process.poll() is not None:
                name = "pubsub-emulator" if service is self.emulator else "postgres"
                dead.append(ChildProcess(name, process, Path(service.log_path or "")))
        return dead

    def restart(self, name: str) -> ChildProcess:
        """Start a service process again, with the arguments it had (collector, Beam, the
        capture or the bridge)."""
        child = self._starters[name]()
        self.children[name] = child
        return child

    # --- stopping ------------------------------------------------------------------------

    def stop(self, timeout: float = 120) -> None:
        """Drain and stop the services, then Kafka, PostgreSQL and the emulator, within
        `timeout` seconds (SIGKILL for what is left when its share runs out)."""
        deadline = time.monotonic() + timeout
        for name in DRAIN_ORDER:
            child = self.children.pop(name, None)
            if child is None:
                continue
            if name == "beam" and child.alive():
                time.sleep(min(BEAM_SETTLE_SECONDS, max(0.0, deadline - time.monotonic() - 8)))
            child.stop(timeout=_share(deadline, reserve=6))
        for name in list(self.children):  # anything else started through _run
            self.children.pop(name).stop(timeout=_share(deadline, reserve=6))
        if self.kafka is not None:
            self.kafka.stop(_share(deadline, reserve=4))
        if self.postgres is not None:
            self.postgres.stop(_share(deadline, reserve=2))
        if self.emulator is not None:
            self.emulator.stop(_share(deadline, reserve=0))

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _share(deadline: float, reserve: float) -> float:
    """Seconds a step may wait for a graceful stop, keeping `reserve` for the steps after it
    (at least 1 s: then SIGKILL)."""
    return max(1.0, deadline - time.monotonic() - reserve)
