"""Pipeline options of the raw streaming job, with defaults from the platform settings."""

from __future__ import annotations

from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions

from platform_core.settings import Settings, get_settings


@dataclass(frozen=True)
class Subscriptions:
    """Short names of the subscriptions the job reads; an empty name disables that input."""

    events: str
    dead_letter: str
    cdc: str

    @classmethod
    def from_env(cls) -> Subscriptions:
        settings = Settings.from_env()
        return cls(
            events=settings.pubsub_events_subscription,
            dead_letter=settings.pubsub_dead_letter_subscription,
            cdc=settings.pubsub_cdc_subscription,
        )


def subscription_path(project: str, name: str) -> str:
    return name if name.startswith("projects/") else f"projects/{project}/subscriptions/{name}"


class RawStreamOptions(PipelineOptions):
    """Options of this job (Beam's own --runner, --project, --region ... are separate views)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:  # noqa: ANN001 - Beam's signature
        settings: Settings = get_settings()
        subs = Subscriptions.from_env()
        parser.add_argument(
            "--events_subscription",
            default=subs.events,
            help="events subscription (short name or full path; '' disables)",
        )
        parser.add_argument(
            "--dead_letter_subscription",
            default=subs.dead_letter,
            help="events-dead-letter subscription ('' disables)",
        )
        parser.add_argument(
            "--cdc_subscription", default=subs.cdc, help="cdc subscription ('' disables)"
        )
        parser.add_argument(
            "--pubsub_project",
            default=settings.gcp_project,
            help="project of the topics and subscriptions",
        )
        parser.add_argument("--events_topic", default=settings.pubsub_events_topic)
        parser.add_argument("--dead_letter_topic", default=settings.pubsub_dead_letter_topic)
        parser.add_argument("--cdc_topic", default=settings.pubsub_cdc_topic)
        parser.add_argument(
            "--sink",
            choices=("parquet", "bigquery"),
            default="parquet" if settings.is_local else "bigquery",
            help="parquet: the local raw lake; bigquery: the raw dataset (Storage Write API)",
        )
        parser.add_argument(
            "--lake_dir", default=str(settings.lake_path), help="parquet sink: root of the raw lake"
        )
        parser.add_argument(
            "--flush_seconds",
            type=float,
            default=settings.beam_flush_interval.total_seconds(),
            help="parquet sink: max seconds a row waits in a micro-batch",
        )
        parser.add_argument(
            "--flush_rows",
            type=int,
            default=settings.beam_flush_rows,
            help="parquet sink: micro-batch size that triggers a flush",
        )
        parser.add_argument(
            "--bq_project",
            default=settings.gcp_project,
            help="bigquery sink: project of the raw dataset",
        )
        parser.add_argument(
            "--bq_dataset", default=settings.bq_raw_dataset, help="bigquery sink: raw dataset"
        )
        parser.add_argument(
            "--bq_at_least_once",
            type=_bool,
            default=True,
            help="bigquery sink: Storage Write API at-least-once mode (default stream); "
            "false = exactly-once (application streams, needs --bq_triggering_seconds)",
        )
        parser.add_argument(
            "--bq_triggering_seconds",
            type=int,
            default=5,
            help="bigquery sink, exactly-once mode only: commit interval",
        )
        parser.add_argument(
            "--pull_max_messages",
            type=int,
            default=500,
            help="DirectRunner: messages per Pub/Sub pull (Beam's default: 10)",
        )
        parser.add_argument(
            "--pull_wait_seconds",
            type=float,
            default=0.25,
            help="DirectRunner: longest wait of a pull on an idle subscription",
        )


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
