"""Collector benchmark: `uv run python -m bench.collector` (see __main__)."""
