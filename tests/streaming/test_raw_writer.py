"""The raw layer: schemas, row builders and the two writers (Parquet lake and BigQuery)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_core.contract import ContractError
from platform_core.raw.rows import dead_letter_row, event_row, parse_user_agent, traffic_source
from platform_core.raw.schema import CDC_TABLES, EVENTS, RAW_TABLES, raw_table
from streaming.raw import writer as writer_module
from streaming.raw.writer import (
    SCHEMA_FILE,
    BigQueryRawWriter,
    ParquetRawWriter,
    RawWriteError,
    chunked,
    to_arrow,
)

RECEIVED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
INGESTED = datetime(2025, 3, 1, 12, 0, 2, tzinfo=UTC)

UA = {
    "windows_chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Safari/537.36",
    "windows_edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "windows_opera": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
    "mac_safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Safari/605.1.15",
    "linux_firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "chromebook": "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Safari/537.36",
    "iphone_safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "iphone_chrome": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/126.0.6478.153 Mobile/15E148 Safari/604.1",
    "ipad_safari": "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "pixel_chrome": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "samsung_internet": "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, "
    "like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "galaxy_tab": "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Safari/537.36",
    "iphone_firefox": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15",
}


def message(**overrides: Any) -> dict[str, Any]:
    base = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "ajs-next-0001",
        "anonymousId": "anon-1",
        "userId": "42",
        "timestamp": "2025-03-01T11:59:58.000Z",
        "sentAt": "2025-03-01T11:59:59.000Z",
        "properties": {"product_id": "p1", "price": 12.5},
        "context": {
            "userAgent": UA["windows_chrome"],
            "page": {"path": "/p/p1", "url": "https://shop.example.com/p/p1", "referrer": ""},
        },
    }
    base.update(overrides)
    return base


def ev_row(payload: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    args = {
        "source": "web",
        "received_at": RECEIVED,
        "ingested_at": INGESTED,
        "ingestion_id": "batch-1",
    }
    args.update(kwargs)
    return event_row(payload or message(), **args)


def dl_row(day: date = date(2025, 3, 1), **overrides: Any) -> dict[str, Any]:
    row = dead_letter_row(
        stage="collector",
        error="type: bad",
        payload='{"type":"x"}',
        ingested_at=datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10),
    )
    row.update(overrides)
    return row


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def data_files(root: Path) -> list[Path]:
    return [p for p in files_under(root) if p.name != SCHEMA_FILE]


@pytest.fixture
def lake(tmp_path: Path) -> ParquetRawWriter:
    writer = ParquetRawWriter(tmp_path / "lake")
    writer.ensure_tables()
    return writer


def read(writer: ParquetRawWriter, table: str, columns: str = "*", **options: Any) -> list[tuple]:
    opts = "".join(f", {k} = {str(v).lower()}" for k, v in options.items())
    sql = f"select {columns} from read_parquet('{writer.glob(table)}'{opts}) order by all"
    with duckdb.connect() as con:
        return con.sql(sql).fetchall()


# --- schema ---------------------------------------------------------------------------------


def test_raw_tables_and_partitioning():
    assert set(RAW_TABLES) == {"events", "events_dead_letter", *(f"cdc_{t}" for t in CDC_TABLES)}
    for spec in RAW_TABLES.values():
        assert spec.partition_column in spec.column_names
        assert set(spec.cluster_columns) <= set(spec.column_names)
        part = spec.arrow_schema.field(spec.partition_column)
        assert part.type == pa.date32() and not part.nullable
        assert len(set(spec.column_names)) == len(spec.column_names)
    with pytest.raises(KeyError, match="unknown raw table 'nope'"):
        raw_table("nope")


def test_timestamps_are_naive_microseconds():
    for spec in RAW_TABLES.values():
        for column in spec.columns:
            if column.bq_type == "TIMESTAMP":
                assert column.arrow == pa.timestamp("us")


# --- Parquet writer -------------------------------------------------------------------------


def test_ensure_tables_creates_zero_row_schema_files_readable_by_duckdb(lake):
    for spec in RAW_TABLES.values():
        path = lake.table_path(spec.name) / SCHEMA_FILE
        assert path.is_file()
        assert pq.read_schema(path).equals(spec.arrow_schema)
        with duckdb.connect() as con:
            rel = con.sql(f"select * from read_parquet('{path}')")
            assert rel.columns == list(spec.column_names)
            assert rel.fetchall() == []
            # the glob resolves the schema before any data has landed
            assert con.sql(
                f"select count(*) from read_parquet('{lake.glob(spec.name)}')"
            ).fetchall() == [(0,)]


def test_ensure_tables_is_idempotent_and_keeps_data(lake):
    lake.write("events_dead_letter", [dl_row()])
    schema_file = lake.table_path("events_dead_letter") / SCHEMA_FILE
    before = schema_file.stat().st_ino, schema_file.stat().st_mtime_ns
    lake.ensure_tables()
    assert (schema_file.stat().st_ino, schema_file.stat().st_mtime_ns) == before
    assert len(read(lake, "events_dead_letter")) == 1


def test_files_land_in_hive_style_partitions(lake):
    rows = [dl_row(date(2025, 3, 1)), dl_row(date(2025, 3, 2)), dl_row(date(2025, 3, 2))]
    assert lake.write("events_dead_letter", rows) == 3
    table_dir = lake.table_path("events_dead_letter")
    files = data_files(table_dir)
    assert [f.parent.relative_to(table_dir).as_posix() for f in files] == [
        "ingest_date=2025-03-01",
        "ingest_date=2025-03-02",
    ]
    assert all(f.name.startswith("part-") and f.suffix == ".parquet" for f in files)
    assert [pq.read_metadata(f).num_rows for f in files] == [1, 2]


def test_event_rows_partition_by_event_date(lake):
    # an app that was offline for two days sends an old event now
    late = message(timestamp="2025-02-27T08:00:00.000Z", sentAt="2025-03-01T11:59:59.000Z")
    lake.write("events", [ev_row(), ev_row(late)])
    dirs = {f.parent.name for f in data_files(lake.table_path("events"))}
    assert dirs == {"event_date=2025-03-01", "event_date=2025-02-27"}


def test_two_writes_append_and_never_overwrite(lake):
    lake.write("events_dead_letter", [dl_row(error="first")])
    first_files = data_files(lake.lake_path)
    first_bytes = first_files[0].read_bytes()
    lake.write("events_dead_letter", [dl_row(error="second"), dl_row(error="first")])
    files = data_files(lake.lake_path)
    assert len(files) == 2
    assert first_files[0] in files and first_files[0].read_bytes() == first_bytes
    assert read(lake, "events_dead_letter", "error") == [("first",), ("first",), ("second",)]


def test_writing_nothing_writes_no_file(lake):
    assert lake.write("events", []) == 0
    assert data_files(lake.lake_path) == []


def test_reader_sees_exactly_the_written_rows(lake):
    rows = [
        ev_row(message(messageId=f"m-{i}", event="Product Added" if i % 2 else "X"))
        for i in range(5)
    ]
    lake.write("events", rows[:2])
    lake.write("events", rows[2:])
    for options in ({}, {"union_by_name": True, "hive_partitioning": False}):
        got = read(lake, "events", ", ".join(EVENTS.column_names), **options)
        expected = sorted(tuple(r[c] for c in EVENTS.column_names) for r in rows)
        assert got == expected


def test_no_temp_files_remain(lake):
    for day in range(1, 4):
        lake.write("events_dead_letter", [dl_row(date(2025, 3, day))])
    lake.write("events", [ev_row()])
    leftovers = [
        p for p in files_under(lake.lake_path) if p.name.startswith(".") or p.suffix == ".tmp"
    ]
    assert leftovers == []


def test_unknown_column_raises_and_writes_nothing(lake):
    with pytest.raises(RawWriteError, match=r"unknown columns \['colour'\]"):
        lake.write("events_dead_letter", [dl_row(), dl_row(colour="red")])
    assert data_files(lake.lake_path) == []
    assert read(lake, "events_dead_letter") == []


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("ingested_at", "not a timestamp"),
        ("stage", 12),
        ("error", {"a": 1}),
        ("ingested_at", [2025, 3, 1]),
    ],
)
def test_wrong_type_raises_and_writes_nothing(lake, column, value):
    with pytest.raises(RawWriteError, match="do not match the raw schema"):
        lake.write("events_dead_letter", [dl_row(), dl_row(**{column: value})])
    assert files_under(lake.lake_path / "events_dead_letter") == [
        lake.table_path("events_dead_letter") / SCHEMA_FILE
    ]


def test_rows_without_partition_value_raise(lake):
    with pytest.raises(RawWriteError, match="ingest_date must be a date"):
        lake.write("events_dead_letter", [dl_row(ingest_date=None)])
    assert data_files(lake.lake_path) == []


def test_unknown_table_raises(lake):
    with pytest.raises(KeyError):
        lake.write("orders", [{"x": 1}])


def test_bad_row_in_a_later_partition_leaves_nothing_behind(lake):
    """RawWriteError promises nothing of the failed call is visible to readers. Rows are
    validated partition by partition while files are written, so a bad row in the second
    partition used to leave the first partition's file in the lake."""
    good = dl_row(date(2025, 3, 1))
    bad = dl_row(date(2025, 3, 2), ingested_at="garbage")
    with pytest.raises(RawWriteError):
        lake.write("events_dead_letter", [good, bad])
    assert data_files(lake.lake_path) == []
    assert read(lake, "events_dead_letter") == []


