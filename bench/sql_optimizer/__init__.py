"""`uv run python -m bench.sql_optimizer`: what the SQL optimizer finds and saves on analyst
queries, and whether its verified rewrites really return the same rows.

A synthetic shop (three weeks) is landed in a private raw lake and built by dbt; every query
of `queries.py` goes through the optimizer (local statistics, DuckDB verification, the
configured LLM or the deterministic fallback). Printed: findings per rule, estimated bytes
before and after, rewrites proposed and the share verified. Then an independent check: each
verified rewrite and its original are re-executed outside the optimizer (a fresh DuckDB
session with views over the tables, sqlglot's plain transpilation, a multiset comparison
with EXCEPT ALL in SQL) on the same shop and on a second shop simulated from another seed;
the target is zero that return different rows. Same-run baseline: the bytes of the queries
as written.
"""
