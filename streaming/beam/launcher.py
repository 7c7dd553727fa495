"""Dataflow: render the job's options, build the graph, submit it and print the job id.

Nothing here talks to Google before `launch()` submits the job; `--dry_run` renders the
options and builds the graph with WriteToBigQuery recorded instead of expanded (it is a
cross-language transform whose expansion service is downloaded from Maven).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from platform_core.settings import PROJECT_ROOT, get_settings
from streaming.beam.options import RawStreamOptions
from streaming.beam.pipeline import build_pipeline, inputs
from streaming.beam.sinks import RecordedBigQueryWrite, WriteRawToBigQuery

# Defaults for a streaming job; any of them can be overridden on the command line.
DATAFLOW_DEFAULTS: dict[str, Any] = {
    "job_name": "raw-stream",
    "autoscaling_algorithm": "THROUGHPUT_BASED",
    "max_num_workers": 3,
    "machine_type": "n2-standard-2",
}
REQUIRED = ("project", "region", "temp_location")


class LaunchError(ValueError):
    """The Dataflow options are incomplete or inconsistent."""


def dataflow_options(argv: Sequence[str]) -> PipelineOptions:
    """Options for DataflowRunner: argv, then DATAFLOW_DEFAULTS, then the platform settings."""
    settings = get_settings()
    options = PipelineOptions(list(argv))
    standard = options.view_as(StandardOptions)
    standard.runner = "DataflowRunner"
    standard.streaming = True
    gcp = options.view_as(GoogleCloudOptions)
    gcp.project = gcp.project or settings.gcp_project
    gcp.region = gcp.region or settings.gcp_region
    gcp.job_name = gcp.job_name or DATAFLOW_DEFAULTS["job_name"]
    # Streaming Engine: always on for Python streaming jobs (Beam >= 2.6x deprecated the
    # --enable_streaming_engine switch, which defaults to True); shown by describe().
    worker = options.view_as(WorkerOptions)
    worker.autoscaling_algorithm = (
        worker.autoscaling_algorithm or DATAFLOW_DEFAULTS["autoscaling_algorithm"]
    )
    worker.max_num_workers = worker.max_num_workers or DATAFLOW_DEFAULTS["max_num_workers"]
    worker.machine_type = worker.machine_type or DATAFLOW_DEFAULTS["machine_type"]
    setup = options.view_as(SetupOptions)
    if not worker.sdk_container_image and not setup.setup_file and not setup.requirements_file:
        # ship this project (streaming/, collector/ contract, pydantic ...) to the workers;
        # a prebuilt image (--sdk_container_image) starts workers faster
        setup.setup_file = str(PROJECT_ROOT / "pyproject.toml")
    raw = options.view_as(RawStreamOptions)
    if not given(argv, "sink"):
        raw.sink = "bigquery"
    # topics, subscriptions and the raw dataset live in the job's project unless told otherwise
    if not given(argv, "pubsub_project"):
        raw.pubsub_project = gcp.project
    if not given(argv, "bq_project"):
        raw.bq_project = gcp.project
    return options


def given(argv: Sequence[str], name: str) -> bool:
    """Whether the command line sets option `name` (as --name, --name=value or --noname)."""
    return any(
        arg == f"--{name}" or arg.startswith(f"--{name}=") or arg == f"--no{name}" for arg in argv
    )


def check(options: PipelineOptions) -> None:
    gcp = options.view_as(GoogleCloudOptions)
    missing = [name for name in REQUIRED if not getattr(gcp, name)]
    if missing:
        raise LaunchError(f"DataflowRunner needs --{' --'.join(missing)}")
    if not str(gcp.temp_location).startswith("gs://"):
        raise LaunchError(f"--temp_location must be a gs:// path, got {gcp.temp_location!r}")
    if options.view_as(RawStreamOptions).sink != "bigquery":
        raise LaunchError("on Dataflow the sink is BigQuery (--sink bigquery)")


def render(options: PipelineOptions) -> dict[str, Any]:
    """The options that differ from Beam's defaults, as Dataflow will receive them."""
    return dict(
        sorted(options.get_all_options(drop_default=True, retain_unknown_options=True).items())
    )


def build(options: PipelineOptions, *, dry_run: bool) -> beam.Pipeline:
    if dry_run:
        # A service runner validates the gs:// paths against GCS when the pipeline is created;
        # the dry run builds the same graph under a local runner object instead.
        from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

        pipeline = beam.Pipeline(runner=BundleBasedDirectRunner(), options=options)
    else:
        pipeline = beam.Pipeline(options=options)
    build_pipeline(
        pipeline,
        options.view_as(RawStreamOptions),
        bigquery_write=RecordedBigQueryWrite if dry_run else None,
    )
    return pipeline


def transform_labels(pipeline: beam.Pipeline) -> list[str]:
    labels: list[str] = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node: Any) -> None:
            if node.full_label and node.full_label.count("/") == 0:
                labels.append(node.full_label)

        def visit_transform(self, node: Any) -> None:
            if node.full_label.count("/") == 0:
                labels.append(node.full_label)

    pipeline.visit(Visitor())
    return labels


def describe(options: PipelineOptions, pipeline: beam.Pipeline) -> str:
    raw = options.view_as(RawStreamOptions)
    sink = WriteRawToBigQuery(
        raw.bq_project,
        raw.bq_dataset,
        at_least_once=raw.bq_at_least_once,
        triggering_seconds=raw.bq_triggering_seconds,
    )
    lines = ["Dataflow options:"]
    lines += [f"  --{k}={v}" for k, v in render(options).items()]
    gcp = options.view_as(GoogleCloudOptions)
    lines.append(f"  (Streaming Engine: {'on' if gcp.enable_streaming_engine else 'off'})")
    lines.append("Reads:")
    lines += [f"  {label}: {sub}" for label, _topic, sub in inputs(raw)]
    lines.append(
        "Writes (WriteToBigQuery, Storage Write API, "
        f"{'at-least-once' if raw.bq_at_least_once else 'exactly-once'}):"
    )
    for table in (
        "events",
        "events_dead_letter",
        "cdc_users",
        "cdc_products",
        "cdc_orders",
        "cdc_order_items",
    ):
        kw = sink.kwargs(table)
        lines.append(f"  {kw['table']} ({len(kw['schema']['fields'])} columns)")
    lines.append("Transforms: " + ", ".join(transform_labels(pipeline)))
    return "\n".join(lines)


def launch(argv: Sequence[str], *, dry_run: bool = False, echo: Any = print) -> str | None:
    """Submit the streaming job to Dataflow and return its job id (None on a dry run)."""
    options = dataflow_options(argv)
    check(options)
    pipeline = build(options, dry_run=dry_run)
    echo(describe(options, pipeline))
    if dry_run:
        # Beam removes the pipeline's local temp dir when it runs; a dry run never does
        shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)
        echo("Dry run: nothing was submitted.")
        return None
    result = pipeline.run()
    job_id = result.job_id()
    gcp = options.view_as(GoogleCloudOptions)
    echo(f"Dataflow job id: {job_id}")
    echo(
        f"  https://console.cloud.google.com/dataflow/jobs/{gcp.region}/{job_id}"
        f"?project={gcp.project}"
    )
    return job_id
