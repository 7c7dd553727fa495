"""Every setting of the platform, read from the environment in this one module.

`PLATFORM_ENV` picks the deployment: ``local`` (default; DuckDB + Parquet lake, Pub/Sub
emulator, librdkafka mock cluster, deterministic narrator, console alerts) or ``gcp``
(BigQuery, Pub/Sub, Kafka, Vertex AI Gemini, Slack). Nothing here touches the network or a
secret at import time: `get_settings()` reads the environment when first called.

Each field lists its environment variable and default; `.env.example` and the README mirror
this table, and a test keeps the three in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

ENVIRONMENTS = ("local", "gcp")


class SettingsError(ValueError):
    """A setting has a value the platform cannot use."""


def _setting(env: str, default: str, doc: str) -> str:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    platform_env: str = _setting("PLATFORM_ENV", "local", "Deployment: local or gcp")
    data_dir: str = _setting(
        "DATA_DIR", "", "Local state (raw lake, DuckDB file, spool); default ./data"
    )
    lake_dir: str = _setting("LAKE_DIR", "", "Local raw lake (Parquet); default DATA_DIR/lake")
    duckdb_path: str = _setting(
        "DUCKDB_PATH", "", "Local warehouse file; default DATA_DIR/warehouse.duckdb"
    )
    dbt_target: str = _setting(
        "DBT_TARGET", "", "dbt target; default local (PLATFORM_ENV=local) or prod (gcp)"
    )
    gcp_project: str = _setting("GCP_PROJECT", "local-project", "GCP project id")
    gcp_region: str = _setting("GCP_REGION", "europe-west1", "GCP region (Dataflow, Vertex AI)")
    bq_location: str = _setting("BQ_LOCATION", "EU", "BigQuery dataset location")
    bq_raw_dataset: str = _setting("BQ_RAW_DATASET", "raw", "BigQuery dataset of the raw layer")
    pubsub_emulator_host: str = _setting(
        "PUBSUB_EMULATOR_HOST", "", "host:port of the Pub/Sub emulator (local)"
    )
    pubsub_events_topic: str = _setting("PUBSUB_EVENTS_TOPIC", "events", "Topic for events")
    pubsub_dead_letter_topic: str = _setting(
        "PUBSUB_DEAD_LETTER_TOPIC", "events-dead-letter", "Topic for rejected events"
    )
    pubsub_cdc_topic: str = _setting("PUBSUB_CDC_TOPIC", "cdc", "Topic for raw CDC rows")
    pubsub_events_subscription: str = _setting(
        "PUBSUB_EVENTS_SUBSCRIPTION", "events-raw", "Subscription of the events topic read by Beam"
    )
    pubsub_dead_letter_subscription: str = _setting(
        "PUBSUB_DEAD_LETTER_SUBSCRIPTION",
        "events-dead-letter-raw",
        "Subscription of the dead-letter topic read by Beam",
    )
    pubsub_cdc_subscription: str = _setting(
        "PUBSUB_CDC_SUBSCRIPTION", "cdc-raw", "Subscription of the CDC topic read by Beam"
    )
    beam_flush_seconds: str = _setting(
        "BEAM_FLUSH_SECONDS",
        "2",
        "Local sink: flush a table's buffered rows after this many seconds",
    )
    beam_flush_rows: str = _setting(
        "BEAM_FLUSH_ROWS", "5000", "Local sink: flush a table's buffered rows at this many rows"
    )
    raw_sensor_interval_seconds: str = _setting(
        "RAW_SENSOR_INTERVAL_SECONDS", "10", "Minimum interval of the raw tables sensor"
    )
    compaction_min_age_seconds: str = _setting(
        "COMPACTION_MIN_AGE_SECONDS", "600", "Compaction only merges raw files older than this"
    )
    collector_host: str = _setting("COLLECTOR_HOST", "127.0.0.1", "Collector bind address")
    collector_port: str = _setting("COLLECTOR_PORT", "8080", "Collector port")
    collector_write_keys: str = _setting(
        "COLLECTOR_WRITE_KEYS",
        "",
        "key=source pairs, comma separated; local default: a demo key per source",
    )
    collector_spool_dir: str = _setting(
        "COLLECTOR_SPOOL_DIR", "", "Durable spool; default DATA_DIR/spool"
    )
    collector_spool_max_mb: str = _setting(
        "COLLECTOR_SPOOL_MAX_MB", "512", "Spool size limit before answering 503"
    )
    collector_publish_timeout_s: str = _setting(
        "COLLECTOR_PUBLISH_TIMEOUT_S",
        "5",
        "Seconds a collector request waits for Pub/Sub before spooling its events",
    )
    collector_cors_origins: str = _setting(
        "COLLECTOR_CORS_ORIGINS", "", "Browser origins allowed by CORS, comma separated"
    )
    kafka_bootstrap_servers: str = _setting(
        "KAFKA_BOOTSTRAP_SERVERS", "", "Kafka bootstrap servers (CDC)"
    )
    cdc_topic_prefix: str = _setting("CDC_TOPIC_PREFIX", "shop", "Debezium topic prefix")
    source_db_dsn: str = _setting("SOURCE_DB_DSN", "", "DSN of the shop's PostgreSQL")
    slack_webhook_url: str = _setting("SLACK_WEBHOOK_URL", "", "Slack incoming webhook URL")
    slack_bot_token: str = _setting("SLACK_BOT_TOKEN", "", "Slack bot token (chat.postMessage)")
    slack_channel: str = _setting("SLACK_CHANNEL", "#data-alerts", "Channel for the bot token")
    monitoring_duckdb_path: str = _setting(
        "MONITORING_DUCKDB_PATH",
        "",
        "Local data-quality history (DuckDB file); default DATA_DIR/monitoring.duckdb",
    )
    bq_monitoring_dataset: str = _setting(
        "BQ_MONITORING_DATASET", "monitoring", "BigQuery dataset of the data-quality history"
    )
    llm_provider: str = _setting(
        "LLM_PROVIDER", "auto", "auto, vertex or deterministic (auto: vertex on gcp)"
    )
    vertex_model: str = _setting("VERTEX_MODEL", "gemini-2.5-flash", "Gemini model name")
    llm_timeout_seconds: str = _setting(
        "LLM_TIMEOUT_SECONDS", "30", "Deadline of one LLM call before the deterministic fallback"
    )
    partition_start_date: str = _setting(
        "PARTITION_START_DATE", "2025-01-01", "First day of the daily partitions of event models"
    )
    dagster_ui_url: str = _setting(
        "DAGSTER_UI_URL", "http://127.0.0.1:3000", "Base URL of the Dagster UI, for links"
    )

    def __post_init__(self) -> None:
        if self.platform_env not in ENVIRONMENTS:
            raise SettingsError(
                f"PLATFORM_ENV must be one of {', '.join(ENVIRONMENTS)}, got {self.platform_env!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {
            f.name: environ[f.metadata["env"]]
            for f in fields(cls)
            if environ.get(f.metadata["env"], "") != ""
        }
        return cls(**values)

    @property
    def is_local(self) -> bool:
        return self.platform_env == "local"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve() if self.data_dir else PROJECT_ROOT / "data"

    @property
    def lake_path(self) -> Path:
        return Path(self.lake_dir).resolve() if self.lake_dir else self.data_path / "lake"

    @property
    def warehouse_path(self) -> Path:
        if self.duckdb_path:
            return Path(self.duckdb_path).resolve()
        return self.data_path / "warehouse.duckdb"

    @property
    def spool_path(self) -> Path:
        if self.collector_spool_dir:
            return Path(self.collector_spool_dir).resolve()
        return self.data_path / "spool"

    @property
    def resolved_dbt_target(self) -> str:
        return self.dbt_target or ("local" if self.is_local else "prod")

    def dbt_env(self) -> dict[str, str]:
        """Environment that points the dbt profile at this deployment's warehouse."""
        return {
            "DUCKDB_PATH": str(self.warehouse_path),
            "LAKE_DIR": str(self.lake_path),
            "GCP_PROJECT": self.gcp_project,
            "BQ_LOCATION": self.bq_location,
            "BQ_RAW_DATASET": self.bq_raw_dataset,
        }


def documented_settings() -> list[tuple[str, str, str]]:
    """(env var, default, description) for every setting, for docs and `.env.example`."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings)]


def env_example() -> str:
    """The text of `.env.example` (`python -m platform_assets.settings > .env.example`)."""
    lines = [
        "# Every setting of the platform, with its default. "
        "Copy to .env and edit; all are optional.",
        "# PLATFORM_ENV=local runs everything on this machine; "
        "gcp uses BigQuery, Pub/Sub, Vertex AI.",
        "",
    ]
    for env, default, doc in documented_settings():
        lines += [f"# {doc}", f"{env}={default}"]
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


if __name__ == "__main__":
    print(env_example(), end="")