def test_null_in_required_column_raises_raw_write_error_and_writes_nothing(lake):
    """`stage` is REQUIRED; a missing value must be a RawWriteError (callers dead-letter on
    it), not a pyarrow error escaping from the Parquet writer."""
    with pytest.raises(RawWriteError):
        lake.write("events_dead_letter", [dl_row(stage=None)])
    assert data_files(lake.lake_path) == []


def test_partition_value_of_wrong_type_raises_raw_write_error(lake):
    with pytest.raises(RawWriteError):
        lake.write("events_dead_letter", [dl_row(), dl_row(ingest_date="2025-03-02")])
    assert data_files(lake.lake_path) == []


def test_failure_during_file_write_leaves_no_temp_and_no_target(lake, monkeypatch):
    real_write_table = pq.write_table

    def half_written(table, where, **kwargs):
        where.write(b"PAR1 partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(writer_module.pq, "write_table", half_written)
    with pytest.raises(OSError, match="disk full"):
        lake.write("events_dead_letter", [dl_row()])
    monkeypatch.setattr(writer_module.pq, "write_table", real_write_table)
    assert files_under(lake.table_path("events_dead_letter")) == [
        lake.table_path("events_dead_letter") / SCHEMA_FILE
    ]
    assert read(lake, "events_dead_letter") == []


def test_aware_datetimes_are_stored_as_utc(lake):
    plus_two = timezone(timedelta(hours=2))
    lake.write(
        "events_dead_letter", [dl_row(ingested_at=datetime(2025, 3, 1, 12, tzinfo=plus_two))]
    )
    assert read(lake, "events_dead_letter", "ingested_at") == [(datetime(2025, 3, 1, 10),)]


def test_to_arrow_matches_the_schema_exactly():
    table = to_arrow(EVENTS, [ev_row()])
    assert table.schema.equals(EVENTS.arrow_schema)
    assert table.num_rows == 1


def test_chunked():
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


# --- event_row ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("windows_chrome", ("desktop", "Windows", "Chrome")),
        ("windows_edge", ("desktop", "Windows", "Edge")),
        ("windows_opera", ("desktop", "Windows", "Opera")),
        ("mac_safari", ("desktop", "macOS", "Safari")),
        ("linux_firefox", ("desktop", "Linux", "Firefox")),
        ("chromebook", ("desktop", "ChromeOS", "Chrome")),
        ("iphone_safari", ("mobile", "iOS", "Safari")),
        ("iphone_chrome", ("mobile", "iOS", "Chrome")),
        ("iphone_firefox", ("mobile", "iOS", "Firefox")),
        ("ipad_safari", ("tablet", "iOS", "Safari")),
        ("pixel_chrome", ("mobile", "Android", "Chrome")),
        ("samsung_internet", ("mobile", "Android", "Samsung Internet")),
        ("galaxy_tab", ("tablet", "Android", "Chrome")),
    ],
)
def test_user_agent_parsing(agent, expected):
    assert parse_user_agent(UA[agent]) == expected
    row = ev_row(message(context={"userAgent": UA[agent]}))
    assert (row["device_type"], row["os_name"], row["browser"]) == expected


