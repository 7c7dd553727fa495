"""The data-quality agent: deterministic rules decide, the LLM only explains.

- `config`: every rule of every asset, in one place.
- `rules` (+ `stats`): the rules, run as SQL against a `warehouse` (DuckDB + Parquet lake
  locally, BigQuery in production); each returns a `CheckResult`.
- `engine`: runs an asset's rules, records them in the `history` store
  (`monitoring.data_quality_checks`) and asks `platform_assets.genai` for a narrative.
- `checks`: the Dagster asset checks, the 30-minute schedule and the quality resource.
- `alerts`: the Slack sensor (Block Kit, per-fingerprint suppression, recovery messages).
- `definitions.quality_definitions()`: everything above as one `dagster.Definitions`.
- `python -m platform_assets.quality`: the on-call CLI.

Nothing here connects to a warehouse, Slack or Vertex AI at import time.
"""
