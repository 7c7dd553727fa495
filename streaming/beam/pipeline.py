"""The pipeline graph, the same on both runners:

ReadFromPubSub(events)             -> ParseEvents      -+
ReadFromPubSub(events-dead-letter) -> ParseDeadLetters -+-> Flatten -> sink (Parquet | BigQuery)
ReadFromPubSub(cdc)                -> ParseCdc         -+
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.gcp.pubsub import ReadFromPubSub

from streaming.beam.options import RawStreamOptions, subscription_path
from streaming.beam.sinks import WriteRawParquet, WriteRawToBigQuery
from streaming.beam.transforms import ParseCdc, ParseDeadLetters, ParseEvents


def inputs(options: RawStreamOptions) -> list[tuple[str, str, str]]:
    """(label, topic, subscription path) of every enabled input."""
    project = options.pubsub_project
    found = []
    for label, topic, name in (
        ("events", options.events_topic, options.events_subscription),
        ("dead letters", options.dead_letter_topic, options.dead_letter_subscription),
        ("cdc", options.cdc_topic, options.cdc_subscription),
    ):
        if name:
            found.append((label, topic, subscription_path(project, name)))
    if not found:
        raise ValueError("no input: every subscription option is empty")
    return found


PARSERS = {"events": ParseEvents, "dead letters": ParseDeadLetters, "cdc": ParseCdc}


def build_pipeline(
    pipeline: beam.Pipeline,
    options: RawStreamOptions,
    *,
    bigquery_write: Callable[..., beam.PTransform] | None = None,
    read: Callable[[str], beam.PTransform] | None = None,
) -> Any:
    """Add the job to `pipeline`; returns the sink's output.

    `read` replaces ReadFromPubSub (tests feed a TestStream per input); `bigquery_write`
    replaces WriteToBigQuery (offline dry runs: it is a cross-language transform).
    """
    read = read or (lambda sub: ReadFromPubSub(subscription=sub, with_attributes=True))
    parsed = []
    for label, _topic, sub in inputs(options):
        parsed.append(
            pipeline | f"Read {label}" >> read(sub) | f"Parse {label}" >> PARSERS[label]()
        )
    rows = parsed | "All raw rows" >> beam.Flatten()
    if options.sink == "parquet":
        return rows | "Write raw lake" >> WriteRawParquet(
            options.lake_dir, flush_rows=options.flush_rows, flush_seconds=options.flush_seconds
        )
    return rows | "Write raw BigQuery" >> WriteRawToBigQuery(
        options.bq_project,
        options.bq_dataset,
        at_least_once=options.bq_at_least_once,
        triggering_seconds=options.bq_triggering_seconds,
        write_factory=bigquery_write,
    )
