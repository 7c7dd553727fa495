"""`python -m streaming.beam`: run the raw streaming job.

    # locally: streaming DirectRunner against the Pub/Sub emulator, writing the Parquet lake
    PUBSUB_EMULATOR_HOST=127.0.0.1:8085 python -m streaming.beam --runner DirectRunner

    # production: submit to Dataflow, print the job id and return
    python -m streaming.beam --runner DataflowRunner --project my-proj \\
        --region europe-west1 --temp_location gs://my-bucket/tmp \\
        --service_account_email raw-stream@my-proj.iam.gserviceaccount.com \\
        [--max_num_workers 5] [--sdk_container_image ...] [--dry_run]

Every Beam pipeline option is accepted (`--help` lists the job's own). The local job stops
on SIGTERM/SIGINT after draining: no more pulls, buffered micro-batches flushed, then exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from platform_core.settings import get_settings
from streaming.beam.direct import DRAIN, direct_runner, tune_pubsub_reads
from streaming.beam.launcher import LaunchError, dataflow_options, launch
from streaming.beam.metrics import local_counts
from streaming.beam.options import RawStreamOptions
from streaming.beam.pipeline import build_pipeline, inputs
from streaming.beam.pubsub_admin import ensure_subscriptions
from streaming.raw.writer import ParquetRawWriter

LOCAL_RUNNERS = ("DirectRunner", "BundleBasedDirectRunner")


def say(message: str) -> None:
    print(f"[beam] {message}", flush=True)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.beam",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument(
        "--runner",
        default=None,
        help="DirectRunner (default when PLATFORM_ENV=local) or DataflowRunner",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        help="DataflowRunner: render options and build the graph, submit nothing",
    )
    parser.add_argument(
        "--setup_only", action="store_true", help="create the topics and subscriptions, then exit"
    )
    parser.add_argument(
        "--create_subscriptions",
        choices=("true", "false"),
        default=None,
        help="create missing topics/subscriptions first (default: true locally)",
    )
    parser.add_argument(
        "--status_seconds",
        type=float,
        default=10.0,
        help="DirectRunner: print the counters this often (0: never)",
    )
    parser.add_argument("-h", "--help", action="store_true")
    args, rest = parser.parse_known_args(list(argv))
    if args.help:
        parser.print_help()
        print("\nJob options:")
        argparse_help = argparse.ArgumentParser(add_help=False)
        RawStreamOptions._add_argparse_args(argparse_help)
        print(argparse_help.format_help().split("\n", 2)[-1])
        raise SystemExit(0)
    if args.runner is None:
        args.runner = "DirectRunner" if get_settings().is_local else "DataflowRunner"
    return args, rest


def _status(_result: Any) -> str:
    c = local_counts()
    keys = (
        "events_valid",
        "events_invalid",
        "collector_dead_letters",
        "cdc_valid",
        "cdc_invalid",
        "rows_written",
        "rows_rejected_by_schema",
        "batches_written",
    )
    return " ".join(f"{k}={c.get(k, 0)}" for k in keys)


def run_local(args: argparse.Namespace, beam_args: list[str]) -> int:
    import apache_beam as beam

    options = PipelineOptions(beam_args)
    options.view_as(StandardOptions).streaming = True
    raw = options.view_as(RawStreamOptions)
    if raw.sink != "parquet":
        say(
            "note: the DirectRunner cannot use the BigQuery sink's Storage Write API "
            "(cross-language); writing the Parquet lake instead"
        )
        raw.sink = "parquet"
    if args.create_subscriptions != "false":
        paths = ensure_subscriptions(
            raw.pubsub_project, [(topic, sub) for _label, topic, sub in inputs(raw)]
        )
        say("subscriptions ready: " + ", ".join(paths))
    if args.setup_only:
        return 0

    ParquetRawWriter(raw.lake_dir).ensure_tables()  # readers can resolve schemas before data
    tune_pubsub_reads(raw.pull_max_messages, raw.pull_wait_seconds)
    pipeline = beam.Pipeline(runner=direct_runner(), options=options)
    build_pipeline(pipeline, raw)

    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        say(f"{signal.Signals(signum).name}: draining")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    result = pipeline.run()
    say(
        f"running on the DirectRunner: {', '.join(s for _l, _t, s in inputs(raw))} -> "
        f"{raw.lake_dir} (flush {raw.flush_rows} rows / {raw.flush_seconds:g} s)"
    )
    finished = threading.Event()
    failure: list[BaseException] = []

    def wait() -> None:
        try:
            result.wait_until_finish()
        except BaseException as error:  # noqa: BLE001
            failure.append(error)
        finally:
            finished.set()

    threading.Thread(target=wait, name="beam-wait", daemon=True).start()
    last_status = time.monotonic()
    while not finished.wait(0.2):
        if stop.is_set():
            DRAIN.set()
            # no more pulls; buffered batches flush when their timer fires
            deadline = time.monotonic() + raw.flush_seconds + 2 * raw.pull_wait_seconds + 1.5
            while time.monotonic() < deadline and not finished.is_set():
                time.sleep(0.1)
            say(f"drained: {_status(result)}")
            result.cancel()
            finished.wait(2)
            return 0
        if args.status_seconds and time.monotonic() - last_status >= args.status_seconds:
            last_status = time.monotonic()
            say(_status(result))
    if failure:
        say(f"FAILED: {failure[0]!r}")
        return 1
    say(f"finished: {_status(result)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.runner in LOCAL_RUNNERS:
        return run_local(args, beam_args)
    if args.runner != "DataflowRunner":
        say(f"unsupported runner {args.runner!r}: use DirectRunner or DataflowRunner")
        return 2

    try:
        if args.setup_only or args.create_subscriptions == "true":
            raw = dataflow_options(beam_args).view_as(RawStreamOptions)
            ensure_subscriptions(raw.pubsub_project, [(t, s) for _l, t, s in inputs(raw)])
            if args.setup_only:
                return 0
        launch(beam_args, dry_run=args.dry_run, echo=lambda m: print(m, flush=True))
    except LaunchError as error:
        say(f"error: {error}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
