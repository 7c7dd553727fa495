"""The run tag of every run that opens the local warehouse (dbt refreshes, compaction, the
CDC reconciliation, the quality job). DuckDB has one writer, and a reader in another process
blocks it: the local instance's run queue (infra/dagster/local-dagster.yaml) limits the tag to
one run at a time."""

WAREHOUSE_TAG_KEY = "platform/warehouse"
WAREHOUSE_TAG_VALUE = "refresh"


def warehouse_tags() -> dict[str, str]:
    """A fresh tags dict (callers may add their own tags to it)."""
    return {WAREHOUSE_TAG_KEY: WAREHOUSE_TAG_VALUE}
