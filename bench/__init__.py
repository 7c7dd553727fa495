"""Benchmarks (not tests): `uv run python -m bench.<name>`. Each prints its figures and a
same-run baseline; none asserts timings."""