def test_missing_user_agent():
    assert parse_user_agent(None) == (None, None, None)
    row = ev_row(message(context={}))
    assert (row["device_type"], row["os_name"], row["browser"]) == ("unknown", None, None)


def test_app_context_device_and_os_win_over_user_agent():
    context = {
        "device": {"type": "Tablet", "model": "iPad13,4"},
        "os": {"name": "iOS", "version": "18.1"},
        "userAgent": UA["windows_chrome"],
    }
    row = ev_row(message(context=context))
    assert row["device_type"] == "tablet"
    assert row["os_name"] == "iOS"
    assert row["browser"] == "Chrome"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (
            {
                "campaign": {"source": " Newsletter ", "medium": "email"},
                "page": {"referrer": "https://www.google.com/"},
            },
            "newsletter",
        ),
        (
            {
                "page": {
                    "referrer": "https://www.google.com/search?q=mug",
                    "url": "https://shop.example.com/",
                }
            },
            "google.com",
        ),
        (
            {
                "page": {
                    "referrer": "https://l.facebook.com/l.php",
                    "url": "https://shop.example.com/",
                }
            },
            "l.facebook.com",
        ),
        (
            {
                "page": {
                    "referrer": "https://shop.example.com/c/books",
                    "url": "https://www.shop.example.com/p/1",
                }
            },
            "direct",
        ),
        ({"page": {"referrer": "", "url": "https://shop.example.com/"}}, "direct"),
        ({"campaign": {"source": ""}, "page": {}}, "direct"),
        ({}, "direct"),
    ],
)
def test_traffic_source(context, expected):
    assert traffic_source(context) == expected
    assert ev_row(message(context=context))["traffic_source"] == expected


