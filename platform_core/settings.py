"""Every setting of the platform, read from the environment in this one module, typed.

`PLATFORM_ENV` picks the deployment: ``local`` (default; DuckDB + Parquet lake, Pub/Sub
emulator, librdkafka mock cluster, deterministic narrator, console alerts) or ``gcp``
(BigQuery, Pub/Sub, Kafka, Vertex AI Gemini, Slack). Nothing here touches the network or a
secret at import time: `get_settings()` reads the environment when first called.

Each field names its environment variable, its default as written in `.env.example`, and a
parser: ints are ints, durations are `timedelta`s, paths are absolute `Path`s. A value that
does not parse raises `SettingsError` naming the variable, once, when the settings are read.
`.env.example` and the README's configuration table are generated from / checked against
this table by tests. Secrets (write keys, tokens, DSNs) are kept out of `repr()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

ENVIRONMENTS = ("local", "gcp")
LLM_PROVIDERS = ("auto", "vertex", "deterministic")


class SettingsError(ValueError):
    """A setting has a value the platform cannot use."""


# --- parsers: text of an environment variable -> typed value (ValueError with the reason) ------


def _text(raw: str) -> str:
    return raw


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw

    return parse


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _number_of_seconds(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError("must be a number of seconds") from None


def _seconds(raw: str) -> timedelta:
    value = _number_of_seconds(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return timedelta(seconds=value)


def _seconds_or_zero(raw: str) -> timedelta:
    value = _number_of_seconds(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a number of seconds, 0 or more")
    return timedelta(seconds=value)


def _megabytes(raw: str) -> int:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number of megabytes") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of megabytes")
    return int(value * 1024 * 1024)


def _path(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("must be a date YYYY-MM-DD") from None


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _write_keys(raw: str) -> dict[str, str]:
    """`key=source,key2=source2` -> {key: source}; errors never quote an entry (a secret)."""
    keys: dict[str, str] = {}
    for number, item in enumerate(raw.split(","), start=1):
        key, sep, source = (part.strip() for part in item.strip().partition("="))
        if not item.strip():
            continue
        if not sep or not key or not source:
            raise ValueError(f"entry {number} is not a `key=source` pair")
        if keys.get(key, source) != source:
            raise ValueError(f"entry {number} repeats a key with another source")
        keys[key] = source
    return keys


def _setting(
    env: str,
    default: str,
    doc: str,
    parse: Callable[[str], Any] = _text,
    *,
    secret: bool = False,
    unset: Any = None,
) -> Any:
    """A field read from `env`. `default` is the text of `.env.example`; an empty default
    means "unset" and the field holds `unset` (None, or an empty value of its type)."""
    value = parse(default) if default else unset
    kwargs: dict[str, Any] = {"default": value}
    if isinstance(value, dict | list):
        kwargs = {"default_factory": lambda: type(value)(value)}
    return field(
        **kwargs,
        repr=not secret,
        metadata={"env": env, "doc": doc, "parse": parse, "default_text": default, "unset": unset},
    )


@dataclass(frozen=True)
class Settings:
    platform_env: str = _setting(
        "PLATFORM_ENV", "local", "Deployment: local or gcp", _choice(*ENVIRONMENTS)
    )
    data_dir: Path | None = _setting(
        "DATA_DIR", "", "Local state (raw lake, DuckDB file, spool); default ./data", _path
    )
    lake_dir: Path | None = _setting(
        "LAKE_DIR", "", "Local raw lake (Parquet); default DATA_DIR/lake", _path
    )
    duckdb_path: Path | None = _setting(
        "DUCKDB_PATH", "", "Local warehouse file; default DATA_DIR/warehouse.duckdb", _path
    )
    dbt_target: str = _setting(
        "DBT_TARGET", "", "dbt target; default local (PLATFORM_ENV=local) or prod (gcp)", unset=""
    )
    gcp_project: str = _setting("GCP_PROJECT", "local-project", "GCP project id")
    gcp_region: str = _setting("GCP_REGION", "europe-west1", "GCP region (Dataflow, Vertex AI)")
    bq_location: str = _setting("BQ_LOCATION", "EU", "BigQuery dataset location")
    bq_raw_dataset: str = _setting("BQ_RAW_DATASET", "raw", "BigQuery dataset of the raw layer")
    pubsub_emulator_host: str = _setting(
        "PUBSUB_EMULATOR_HOST", "", "host:port of the Pub/Sub emulator (local)", unset=""
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
    beam_flush_interval: timedelta = _setting(
        "BEAM_FLUSH_SECONDS",
        "2",
        "Local sink: flush a table's buffered rows after this many seconds",
        _seconds,
    )
    beam_flush_rows: int = _setting(
        "BEAM_FLUSH_ROWS",
        "5000",
        "Local sink: flush a table's buffered rows at this many rows",
        _int(1),
    )
    raw_sensor_interval: timedelta = _setting(
        "RAW_SENSOR_INTERVAL_SECONDS", "10", "Minimum interval of the raw tables sensor", _seconds
    )
    warm_socket: Path | None = _setting(
        "WARM_SOCKET",
        "",
        "Unix socket of the warm process server (platform_assets/warm; make dev starts one) "
        "that dbt invocations and Dagster runs fork from; unset: each starts a new process",
        _path,
    )
    refresh_checks_interval: timedelta = _setting(
        "REFRESH_CHECKS_INTERVAL_SECONDS",
        "300",
        "Sensor refreshes publish first; their checks run in verification runs at most this "
        "often (0: with every refresh, as dbt build)",
        _seconds_or_zero,
    )
    compaction_min_age: timedelta = _setting(
        "COMPACTION_MIN_AGE_SECONDS",
        "600",
        "Compaction only merges raw files older than this",
        _seconds,
    )
    collector_host: str = _setting("COLLECTOR_HOST", "127.0.0.1", "Collector bind address")
    collector_port: int = _setting("COLLECTOR_PORT", "8080", "Collector port", _int(1, 65535))
    collector_write_keys: dict[str, str] = _setting(
        "COLLECTOR_WRITE_KEYS",
        "",
        "key=source pairs, comma separated; local default: a demo key per source",
        _write_keys,
        secret=True,
        unset={},
    )
    collector_spool_dir: Path | None = _setting(
        "COLLECTOR_SPOOL_DIR", "", "Durable spool; default DATA_DIR/spool", _path
    )
    collector_spool_max_bytes: int = _setting(
        "COLLECTOR_SPOOL_MAX_MB", "512", "Spool size limit (MB) before answering 503", _megabytes
    )
    collector_publish_timeout: timedelta = _setting(
        "COLLECTOR_PUBLISH_TIMEOUT_S",
        "5",
        "Seconds a collector request waits for Pub/Sub before spooling its events",
        _seconds,
    )
    collector_workers: int = _setting(
        "COLLECTOR_WORKERS",
        "1",
        "Collector processes per pod (one core each), each with its own spool directory",
        _int(1, 64),
    )
    collector_max_in_flight: int = _setting(
        "COLLECTOR_MAX_IN_FLIGHT",
        "128",
        "Requests a collector process handles at once; more are answered 503 + Retry-After",
        _int(1),
    )
    collector_max_connections: int = _setting(
        "COLLECTOR_MAX_CONNECTIONS",
        "2048",
        "Open connections uvicorn allows a collector process before answering 503",
        _int(1),
    )
    collector_cors_origins: tuple[str, ...] = _setting(
        "COLLECTOR_CORS_ORIGINS",
        "",
        "Browser origins allowed by CORS, comma separated",
        _csv,
        unset=(),
    )
    kafka_bootstrap_servers: str = _setting(
        "KAFKA_BOOTSTRAP_SERVERS", "", "Kafka bootstrap servers (CDC)", unset=""
    )
    cdc_topic_prefix: str = _setting("CDC_TOPIC_PREFIX", "shop", "Debezium topic prefix")
    source_db_dsn: str = _setting(
        "SOURCE_DB_DSN", "", "DSN of the shop's PostgreSQL", secret=True, unset=""
    )
    slack_webhook_url: str = _setting(
        "SLACK_WEBHOOK_URL", "", "Slack incoming webhook URL", secret=True, unset=""
    )
    slack_bot_token: str = _setting(
        "SLACK_BOT_TOKEN", "", "Slack bot token (chat.postMessage)", secret=True, unset=""
    )
    slack_channel: str = _setting("SLACK_CHANNEL", "#data-alerts", "Channel for the bot token")
    monitoring_duckdb_path: Path | None = _setting(
        "MONITORING_DUCKDB_PATH",
        "",
        "Local data-quality history (DuckDB file); default DATA_DIR/monitoring.duckdb",
        _path,
    )
    bq_monitoring_dataset: str = _setting(
        "BQ_MONITORING_DATASET", "monitoring", "BigQuery dataset of the data-quality history"
    )
    llm_provider: str = _setting(
        "LLM_PROVIDER",
        "auto",
        "auto, vertex or deterministic (auto: vertex on gcp)",
        _choice(*LLM_PROVIDERS),
    )
    vertex_model: str = _setting("VERTEX_MODEL", "gemini-2.5-flash", "Gemini model name")
    llm_timeout: timedelta = _setting(
        "LLM_TIMEOUT_SECONDS",
        "30",
        "Deadline of one LLM call before the deterministic fallback",
        _seconds,
    )
    partition_start_date: date = _setting(
        "PARTITION_START_DATE",
        "2025-01-01",
        "First day of the daily partitions of event models",
        _date,
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
        """Read every variable once; an empty value means the default."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = f.metadata["env"]
            raw = environ.get(env, "")
            if raw == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as error:
                shown = "(not shown: it may hold a secret)" if not f.repr else repr(raw)
                raise SettingsError(f"{env} {error}, got {shown}") from None
        return cls(**values)

    # --- derived values ---------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return self.platform_env == "local"

    @property
    def data_path(self) -> Path:
        return self.data_dir or PROJECT_ROOT / "data"

    @property
    def lake_path(self) -> Path:
        return self.lake_dir or self.data_path / "lake"

    @property
    def warehouse_path(self) -> Path:
        return self.duckdb_path or self.data_path / "warehouse.duckdb"

    @property
    def warehouse_read_path(self) -> Path:
        """Where every reader opens the local warehouse (analysts, the quality checks, the
        CDC reconciliation): a copy of DUCKDB_PATH published after each dbt invocation."""
        return read_path_of(self.warehouse_path)

    @property
    def spool_path(self) -> Path:
        return self.collector_spool_dir or self.data_path / "spool"

    @property
    def monitoring_path(self) -> Path:
        return self.monitoring_duckdb_path or self.data_path / "monitoring.duckdb"

    @property
    def resolved_dbt_target(self) -> str:
        return self.dbt_target or ("local" if self.is_local else "prod")

    @property
    def source_db_dsn_file(self) -> Path:
        """Where the local source database (dev tooling) publishes its DSN."""
        return self.data_path / "sourcedb" / "dsn"

    @property
    def kafka_address_file(self) -> Path:
        """Where the local Kafka (dev tooling) publishes its bootstrap address."""
        return self.data_path / "cdc" / "kafka.bootstrap"

    def dbt_env(self) -> dict[str, str]:
        """Environment that points the dbt profile at this deployment's warehouse."""
        return {
            "DUCKDB_PATH": str(self.warehouse_path),
            "LAKE_DIR": str(self.lake_path),
            "GCP_PROJECT": self.gcp_project,
            "BQ_LOCATION": self.bq_location,
            "BQ_RAW_DATASET": self.bq_raw_dataset,
        }


