"""Evaluation of the data-quality rules: `uv run python -m bench.quality`."""
