"""The deployment a run uses, as a Dagster resource with its real values.

`PlatformResource` carries every non-secret setting as its environment variable and value
(`PLATFORM_ENV`, `DUCKDB_PATH`, `GCP_PROJECT`, ...), filled in from the typed settings when
the code location loads. The UI's resource page and a run's config show exactly what the run
used, and a run can be pointed elsewhere by changing that config. Secrets (write keys, Slack
tokens, the source DSN) are never config: `settings()` reads them from the process
environment at run time, and resources that need one take it as a `dg.EnvVar`, which the UI
shows by name.
"""

from __future__ import annotations

import os
from dataclasses import fields

import dagster as dg

from platform_core.settings import Settings


def _variables(secret: bool) -> list[str]:
    return [f.metadata["env"] for f in fields(Settings) if (not f.repr) == secret]


def setting_texts(settings: Settings) -> dict[str, str]:
    """The non-secret settings as `VARIABLE -> text`, in the form `Settings.from_env` reads."""
    texts: dict[str, str] = {}
    for f in fields(Settings):
        if not f.repr:  # secret
            continue
        value = getattr(settings, f.name)
        if value is None or value == f.metadata["unset"]:
            continue
        if hasattr(value, "total_seconds"):
            text = f"{value.total_seconds():g}"
        elif hasattr(value, "isoformat"):
            text = value.isoformat()
        elif isinstance(value, tuple):
            text = ",".join(value)
        elif f.name == "collector_spool_max_bytes":
            text = f"{value / (1024 * 1024):g}"
        else:
            text = str(value)
        texts[f.metadata["env"]] = text
    return texts


class PlatformResource(dg.ConfigurableResource):
    """Every non-secret setting of the deployment (environment variable -> value)."""

    # not named `env`: Dagster reads {"env": NAME} in config as an EnvVar
    variables: dict[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformResource:
        return cls(variables=setting_texts(settings))

    def settings(self) -> Settings:
        secrets = {name: os.environ[name] for name in _variables(secret=True) if name in os.environ}
        return Settings.from_env({**secrets, **self.variables})


def secret(settings_value: str, variable: str) -> str | dg.EnvVar:
    """A secret as resource config: the environment variable by name when it is set (the UI
    shows the name, never the value), else empty."""
    return dg.EnvVar(variable) if settings_value else ""


def reveal(value: str) -> str:
    """A secret's value: Dagster resolves `EnvVar` config when it initialises a resource for a
    run; a resource used directly (the CLI, the demo) still holds the `EnvVar` itself."""
    return value.get_value() or "" if isinstance(value, dg.EnvVar) else value