def test_event_row_uses_skew_corrected_time_for_event_date():
    # client clock 2 h fast: it believes it is already 2 March
    payload = message(timestamp="2025-03-02T01:58:00.000Z", sentAt="2025-03-02T01:59:00.000Z")
    received = datetime(2025, 3, 1, 23, 59, 0, 300000, tzinfo=UTC)
    row = ev_row(payload, received_at=received)
    assert row["event_timestamp"] == datetime(2025, 3, 1, 23, 58, 0, 300000)
    assert row["event_date"] == date(2025, 3, 1)
    assert row["original_timestamp"] == datetime(2025, 3, 2, 1, 58)
    assert row["sent_at"] == datetime(2025, 3, 2, 1, 59)


def test_event_row_timestamps_are_naive_utc():
    payload = message(
        originalTimestamp="2025-03-01T13:59:50.000+02:00",
        timestamp="2025-03-01T14:00:00.000+02:00",
        sentAt="2025-03-01T14:00:00.000+02:00",
    )
    received = datetime(2025, 3, 1, 7, 0, 1, tzinfo=timezone(timedelta(hours=-5)))
    row = ev_row(
        payload,
        received_at=received,
        ingested_at=datetime(2025, 3, 1, 13, 0, 3, tzinfo=timezone(timedelta(hours=1))),
    )
    for column in (
        "original_timestamp",
        "sent_at",
        "received_at",
        "event_timestamp",
        "ingested_at",
    ):
        assert row[column].tzinfo is None, column
    assert row["original_timestamp"] == datetime(2025, 3, 1, 11, 59, 50)  # originalTimestamp wins
    assert row["received_at"] == datetime(2025, 3, 1, 12, 0, 1)
    assert row["event_timestamp"] == datetime(2025, 3, 1, 11, 59, 51)
    assert row["ingested_at"] == datetime(2025, 3, 1, 12, 0, 3)