def read_path_of(warehouse: Path) -> Path:
    """The read copy of a warehouse file: `read/<same file name>` beside it (the same name
    keeps DuckDB's catalog name, which fully qualified names use)."""
    return warehouse.parent / "read" / warehouse.name


class ServiceUnavailable(RuntimeError):
    """A service the settings point at is neither configured nor running locally."""


def resolve_local_address(
    configured: str, address_file: Path, is_local: bool, what: str, how_to_start: str
) -> str:
    """The configured address, else (locally) the one a local stand-in wrote to its file."""
    if configured:
        return configured
    if is_local and address_file.exists():
        address = address_file.read_text().strip()
        if address:
            return address
    raise ServiceUnavailable(f"no {what}: set it in the environment or start {how_to_start}")


def resolve_source_db_dsn(settings: Settings, explicit: str | None = None) -> str:
    """SOURCE_DB_DSN (or `explicit`), else the DSN of the local database the dev stack runs."""
    return resolve_local_address(
        explicit or settings.source_db_dsn,
        settings.source_db_dsn_file,
        settings.is_local,
        "source database (SOURCE_DB_DSN)",
        "the local one with `python -m devtools.sourcedb serve`",
    )


def documented_settings() -> list[tuple[str, str, str]]:
    """(env var, default as text, description) for every setting, for docs and .env.example."""
    return [
        (f.metadata["env"], f.metadata["default_text"], f.metadata["doc"]) for f in fields(Settings)
    ]


def env_example() -> str:
    """The text of `.env.example` (`python -m platform_core.settings > .env.example`)."""
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
