"""How runs that touch the local warehouse share it.

DuckDB has one writer per file. Every op that writes the warehouse or rewrites the raw lake
under it (the dbt assets, compaction) is in the concurrency pool `WAREHOUSE_POOL`; the local
instance (infra/dagster/local-dagster.yaml) limits pools to one run at a time
(`granularity: run`), so such runs queue behind each other, whether a sensor, a schedule or
someone in the UI launched them.

Readers never queue: they open the read snapshot dbt publishes after each invocation
(`Settings.warehouse_read_path`, platform_assets/dbt/read_snapshot.py), which no writer ever
locks. The tag below only labels runs that use the warehouse (filter runs by it in the UI);
no limit applies to it any more.
"""

WAREHOUSE_POOL = "warehouse_writer"
WAREHOUSE_TAG_KEY = "platform/warehouse"
WAREHOUSE_TAG_VALUE = "refresh"


def warehouse_tags() -> dict[str, str]:
    """A fresh tags dict (callers may add their own tags to it)."""
    return {WAREHOUSE_TAG_KEY: WAREHOUSE_TAG_VALUE}
