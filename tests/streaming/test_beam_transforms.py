"""The Beam job's transforms and local sink, with Beam's testing utilities (no Pub/Sub)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import apache_beam as beam
import duckdb
import pyarrow.parquet as pq
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from platform_core.contract import stamp
from platform_core.raw.codec import encode_raw_row
from streaming.beam.direct import direct_runner
from streaming.beam.metrics import local_counts
from streaming.beam.options import RawStreamOptions
from streaming.beam.pipeline import build_pipeline
from streaming.beam.sinks import WriteRawParquet, write_rows
from streaming.beam.transforms import (
    DEAD_LETTER,
    EVENTS,
    ParseCdc,
    ParseDeadLetters,
    ParseEvents,
    cdc_to_raw,
    dead_letter_to_raw,
    event_to_raw,
)
from streaming.raw.writer import ParquetRawWriter

NOW = datetime(2026, 11, 20, 12, 0, 5, tzinfo=UTC)
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Safari/604.1"


def event(i: int = 0, **extra) -> dict:
    message = {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": f"anon-{i}",
        "messageId": f"msg-{i}",
        "properties": {"product_id": "42", "price": 19.5},
        "context": {
            "userAgent": UA,
            "page": {"path": "/p/42"},
            "campaign": {"source": "Newsletter"},
        },
        "originalTimestamp": "2026-11-20T11:59:00.000Z",
        "sentAt": "2026-11-20T11:59:30.000Z",
        **extra,
    }
    return stamp(message, datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC))


def pubsub(payload: dict | bytes | str, pubsub_id: str = "ps-1", **attributes) -> PubsubMessage:
    if isinstance(payload, dict):
        data = json.dumps(payload).encode()
        attributes = {
            "source": "web",
            "type": payload.get("type", ""),
            "message_id": payload.get("messageId", ""),
            **attributes,
        }
    else:
        data = payload.encode() if isinstance(payload, str) else payload
    return PubsubMessage(
        data,
        attributes,
        message_id=pubsub_id,
        publish_time=datetime(2026, 11, 20, 12, 0, 1, tzinfo=UTC),
    )


# --- parsing ---------------------------------------------------------------------------------


def test_valid_event_becomes_an_enriched_raw_row():
    table, row = event_to_raw(pubsub(event(1), "ps-77"), NOW)
    assert table == EVENTS
    assert row["message_id"] == "msg-1"
    assert row["source"] == "web"
    assert row["ingestion_id"] == "ps-77"
    assert row["received_at"] == datetime(2026, 11, 20, 12, 0, 0)
    # skew-corrected: receivedAt - (sentAt - originalTimestamp) = 12:00:00 - 30 s
    assert row["event_timestamp"] == datetime(2026, 11, 20, 11, 59, 30)
    assert row["event_date"] == date(2026, 11, 20)
    assert (row["device_type"], row["os_name"], row["browser"]) == ("mobile", "iOS", "Safari")
    assert row["page_path"] == "/p/42" and row["traffic_source"] == "newsletter"
    assert row["ingested_at"] == NOW.replace(tzinfo=None)
    assert json.loads(row["payload"])["messageId"] == "msg-1"  # the bytes as received


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "payload is not JSON"),
        (b"\xff\xfe\x00", "payload is not UTF-8"),
        (b"[1, 2]", "event must be a JSON object"),
        (
            json.dumps(
                {
                    "type": "track",
                    "event": "X",
                    "messageId": "m-9",
                    "receivedAt": "2026-11-20T12:00:00Z",
                }
            ).encode(),
            "either userId or anonymousId is required",
        ),
        (
            json.dumps(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "anonymousId": "a",
                    "messageId": "m-9",
                    "receivedAt": "2026-11-20T12:00:00Z",
                    "properties": {"total": 3},
                }
            ).encode(),
            "Order Completed properties.order_id",
        ),
        (
            json.dumps(
                {
                    "type": "track",
                    "event": "X",
                    "anonymousId": "a",
                    "messageId": "m-9",
                    "receivedAt": "yesterday",
                }
            ).encode(),
            "receivedAt: not an RFC 3339",
        ),
    ],
)
def test_invalid_events_become_dead_letters_with_their_reason(data, reason):
    table, row = event_to_raw(pubsub(data, "ps-5", source="ios", message_id="m-9"), NOW)
    assert table == DEAD_LETTER
    assert reason in row["error"]
    assert row["stage"] == "pipeline"
    assert row["payload"] == data.decode("utf-8", errors="replace")
    assert row["pubsub_message_id"] == "ps-5"
    assert row["source"] == "ios"
    assert row["message_id"] == "m-9"
    assert row["ingest_date"] == date(2026, 11, 20)


def test_receipt_time_falls_back_to_the_attribute_then_publish_time():
    payload = event(2)
    received = payload.pop("receivedAt")
    _, row = event_to_raw(pubsub(payload, received_at=received), NOW)
    assert row["received_at"] == datetime(2026, 11, 20, 12, 0, 0)
    _, row = event_to_raw(pubsub(payload), NOW)
    assert row["received_at"] == datetime(2026, 11, 20, 12, 0, 1)  # publish time


def test_collector_dead_letters_keep_stage_reason_and_ids():
    message = PubsubMessage(
        b'{"type":"track"}',
        {"source": "web", "error": "event: required", "stage": "collector", "message_id": "m-3"},
        message_id="ps-3",
    )
    table, row = dead_letter_to_raw(message, NOW)
    assert table == DEAD_LETTER
    assert (row["stage"], row["error"], row["message_id"], row["pubsub_message_id"]) == (
        "collector",
        "event: required",
        "m-3",
        "ps-3",
    )
    assert row["payload"] == '{"type":"track"}'


def cdc_row(lsn: int = 100) -> dict:
    return {
        "op": "c",
        "pk": '{"user_id":1}',
        "before": None,
        "after": '{"user_id":1}',
        "lsn": lsn,
        "tx_id": 7,
        "source_ts": datetime(2026, 11, 20, 11, 0),
        "snapshot": "false",
        "kafka_topic": "shop.public.users",
        "kafka_partition": 0,
        "kafka_offset": 3,
        "ingested_at": datetime(2026, 11, 20, 11, 0, 2),
        "ingest_date": date(2026, 11, 20),
    }


def test_cdc_messages_decode_to_their_table_and_garbage_is_dead_lettered():
    data = encode_raw_row("cdc_users", cdc_row())
    table, row = cdc_to_raw(PubsubMessage(data, {"table": "cdc_users"}, message_id="c1"), NOW)
    assert table == "cdc_users" and row == cdc_row()

    table, row = cdc_to_raw(PubsubMessage(b"garbage", {"table": "cdc_users"}, message_id="c2"), NOW)
    assert table == DEAD_LETTER and row["error"].startswith("cdc (cdc_users): not an encoded")
    assert row["pubsub_message_id"] == "c2" and row["payload"] == "garbage"

    not_cdc = encode_raw_row("events_dead_letter", {"stage": "x"})
    table, row = cdc_to_raw(PubsubMessage(not_cdc, {}, message_id="c3"), NOW)
    assert table == DEAD_LETTER and "not a CDC table" in row["error"]


def test_parse_dofns_in_a_pipeline():
    good, bad = pubsub(event(1), "p1"), pubsub(b"nope", "p2")
    dl = PubsubMessage(b"x", {"error": "bad", "stage": "collector"}, message_id="p3")
    cdc = PubsubMessage(encode_raw_row("cdc_users", cdc_row()), {}, message_id="p4")
    with BeamTestPipeline(runner=direct_runner()) as p:  # not Prism: a download
        events = p | "events" >> beam.Create([good, bad]) | "pe" >> ParseEvents(lambda: NOW)
        letters = p | "dl" >> beam.Create([dl]) | "pd" >> ParseDeadLetters(lambda: NOW)
        changes = p | "cdc" >> beam.Create([cdc]) | "pc" >> ParseCdc(lambda: NOW)
        assert_that(
            events | "t1" >> beam.Map(lambda e: (e[0], e[1].get("message_id"))),
            equal_to([(EVENTS, "msg-1"), (DEAD_LETTER, None)]),
            label="events",
        )
        assert_that(
            letters | "t2" >> beam.Map(lambda e: (e[0], e[1]["error"])),
            equal_to([(DEAD_LETTER, "bad")]),
            label="letters",
        )
        assert_that(
            changes | "t3" >> beam.Map(lambda e: (e[0], e[1]["lsn"])),
            equal_to([("cdc_users", 100)]),
            label="cdc",
        )


# --- local sink --------------------------------------------------------------------------------


def test_a_row_the_schema_refuses_is_dead_lettered_and_the_rest_written(tmp_path):
    writer = ParquetRawWriter(tmp_path)
    rows = [event_to_raw(pubsub(event(i), f"p{i}"), NOW)[1] for i in range(3)]
    rows[1] = {**rows[1], "source": None}  # required column
    written, rejected = write_rows(writer, EVENTS, rows, NOW)
    assert (written, rejected) == (2, 1)
    with duckdb.connect() as con:
        ids = con.execute(
            f"select message_id from read_parquet('{tmp_path}/events/*/*.parquet') order by 1"
        ).fetchall()
        letters = con.execute(
            "select error, message_id, pubsub_message_id, payload from "
            f"read_parquet('{tmp_path}/events_dead_letter/*/*.parquet')"
        ).fetchall()
    assert ids == [("msg-0",), ("msg-2",)]
    assert len(letters) == 1
    error, message_id, pubsub_id, payload = letters[0]
    assert "required columns without a value: ['source']" in error
    assert (message_id, pubsub_id) == ("msg-1", "p1")
    assert json.loads(payload)["messageId"] == "msg-1"


class FakeClock:
    """Processing time for GroupIntoBatches' buffering timer; TestStream's clock starts at 0."""

    def __init__(self) -> None:
        self.now = Timestamp(0)

    def __call__(self) -> Timestamp:
        return self.now


def _rows(n: int, start: int = 0) -> list[tuple[str, dict]]:
    return [event_to_raw(pubsub(event(i), f"p{i}"), NOW) for i in range(start, start + n)]


def test_micro_batches_flush_by_size_and_by_time(tmp_path):
    """flush_rows=4, flush_seconds=5: 6 rows then 5 s -> batches of 4 (size) and 2 (time);
    then 3 rows flushed at the end of the stream."""
    stream = (
        BeamTestStream()
        .advance_watermark_to(Timestamp(0))
        .add_elements(_rows(6))
        .advance_processing_time(6)
        .add_elements(_rows(3, start=6))
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with BeamTestPipeline(runner=direct_runner(), options=options) as p:
        written = (
            p
            | stream
            | WriteRawParquet(str(tmp_path), flush_rows=4, flush_seconds=5, clock=FakeClock())
        )
        assert_that(written, equal_to([(EVENTS, 4), (EVENTS, 2), (EVENTS, 3)]))
    files = sorted((tmp_path / "events").glob("event_date=*/*.parquet"))
    assert sorted(pq.read_metadata(f).num_rows for f in files) == [2, 3, 4]
    assert not list(tmp_path.rglob(".*.tmp"))


def test_whole_graph_on_the_direct_runner(tmp_path):
    """build_pipeline with in-memory inputs instead of Pub/Sub, streaming, to the lake."""
    messages = {
        "projects/local-project/subscriptions/ev": [pubsub(event(i), f"e{i}") for i in range(5)]
        + [pubsub(b"{bad", "e-bad")],
        "projects/local-project/subscriptions/dl": [
            PubsubMessage(
                b"raw body",
                {"error": "bad write key", "stage": "collector", "source": "web"},
                message_id="d1",
            )
        ],
        "projects/local-project/subscriptions/cdc": [
            PubsubMessage(encode_raw_row("cdc_users", cdc_row(lsn)), {}, message_id=f"c{lsn}")
            for lsn in (1, 2)
        ],
    }
    options = PipelineOptions(
        [
            "--events_subscription=ev",
            "--dead_letter_subscription=dl",
            "--cdc_subscription=cdc",
            "--pubsub_project=local-project",
            "--sink=parquet",
            f"--lake_dir={tmp_path}",
            "--flush_seconds=1",
            "--flush_rows=100",
        ]
    )
    options.view_as(StandardOptions).streaming = True
    before = local_counts()
    pipeline = beam.Pipeline(runner=direct_runner(), options=options)
    build_pipeline(
        pipeline, options.view_as(RawStreamOptions), read=lambda sub: beam.Create(messages[sub])
    )
    pipeline.run().wait_until_finish()
    after = local_counts()
    with duckdb.connect() as con:

        def q(table: str, cols: str) -> list:
            return sorted(
                con.execute(
                    f"select {cols} from read_parquet('{tmp_path}/{table}/**/*.parquet')"
                ).fetchall()
            )

        assert q("events", "message_id, ingestion_id") == [(f"msg-{i}", f"e{i}") for i in range(5)]
        assert q("events_dead_letter", "stage, pubsub_message_id") == [
            ("collector", "d1"),
            ("pipeline", "e-bad"),
        ]
        assert q("cdc_users", "lsn") == [(1,), (2,)]

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    assert (
        delta("events_valid"),
        delta("events_invalid"),
        delta("collector_dead_letters"),
        delta("cdc_valid"),
        delta("rows_written"),
    ) == (5, 1, 1, 2, 9)


def test_an_event_sent_late_lands_in_its_own_event_day():
    """An offline client sends yesterday's event today: its event_date is yesterday's."""
    late = event(3, originalTimestamp="2026-11-18T23:00:00.000Z", sentAt="2026-11-20T11:59:30.000Z")
    _, row = event_to_raw(pubsub(late), NOW)
    assert row["event_timestamp"] == datetime(2026, 11, 18, 23, 0, 30)
    assert row["event_date"] == date(2026, 11, 18)
    assert row["ingested_at"].tzinfo is None and row["received_at"].tzinfo is None
