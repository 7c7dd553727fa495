"""The data-quality agent: deterministic rules decide, the LLM only explains.

What is checked (`monitors.ASSETS`, assembled when the code location loads):
- `derive`: monitors every raw table and dbt model gets without configuration (values of
  numeric columns, mixes of low-cardinality columns, timestamp bounds, the source database's
  constraints), read from the dbt manifest (`manifest`, `dbt_tests`), the raw schemas and
  the catalog snapshot (`source_constraints`);
- `config`: the hand configuration, the exception: SLAs and chosen rules, overrides of the
  derived monitors, and the cross-source consistency rules;
- `specs`: what each rule is; `rules/`: the rules themselves, SQL against a `warehouse`
  (DuckDB + Parquet lake locally, BigQuery in production), with `stats` and the business
  `calendar`; each returns a `CheckResult` (`results`).

How it runs: `engine` evaluates an asset's rules, records them in the `history` store
(`monitoring.data_quality_checks`) and asks `platform_assets.genai` for a narrative of what
failed (with its `lineage`); `checks` makes them Dagster asset checks with a 30-minute
schedule; `alerts` is the Slack sensor: failing checks (the agent's and dbt tests) grouped
into `incidents` by root cause over the asset graph, one message per incident (`slack`).
`definitions.build_defs(settings)` gives all of it to the code location;
`python -m platform_assets.quality` is the on-call CLI.

Nothing here connects to a warehouse, a database, Slack or Vertex AI at import time.
"""
