"""Runner options, the Dataflow launcher's dry run and the BigQuery sink, offline."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions
from apache_beam.utils.timestamp import Timestamp

from platform_core.raw.schema import RAW_TABLES
from platform_core.settings import PROJECT_ROOT
from streaming.beam import direct
from streaming.beam.launcher import LaunchError, check, dataflow_options, launch, render
from streaming.beam.options import RawStreamOptions
from streaming.beam.sinks import (
    RecordedBigQueryWrite,
    WriteRawToBigQuery,
    bigquery_write_kwargs,
    failed_row_to_dead_letter,
    to_bigquery_row,
)

DATAFLOW_ARGS = [
    "--project=shop-prod",
    "--region=europe-west1",
    "--temp_location=gs://shop-tmp/beam",
    "--service_account_email=raw-stream@shop-prod.iam.gserviceaccount.com",
    "--max_num_workers=5",
]


def test_dataflow_options_render_streaming_engine_autoscaling_and_the_service_account():
    options = dataflow_options(DATAFLOW_ARGS)
    check(options)
    rendered = render(options)
    assert rendered["runner"] == "DataflowRunner"
    assert rendered["streaming"] is True
    assert rendered["project"] == "shop-prod" and rendered["region"] == "europe-west1"
    assert rendered["temp_location"] == "gs://shop-tmp/beam"
    assert rendered["service_account_email"] == "raw-stream@shop-prod.iam.gserviceaccount.com"
    assert options.view_as(GoogleCloudOptions).enable_streaming_engine is True
    assert rendered["autoscaling_algorithm"] == "THROUGHPUT_BASED"
    assert rendered["max_num_workers"] == 5
    assert rendered["setup_file"] == str(PROJECT_ROOT / "pyproject.toml")
    assert rendered["sink"] == "bigquery"
    raw = options.view_as(RawStreamOptions)
    assert raw.bq_at_least_once is True


def test_explicit_options_win_over_the_defaults():
    options = dataflow_options(
        [
            *DATAFLOW_ARGS,
            "--autoscaling_algorithm=NONE",
            "--num_workers=2",
            "--sdk_container_image=eu.gcr.io/shop/beam:1",
            "--bq_at_least_once=false",
            "--job_name=raw-stream-v2",
        ]
    )
    worker = options.view_as(WorkerOptions)
    assert worker.autoscaling_algorithm == "NONE" and worker.num_workers == 2
    assert options.view_as(GoogleCloudOptions).job_name == "raw-stream-v2"
    assert "setup_file" not in render(options)  # the image carries the code
    assert options.view_as(RawStreamOptions).bq_at_least_once is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region=x", "--project=p"], "--temp_location"),
        (["--project=p", "--region=r", "--temp_location=/tmp/x"], "gs:// path"),
        ([*DATAFLOW_ARGS, "--sink=parquet"], "sink is BigQuery"),
    ],
)
def test_incomplete_dataflow_options_are_refused(args, message):
    with pytest.raises(LaunchError, match=message):
        check(dataflow_options(args))


def test_dry_run_builds_the_graph_without_submitting():
    lines: list[str] = []
    assert launch(DATAFLOW_ARGS, dry_run=True, echo=lines.append) is None
    text = "\n".join(lines)
    assert "(Streaming Engine: on)" in text and "--max_num_workers=5" in text
    assert "projects/shop-prod/subscriptions/events-raw" in text
    assert "shop-prod:raw.events (19 columns)" in text
    assert "at-least-once" in text
    assert "Read events, Parse events" in text and "Write raw BigQuery" in text
    assert "Dry run: nothing was submitted." in text


def test_the_entry_point_dry_run_prints_options_and_no_job_id():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streaming.beam",
            "--runner",
            "DataflowRunner",
            "--dry_run",
            *DATAFLOW_ARGS,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "Dataflow options:" in done.stdout and "Dry run" in done.stdout
    assert "job id" not in done.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "streaming.beam",
            "--runner",
            "DataflowRunner",
            "--dry_run",
            "--project=p",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert bad.returncode == 2 and "needs --" in bad.stdout


def test_bigquery_writes_use_the_storage_write_api_at_least_once_into_existing_tables():
    kwargs = bigquery_write_kwargs("shop-prod", "raw", "events")
    assert kwargs["method"] == beam.io.WriteToBigQuery.Method.STORAGE_WRITE_API
    assert kwargs["use_at_least_once"] is True
    assert "triggering_frequency" not in kwargs
    assert kwargs["create_disposition"] == beam.io.BigQueryDisposition.CREATE_NEVER
    assert kwargs["write_disposition"] == beam.io.BigQueryDisposition.WRITE_APPEND
    assert kwargs["table"] == "shop-prod:raw.events"
    fields = {f["name"]: (f["type"], f["mode"]) for f in kwargs["schema"]["fields"]}
    assert fields["event_date"] == ("DATE", "REQUIRED")
    assert fields["user_id"] == ("STRING", "NULLABLE")
    exactly_once = bigquery_write_kwargs(
        "p", "raw", "events", at_least_once=False, triggering_seconds=7
    )
    assert exactly_once["use_at_least_once"] is False
    assert exactly_once["triggering_frequency"] == 7
    # WriteToBigQuery accepts these arguments (constructing it does not expand it)
    beam.io.WriteToBigQuery(**kwargs)


def test_bigquery_graph_has_one_write_per_table_and_dead_letters_failed_rows():
    with beam.Pipeline(runner=direct.direct_runner()) as p:
        rows = p | beam.Create([("events", {"message_id": "m"})])
        results = rows | WriteRawToBigQuery("p", "raw", write_factory=RecordedBigQueryWrite)
    assert set(results) == set(RAW_TABLES)
    letter = failed_row_to_dead_letter(
        "events",
        {
            "error_message": "INVALID_ARGUMENT: bad",
            "failed_row": {
                "message_id": "m-1",
                "ingestion_id": "ps-1",
                "payload": '{"a":1}',
                "source": "web",
            },
        },
    )
    assert letter["error"] == "bigquery (events): INVALID_ARGUMENT: bad"
    assert (letter["message_id"], letter["pubsub_message_id"], letter["payload"]) == (
        "m-1",
        "ps-1",
        '{"a":1}',
    )


def test_bigquery_rows_carry_beam_timestamps_and_dates():
    row = to_bigquery_row(
        {
            "ingested_at": datetime(2026, 11, 20, 12, 0, 0, 5),
            "aware": datetime(2026, 11, 20, 13, 0, tzinfo=UTC),
            "event_date": date(2026, 11, 20),
            "n": 3,
            "s": None,
        }
    )
    assert row["ingested_at"] == Timestamp.from_utc_datetime(
        datetime(2026, 11, 20, 12, 0, 0, 5, tzinfo=UTC)
    )
    assert row["aware"] == Timestamp.from_utc_datetime(datetime(2026, 11, 20, 13, 0, tzinfo=UTC))
    assert row["event_date"] == date(2026, 11, 20) and row["n"] == 3 and row["s"] is None


def test_direct_runner_pull_tuning_wraps_the_subscriber():
    from apache_beam.runners.direct import transform_evaluator

    assert direct.tune_pubsub_reads(max_messages=123, wait_seconds=0.1) is True
    assert direct.tune_pubsub_reads(max_messages=123, wait_seconds=0.1) is True  # idempotent

    calls = []

    class Client:
        def pull(self, **kwargs):
            calls.append(kwargs)
            return "response"

        def acknowledge(self, **kwargs):
            return "acked"

    tuned = direct._TunedSubscriber(Client())
    assert tuned.pull(subscription="s", max_messages=10, timeout=30) == "response"
    assert calls == [{"subscription": "s", "max_messages": 123, "timeout": 1.1}]
    assert tuned.acknowledge(subscription="s", ack_ids=[]) == "acked"
    direct.DRAIN.set()
    try:
        assert len(tuned.pull(subscription="s").received_messages) == 0
        assert len(calls) == 1  # no pull while draining
    finally:
        direct.DRAIN.clear()
    evaluator = transform_evaluator._PubSubReadEvaluator
    assert getattr(evaluator._get_subscriber_client, "_tuned", False)
