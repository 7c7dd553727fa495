"""Settings (platform_core/settings.py): environment parsing, derived paths, documentation."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from platform_core.settings import (
    ENVIRONMENTS,
    PROJECT_ROOT,
    Settings,
    SettingsError,
    documented_settings,
    get_settings,
)

REPO = Path(__file__).resolve().parents[2]
ENV_VARS = {f.metadata["env"]: f.name for f in dataclasses.fields(Settings)}


@pytest.fixture
def fresh_settings_cache():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- from_env -------------------------------------------------------------------------------


def test_empty_environment_gives_the_defaults():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.platform_env == "local" and settings.is_local
    assert settings.gcp_project == "local-project"
    assert settings.collector_port == 8080
    assert settings.partition_start_date == date(2025, 1, 1)
    assert settings.collector_publish_timeout == timedelta(seconds=5)
    assert settings.collector_spool_max_bytes == 512 * 1024 * 1024
    assert settings.collector_write_keys == {} and settings.collector_cors_origins == ()


# A valid, non-default value for each kind of setting, and what it must parse to.
TYPED_VALUES = {
    "PLATFORM_ENV": ("gcp", "gcp"),
    "COLLECTOR_PORT": ("9090", 9090),
    "BEAM_FLUSH_ROWS": ("7", 7),
    "BEAM_FLUSH_SECONDS": ("0.5", timedelta(milliseconds=500)),
    "RAW_SENSOR_INTERVAL_SECONDS": ("3", timedelta(seconds=3)),
    "REFRESH_CHECKS_INTERVAL_SECONDS": ("0", timedelta(0)),
    "WARM_SOCKET": ("/tmp/warm.sock", Path("/tmp/warm.sock")),
    "COMPACTION_MIN_AGE_SECONDS": ("60", timedelta(minutes=1)),
    "COLLECTOR_PUBLISH_TIMEOUT_S": ("2.5", timedelta(seconds=2.5)),
    "COLLECTOR_MAX_IN_FLIGHT": ("64", 64),
    "COLLECTOR_WORKERS": ("2", 2),
    "COLLECTOR_MAX_CONNECTIONS": ("512", 512),
    "LLM_TIMEOUT_SECONDS": ("12", timedelta(seconds=12)),
    "COLLECTOR_SPOOL_MAX_MB": ("0.5", 512 * 1024),
    "COLLECTOR_WRITE_KEYS": ("a=web, b=ios", {"a": "web", "b": "ios"}),
    "COLLECTOR_CORS_ORIGINS": (
        "https://a.example, https://b.example",
        ("https://a.example", "https://b.example"),
    ),
    "PARTITION_START_DATE": ("2024-02-29", date(2024, 2, 29)),
    "LLM_PROVIDER": ("vertex", "vertex"),
    "DATA_DIR": ("/srv/platform", Path("/srv/platform")),
    "LAKE_DIR": ("/srv/lake", Path("/srv/lake")),
    "DUCKDB_PATH": ("/srv/wh.duckdb", Path("/srv/wh.duckdb")),
    "COLLECTOR_SPOOL_DIR": ("/srv/spool", Path("/srv/spool")),
    "MONITORING_DUCKDB_PATH": ("/srv/mon.duckdb", Path("/srv/mon.duckdb")),
}


def test_every_field_is_read_from_its_variable_and_typed():
    environ = {env: TYPED_VALUES.get(env, (f"value-of-{env}",))[0] for env in ENV_VARS}
    settings = Settings.from_env(environ)
    for env, name in ENV_VARS.items():
        expected = TYPED_VALUES[env][1] if env in TYPED_VALUES else environ[env]
        assert getattr(settings, name) == expected, env


@pytest.mark.parametrize(
    ("env", "value", "reason"),
    [
        ("COLLECTOR_PORT", "http", "must be a whole number"),
        ("COLLECTOR_PORT", "70000", "between 1 and 65535"),
        ("BEAM_FLUSH_ROWS", "0", ">= 1"),
        ("BEAM_FLUSH_SECONDS", "soon", "number of seconds"),
        ("COLLECTOR_PUBLISH_TIMEOUT_S", "-1", "positive number of seconds"),
        ("LLM_TIMEOUT_SECONDS", "nan", "positive number of seconds"),
        ("REFRESH_CHECKS_INTERVAL_SECONDS", "-5", "0 or more"),
        ("COLLECTOR_SPOOL_MAX_MB", "0", "positive number of megabytes"),
        ("COLLECTOR_SPOOL_MAX_MB", "lots", "number of megabytes"),
        ("PARTITION_START_DATE", "01/02/2025", "YYYY-MM-DD"),
        ("LLM_PROVIDER", "openai", "one of auto, vertex, deterministic"),
    ],
)
def test_a_bad_value_names_its_variable_and_the_reason(env, value, reason):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({env: value})
    message = str(caught.value)
    assert message.startswith(env) and reason in message and repr(value) in message


def test_secrets_are_kept_out_of_repr_and_errors():
    settings = Settings.from_env(
        {
            "COLLECTOR_WRITE_KEYS": "wk-secret=web",
            "SLACK_BOT_TOKEN": "xoxb-secret",
            "SLACK_WEBHOOK_URL": "https://hooks.example/secret",
            "SOURCE_DB_DSN": "postgresql://u:pw-secret@db/shop",
        }
    )
    assert "secret" not in repr(settings)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"COLLECTOR_WRITE_KEYS": "wk-secret"})
    assert "wk-secret" not in str(caught.value)


def test_empty_values_fall_back_to_defaults():
    settings = Settings.from_env({"PLATFORM_ENV": "", "GCP_PROJECT": "", "BQ_LOCATION": "US"})
    assert settings.platform_env == "local"
    assert settings.gcp_project == "local-project"
    assert settings.bq_location == "US"


def test_unrelated_variables_are_ignored():
    settings = Settings.from_env({"HOME": "/root", "gcp_project": "lowercase-is-not-it"})
    assert settings == Settings()


def test_from_env_without_argument_reads_os_environ(monkeypatch):
    monkeypatch.setenv("GCP_PROJECT", "acme-data")
    monkeypatch.setenv("PLATFORM_ENV", "gcp")
    settings = Settings.from_env()
    assert (settings.gcp_project, settings.platform_env) == ("acme-data", "gcp")


@pytest.mark.parametrize("value", ["prod", "GCP", "Local", " local", "aws"])
def test_invalid_platform_env_raises(value):
    with pytest.raises(SettingsError, match="PLATFORM_ENV must be one of local, gcp") as caught:
        Settings.from_env({"PLATFORM_ENV": value})
    assert repr(value) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_invalid_platform_env_raises_from_the_constructor_too():
    with pytest.raises(SettingsError):
        Settings(platform_env="staging")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_valid_platform_envs(env):
    settings = Settings.from_env({"PLATFORM_ENV": env})
    assert settings.is_local == (env == "local")


def test_settings_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().platform_env = "gcp"  # type: ignore[misc]


def test_get_settings_reads_once_and_caches(monkeypatch, fresh_settings_cache):
    monkeypatch.setenv("GCP_PROJECT", "first")
    first = get_settings()
    monkeypatch.setenv("GCP_PROJECT", "second")
    assert get_settings() is first and first.gcp_project == "first"
    get_settings.cache_clear()
    assert get_settings().gcp_project == "second"


def test_get_settings_raises_on_invalid_environment(monkeypatch, fresh_settings_cache):
    monkeypatch.setenv("PLATFORM_ENV", "production")
    with pytest.raises(SettingsError):
        get_settings()


# --- derived paths ------------------------------------------------------------------------------


def test_default_paths_live_under_the_project_data_dir():
    settings = Settings.from_env({})
    assert settings.data_path == PROJECT_ROOT / "data"
    assert settings.lake_path == PROJECT_ROOT / "data" / "lake"
    assert settings.warehouse_path == PROJECT_ROOT / "data" / "warehouse.duckdb"
    assert settings.spool_path == PROJECT_ROOT / "data" / "spool"
    assert PROJECT_ROOT == REPO


def test_paths_follow_data_dir(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "state")})
    assert settings.data_path == tmp_path / "state"
    assert settings.lake_path == tmp_path / "state" / "lake"
    assert settings.warehouse_path == tmp_path / "state" / "warehouse.duckdb"
    assert settings.spool_path == tmp_path / "state" / "spool"


def test_explicit_paths_override_data_dir(tmp_path):
    settings = Settings.from_env(
        {
            "DATA_DIR": str(tmp_path / "state"),
            "LAKE_DIR": str(tmp_path / "elsewhere" / "lake"),
            "DUCKDB_PATH": str(tmp_path / "wh.duckdb"),
            "COLLECTOR_SPOOL_DIR": str(tmp_path / "spool2"),
        }
    )
    assert settings.data_path == tmp_path / "state"
    assert settings.lake_path == tmp_path / "elsewhere" / "lake"
    assert settings.warehouse_path == tmp_path / "wh.duckdb"
    assert settings.spool_path == tmp_path / "spool2"


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"DATA_DIR": "state", "DUCKDB_PATH": "wh/x.duckdb"})
    assert settings.data_path == tmp_path.resolve() / "state"
    assert settings.lake_path == tmp_path.resolve() / "state" / "lake"
    assert settings.warehouse_path == tmp_path.resolve() / "wh" / "x.duckdb"
    for path in (
        settings.data_path,
        settings.lake_path,
        settings.warehouse_path,
        settings.spool_path,
    ):
        assert path.is_absolute()


# --- dbt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "target"),
    [
        ({}, "local"),
        ({"PLATFORM_ENV": "local"}, "local"),
        ({"PLATFORM_ENV": "gcp"}, "prod"),
        ({"PLATFORM_ENV": "gcp", "DBT_TARGET": "ci"}, "ci"),
        ({"PLATFORM_ENV": "local", "DBT_TARGET": "prod"}, "prod"),
        ({"PLATFORM_ENV": "gcp", "DBT_TARGET": ""}, "prod"),
    ],
)
def test_dbt_target(environ, target):
    assert Settings.from_env(environ).resolved_dbt_target == target


def test_dbt_env_points_at_this_deployment(tmp_path):
    settings = Settings.from_env(
        {
            "DATA_DIR": str(tmp_path),
            "GCP_PROJECT": "acme",
            "BQ_LOCATION": "US",
            "BQ_RAW_DATASET": "raw_eu",
        }
    )
    assert settings.dbt_env() == {
        "DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "LAKE_DIR": str(tmp_path / "lake"),
        "GCP_PROJECT": "acme",
        "BQ_LOCATION": "US",
        "BQ_RAW_DATASET": "raw_eu",
    }
    assert all(isinstance(v, str) for v in settings.dbt_env().values())


def test_local_settings_select_the_parquet_writer(tmp_path):
    from streaming.raw.writer import ParquetRawWriter, writer_for

    writer = writer_for(Settings.from_env({"LAKE_DIR": str(tmp_path / "lake")}))
    assert isinstance(writer, ParquetRawWriter)
    assert writer.lake_path == tmp_path / "lake"


# --- documentation ---------------------------------------------------------------------------


def test_documented_settings_lists_every_field():
    documented = documented_settings()
    assert [env for env, _, _ in documented] == list(ENV_VARS)
    defaults = Settings()
    for env, default, doc in documented:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", env), env
        # the documented default is what an empty environment gives
        assert getattr(Settings.from_env({env: default}), ENV_VARS[env]) == getattr(
            defaults, ENV_VARS[env]
        ), env
        assert doc.strip(), f"{env} has no description"
    assert len({env for env, _, _ in documented}) == len(documented)


def env_example() -> dict[str, str]:
    path = REPO / ".env.example"
    assert path.is_file(), ".env.example is missing"
    assigned: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            assigned[match.group(1)] = match.group(2).strip().strip("\"'")
    return assigned


def test_env_example_lists_every_setting_with_its_default():
    assigned = env_example()
    missing = [env for env, _, _ in documented_settings() if env not in assigned]
    assert missing == [], f".env.example lacks {missing}"
    wrong = {
        env: (assigned[env], default)
        for env, default, _ in documented_settings()
        if assigned[env] != default
    }
    assert wrong == {}, "(in .env.example, documented default)"


def test_env_example_has_no_stale_settings():
    stale = sorted(set(env_example()) - set(ENV_VARS))
    assert stale == []


def test_readme_documents_every_setting():
    path = REPO / "README.md"
    assert path.is_file(), "README.md is missing"
    text = path.read_text()
    missing = [
        env
        for env, _, _ in documented_settings()
        if not re.search(rf"(?<![A-Z0-9_]){env}(?![A-Z0-9_])", text)
    ]
    assert missing == [], f"README.md lacks {missing}"
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^\|\s*`([A-Z0-9_]+)`\s*\|.*$", text, re.MULTILINE)
    }
    stale = sorted(set(rows) - set(ENV_VARS))
    assert stale == [], f"README.md documents settings that do not exist: {stale}"
    for env, default, _ in documented_settings():
        if default and env in rows:
            assert f"`{default}`" in rows[env], f"README.md row of {env} lacks `{default}`"


def test_env_example_is_generated_from_settings():
    from platform_core.settings import PROJECT_ROOT, env_example

    assert (PROJECT_ROOT / ".env.example").read_text() == env_example()
