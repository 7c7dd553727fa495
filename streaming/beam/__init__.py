"""The streaming Beam job: Pub/Sub (events, dead letters, CDC) -> the raw layer.

One pipeline, two runners: the DirectRunner (streaming, against the Pub/Sub emulator, writing
the local Parquet lake) and Dataflow (writing BigQuery with the Storage Write API).
Entry point: ``python -m streaming.beam --help``.
"""