def test_event_row_without_client_timestamps_uses_receipt_time():
    payload = message()
    del payload["timestamp"], payload["sentAt"]
    row = ev_row(payload)
    assert row["event_timestamp"] == datetime(2025, 3, 1, 12)
    assert row["original_timestamp"] is None and row["sent_at"] is None


def test_event_row_fields():
    payload = message()
    row = ev_row(payload, payload_json='{"as":"received"}')
    assert set(row) == set(EVENTS.column_names)
    assert row["message_id"] == "ajs-next-0001"
    assert (row["type"], row["event"], row["user_id"], row["anonymous_id"]) == (
        "track",
        "Product Viewed",
        "42",
        "anon-1",
    )
    assert row["source"] == "web" and row["ingestion_id"] == "batch-1"
    assert row["page_path"] == "/p/p1"
    assert row["payload"] == '{"as":"received"}'
    assert json.loads(ev_row(payload)["payload"]) == payload


def test_event_row_names_page_and_screen():
    page = {"type": "page", "name": "Cart", "messageId": "m", "anonymousId": "a"}
    identify = {"type": "identify", "messageId": "m", "userId": "u"}
    assert ev_row(page)["event"] == "Cart"
    assert ev_row(identify)["event"] is None


def test_event_row_rejects_invalid_and_unstamped_messages():
    with pytest.raises(ContractError, match="Product Added properties.price"):
        ev_row(message(event="Product Added", properties={"product_id": "p", "price": -1}))
    unstamped = message()
    del unstamped["messageId"]
    with pytest.raises(ContractError, match="messageId"):
        ev_row(unstamped)


# --- dead_letter_row ------------------------------------------------------------------------


def test_dead_letter_keeps_non_utf8_bytes_and_truncates_error(lake):
    raw = b'{"type":"track","event":"Caf\xe9"}\xff\xfe'
    minus_two = timezone(-timedelta(hours=2))
    row = dead_letter_row(
        stage="collector",
        error="x" * 5000,
        payload=raw,
        ingested_at=datetime(2025, 3, 1, 23, 30, tzinfo=minus_two),
        source="web",
        message_id=None,
        pubsub_message_id="123",
    )
    assert row["payload"] == '{"type":"track","event":"Caf\ufffd"}\ufffd\ufffd'
    assert len(row["error"]) == 2000
    assert row["ingested_at"] == datetime(2025, 3, 2, 1, 30)
    assert row["ingest_date"] == date(2025, 3, 2)
    lake.write("events_dead_letter", [row])
    assert read(lake, "events_dead_letter", "payload, pubsub_message_id") == [
        (row["payload"], "123")
    ]


def test_dead_letter_keeps_text_verbatim():
    row = dead_letter_row(
        stage="pipeline", error="short", payload="not json {", ingested_at=datetime(2025, 3, 1, 1)
    )
    assert row["payload"] == "not json {" and row["error"] == "short"
    assert row["ingest_date"] == date(2025, 3, 1)


# --- BigQuery writer (fake client) -----------------------------------------------------------


class FakeJob:
    def __init__(self, errors=None):
        self.errors = errors
        self.waited = False

    def result(self):
        self.waited = True
        return self


class FakeClient:
    def __init__(self, errors=None):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.errors = errors
        self.jobs: list[FakeJob] = []

    def load_table_from_json(self, rows, destination, **kwargs):
        json.dumps(rows)  # what the real client does with them
        self.calls.append(("load_table_from_json", (rows, destination), kwargs))
        self.jobs.append(FakeJob(self.errors))
        return self.jobs[-1]

    def create_dataset(self, dataset, **kwargs):
        self.calls.append(("create_dataset", (dataset,), kwargs))

    def create_table(self, table, **kwargs):
        self.calls.append(("create_table", (table,), kwargs))


@pytest.fixture
def bq() -> tuple[BigQueryRawWriter, FakeClient]:
    client = FakeClient()
    return BigQueryRawWriter(client, "acme-data", "raw", location="EU"), client


