"""The shop's source database: schema and migrations, a local PostgreSQL, and a driver that
replays the synthetic shop's transactions into it (so the CDC path sees real WAL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SourceDbUnavailable(RuntimeError):
    """No source database is configured or running."""


def local_dsn_file(settings: Any) -> Path:
    """Where `python -m streaming.sourcedb serve` writes the DSN of the local database."""
    return settings.data_path / "sourcedb" / "dsn"


def resolve_dsn(settings: Any, explicit: str | None = None) -> str:
    """SOURCE_DB_DSN, else the DSN of the local database started by the project."""
    if explicit:
        return explicit
    if settings.source_db_dsn:
        return settings.source_db_dsn
    path = local_dsn_file(settings)
    if settings.is_local and path.exists():
        dsn = path.read_text().strip()
        if dsn:
            return dsn
    raise SourceDbUnavailable(
        "no source database: set SOURCE_DB_DSN or start the local one with "
        "`python -m streaming.sourcedb serve`"
    )
