"""Freshness benchmark of the live local path (collector -> Pub/Sub -> Beam -> raw -> Dagster
sensors -> dbt -> marts); run it with `uv run python -m bench.freshness`."""