def check_schema(fields, spec):
    assert [f.name for f in fields] == list(spec.column_names)
    for field, column in zip(fields, spec.columns, strict=True):
        assert field.field_type == column.bq_type
        assert field.mode == ("REQUIRED" if column.required else "NULLABLE")


def test_bigquery_write_sends_json_ready_rows_with_a_load_job(bq):
    writer, client = bq
    rows = [ev_row(), ev_row(message(messageId="m-2"))]
    assert writer.write("events", rows) == 2
    [(name, (sent, destination), kwargs)] = client.calls
    assert name == "load_table_from_json"
    assert destination == "acme-data.raw.events"
    assert kwargs["location"] == "EU"
    assert client.jobs[0].waited
    first = sent[0]
    assert first["received_at"] == "2025-03-01T12:00:00"
    assert first["event_timestamp"] == "2025-03-01T11:59:59"
    assert first["ingested_at"] == "2025-03-01T12:00:02"
    assert first["event_date"] == "2025-03-01"
    assert first["message_id"] == "ajs-next-0001" and sent[1]["message_id"] == "m-2"
    assert json.loads(json.dumps(sent)) == sent

    config = kwargs["job_config"]
    assert config.write_disposition == "WRITE_APPEND"
    assert config.source_format == "NEWLINE_DELIMITED_JSON"
    assert config.time_partitioning.type_ == "DAY"
    assert config.time_partitioning.field == "event_date"
    assert config.clustering_fields == ["type", "event"]
    check_schema(config.schema, EVENTS)


def test_bigquery_aware_datetimes_become_naive_utc_strings(bq):
    writer, client = bq
    row = dl_row(ingested_at=datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))))
    writer.write("events_dead_letter", [row])
    sent = client.calls[0][1][0][0]
    assert sent["ingested_at"] == "2025-03-01T10:30:00"
    assert sent["ingest_date"] == "2025-03-01"
    config = client.calls[0][2]["job_config"]
    assert config.time_partitioning.field == "ingest_date"
    assert config.clustering_fields == ["stage"]


def test_bigquery_ensure_tables_creates_dataset_and_every_table(bq):
    writer, client = bq
    writer.ensure_tables()
    name, (dataset,), kwargs = client.calls[0]
    assert name == "create_dataset" and kwargs == {"exists_ok": True}
    assert (dataset.project, dataset.dataset_id, dataset.location) == ("acme-data", "raw", "EU")
    tables = {call[1][0].table_id: call for call in client.calls[1:]}
    assert set(tables) == set(RAW_TABLES)
    assert all(
        call[0] == "create_table" and call[2] == {"exists_ok": True} for call in tables.values()
    )
    for spec in RAW_TABLES.values():
        table = tables[spec.name][1][0]
        assert (table.project, table.dataset_id) == ("acme-data", "raw")
        assert table.time_partitioning.type_ == "DAY"
        assert table.time_partitioning.field == spec.partition_column
        assert table.clustering_fields == list(spec.cluster_columns)
        assert table.description == spec.description
        check_schema(table.schema, spec)


@pytest.mark.parametrize("bad", [{"ingested_at": "not a timestamp"}, {"colour": "red"}])
def test_bigquery_bad_row_raises_before_anything_is_sent(bq, bad):
    writer, client = bq
    with pytest.raises(RawWriteError):
        writer.write("events_dead_letter", [dl_row(), dl_row(**bad)])
    assert client.calls == []


def test_bigquery_null_in_required_column_raises_before_anything_is_sent(bq):
    writer, client = bq
    with pytest.raises(RawWriteError):
        writer.write("events_dead_letter", [dl_row(stage=None)])
    assert client.calls == []


def test_bigquery_load_errors_raise(bq):
    client = FakeClient(errors=[{"reason": "invalid", "message": "bad row"}])
    writer = BigQueryRawWriter(client, "acme-data", "raw")
    with pytest.raises(RawWriteError, match="bad row"):
        writer.write("events_dead_letter", [dl_row()])


def test_bigquery_empty_write_sends_nothing(bq):
    writer, client = bq
    assert writer.write("events", []) == 0
    assert client.calls == []
