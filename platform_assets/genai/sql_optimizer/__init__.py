"""The GenAI SQL optimizer: findings, cost and verified rewrites for BigQuery SQL.

Reading order: `safety` (only one read-only query gets in) -> `schema` (raw schemas + the
dbt manifest's BigQuery rendering, `dbt_render`) -> `analysis` (the query as BigQuery plans
it: scans, columns, pushed-down filters; `predicates` for partition pruning) -> `rules`
(one function per rule id) -> `cost` (dry run on GCP; local `stats` otherwise) ->
`rewrites` (`rewrite_partitions`, `rewrite_scans`) and `llm_rewrite` -> `verify` (same
rows on the local DuckDB warehouse, opened read-only by `warehouse`) -> `optimizer` ->
`report`, `audit`, `cli`. `definitions` is the Dagster wiring; nothing else imports dagster.
"""
