"""Settings of `make dev` only (not platform settings: nothing deployed reads them); the
README's `make dev` section lists them too.

- `DEV_EVENTS_PER_SECOND` (default `2`): the live shop's traffic in events per second,
  averaged over a day (busier in the afternoon, quieter at night); its database changes
  follow; `0` for none.
- `DEV_BACKFILL_DAYS` (default `14`): past days simulated and backfilled on the first start.
- `DEV_DATA_DIR` (default `DATA_DIR/dev`): everything `make dev` keeps (raw lake, warehouse,
  PostgreSQL, Dagster's instance, logs); `make dev-reset` deletes it.
- `DEV_POSTGRES_PORT` (default: a free port): port of the shop's PostgreSQL.

The ports of the UI and the collector are the platform's own settings: `DAGSTER_UI_URL`
(default http://127.0.0.1:3000) and `COLLECTOR_PORT` (default 8080).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from platform_core.settings import Settings, SettingsError

# One session of the synthetic shop sends about this many events (measured over 30 days of
# its default configuration); it turns DEV_EVENTS_PER_SECOND into sessions per day.
EVENTS_PER_SESSION = 7.5
# The past days of the backfill run at the demo's scale (`make demo`): about 7,500 events a
# day, so the first start stays quick whatever the live rate.
BACKFILL_SESSIONS_PER_DAY = 1000
SHOP_SEED = 42


def _number(environ: Mapping[str, str], name: str, default: str, *, whole: bool) -> float:
    raw = environ.get(name, "").strip() or default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise SettingsError(f"{name} must be {kind} >= 0, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise SettingsError(f"{name} must be >= 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class DevSettings:
    events_per_second: float
    backfill_days: int
    data_dir: Path
    postgres_port: int | None
    ui_host: str
    ui_port: int
    collector_port: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DevSettings:
        environ = os.environ if environ is None else environ
        platform = Settings.from_env(environ)
        ui = urlsplit(platform.dagster_ui_url)
        if not ui.hostname or not ui.port:
            raise SettingsError(
                f"DAGSTER_UI_URL must name a host and a port for make dev, got "
                f"{platform.dagster_ui_url!r}"
            )
        data_dir = environ.get("DEV_DATA_DIR", "").strip()
        port = int(_number(environ, "DEV_POSTGRES_PORT", "0", whole=True))
        if port > 65535:
            raise SettingsError(f"DEV_POSTGRES_PORT must be a port number, got {port}")
        return cls(
            events_per_second=_number(environ, "DEV_EVENTS_PER_SECOND", "2", whole=False),
            backfill_days=int(_number(environ, "DEV_BACKFILL_DAYS", "14", whole=True)),
            data_dir=Path(data_dir).expanduser().resolve()
            if data_dir
            else platform.data_path / "dev",
            postgres_port=port or None,
            ui_host=ui.hostname,
            ui_port=ui.port,
            collector_port=platform.collector_port,
        )

    @property
    def sessions_per_day(self) -> int:
        """The live shop's sessions per day for DEV_EVENTS_PER_SECOND."""
        return round(self.events_per_second * 86400 / EVENTS_PER_SESSION)

    @property
    def ui_url(self) -> str:
        return f"http://{self.ui_host}:{self.ui_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    def platform_env(self) -> dict[str, str]:
        """The environment every child process gets: the platform's settings pointed at the
        dev data directory (paths set explicitly elsewhere still win)."""
        return {
            "DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_UI_URL": self.ui_url,
            "COLLECTOR_PORT": str(self.collector_port),
            "PLATFORM_ENV": "local",
        }
