"""The pipeline doc generator: docs/ from the code, the dbt manifest and the Dagster graph.

- `code_index`: the Python AST of the product's packages (FastAPI routes, Beam transforms
  and steps, Kafka users, entry points, docstrings).
- `platform_graph`: the Dagster definitions (assets, lineage, partitions, freshness, owners,
  checks, jobs, schedules, sensors) and the dbt project (tests, layout, column types).
- `asset_pages`, `pipeline_pages` (and `markdown`): the pages; `site`: the tree, writing and
  the staleness check; `prose`: the optional, marked LLM overviews; `cli`: the command.

Output is deterministic: sorted, no timestamps, no absolute paths, default settings.
"""
