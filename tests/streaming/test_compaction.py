"""Compaction of the raw lake: same rows, same message ids, safe with a writer appending."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from platform_core.raw.rows import dead_letter_row, event_row
from streaming.raw.compaction import (
    COMPACTED_PREFIX,
    JOURNAL_PREFIX,
    compact_lake,
    compact_partition,
    compaction_input_ctime,
    data_files,
    partition_lock,
    recover,
)
from streaming.raw.writer import ParquetRawWriter

DAY = date(2026, 11, 20)
FUTURE = time.time() + 3600  # "now" for compaction: every file is older than the grace period


def events(start: int, n: int, day: date = DAY) -> list[dict]:
    received = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    return [
        event_row(
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": f"a{i}",
                "messageId": f"m-{i:05d}",
                "originalTimestamp": received.isoformat(),
                "properties": {"product_id": str(i)},
            },
            source="web",
            received_at=received,
            ingested_at=received,
            ingestion_id=f"ps-{i}",
        )
        for i in range(start, start + n)
    ]


def lake_rows(lake, table: str = "events") -> list[tuple]:
    with duckdb.connect() as con:
        return sorted(
            con.execute(
                f"select message_id, ingestion_id, event_date from "
                f"read_parquet('{lake}/{table}/**/*.parquet', union_by_name=true)"
            ).fetchall()
        )


@pytest.fixture
def lake(tmp_path):
    writer = ParquetRawWriter(tmp_path)
    writer.ensure_tables()
    for batch in range(12):  # 12 small files, one day, plus a second day
        writer.write("events", events(batch * 10, 10))
    writer.write("events", events(500, 5, DAY - timedelta(days=1)))
    writer.write("events", events(600, 5, DAY - timedelta(days=1)))
    return tmp_path


def test_compaction_keeps_every_row_and_message_id(lake):
    before = lake_rows(lake)
    report = compact_lake(lake, ["events"], min_age_seconds=60, now=FUTURE)
    after = lake_rows(lake)
    assert after == before and len(after) == 130
    assert Counter(r[0] for r in after) == Counter(r[0] for r in before)
    for day, n_rows in ((DAY, 120), (DAY - timedelta(days=1), 10)):
        files = data_files(lake / "events" / f"event_date={day}")
        assert len(files) == 1 and files[0].name.startswith(COMPACTED_PREFIX)
        assert pq.read_metadata(files[0]).num_rows == n_rows
    summary = report.summary()["events"]
    assert summary == {
        **summary,
        "partitions_compacted": 2,
        "files_in": 14,
        "files_out": 2,
        "rows": 130,
    }
    assert not list(lake.rglob(f"{JOURNAL_PREFIX}*")) and not list(lake.rglob(".*.tmp"))
    # the schema file stays; a second run has nothing to do
    assert (lake / "events" / "_schema.parquet").exists()
    again = compact_lake(lake, ["events"], min_age_seconds=60, now=FUTURE)
    assert not again.compacted and lake_rows(lake) == before


def test_files_younger_than_the_grace_period_are_left_alone(lake):
    partition = lake / "events" / f"event_date={DAY}"
    files = data_files(partition)
    result = compact_partition(partition, "events", min_age_seconds=3600)
    assert result.skipped and data_files(partition) == files
    # only the old ones: pretend the first 5 are old by moving "now" just past them
    cutoff = max(f.stat().st_ctime for f in files[:5]) + 3600 + 1e-3
    result = compact_partition(partition, "events", min_age_seconds=3600, now=cutoff)
    assert len(result.inputs) >= 5
    assert set(result.inputs) <= {f.name for f in files}


def test_merged_file_records_the_newest_input_change_time(lake):
    partition = lake / "events" / f"event_date={DAY}"
    newest = max(max(f.stat().st_mtime_ns, f.stat().st_ctime_ns) for f in data_files(partition))
    compact_partition(partition, "events", min_age_seconds=0, now=FUTURE)
    (merged,) = data_files(partition)
    assert compaction_input_ctime(merged) == newest
    assert compaction_input_ctime(partition.parent / "_schema.parquet") is None


def test_a_crash_after_the_merged_file_landed_is_finished_by_the_next_run(lake):
    """Journal + merged file + inputs all present (crash before deleting the inputs)."""
    partition = lake / "events" / f"event_date={DAY}"
    before = lake_rows(lake)
    inputs = data_files(partition)
    import shutil

    backup = lake.parent / "backup"
    shutil.copytree(partition, backup)
    compact_partition(partition, "events", min_age_seconds=0, now=FUTURE)
    (merged,) = data_files(partition)
    for f in inputs:  # put the inputs back and write the journal: the crash state
        shutil.copy2(backup / f.name, partition / f.name)
    (partition / f"{JOURNAL_PREFIX}abc.json").write_text(
        json.dumps({"outputs": [merged.name], "inputs": [f.name for f in inputs], "rows": 120})
    )
    assert len(lake_rows(lake)) == len(before) + 120  # transiently doubled
    assert recover(partition) == len(inputs)
    assert lake_rows(lake) == before
    assert not list(partition.glob(f"{JOURNAL_PREFIX}*"))


def test_a_crash_before_the_merged_file_landed_keeps_the_inputs(lake):
    partition = lake / "events" / f"event_date={DAY}"
    before = lake_rows(lake)
    inputs = data_files(partition)
    (partition / f"{JOURNAL_PREFIX}abc.json").write_text(
        json.dumps(
            {"outputs": ["compacted-x.parquet"], "inputs": [f.name for f in inputs], "rows": 120}
        )
    )
    (partition / ".compacted-x.parquet.1234.tmp").write_bytes(b"half a file")
    assert recover(partition) == 0
    assert data_files(partition) == inputs and lake_rows(lake) == before
    assert not list(partition.glob(f"{JOURNAL_PREFIX}*")) and not list(partition.glob(".*tmp"))


def test_one_compaction_per_partition_at_a_time(lake):
    partition = lake / "events" / f"event_date={DAY}"
    with partition_lock(partition) as locked:
        assert locked
        result = compact_partition(partition, "events", min_age_seconds=0, now=FUTURE)
        assert result.skipped == "another compaction holds this partition"
        assert not result.outputs


def test_compaction_while_the_writer_keeps_appending(tmp_path):
    """A writer adds files to the same partition during repeated compactions."""
    writer = ParquetRawWriter(tmp_path)
    writer.ensure_tables()
    writer.write("events", events(0, 10))
    partition = tmp_path / "events" / f"event_date={DAY}"
    stop = threading.Event()
    written = []

    def append() -> None:
        i = 1
        while not stop.is_set() and i < 200:
            writer.write("events", events(i * 10, 10))
            written.append(i)
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=append)
    thread.start()
    compactions = 0
    while thread.is_alive():
        # compact everything that exists right now (grace 0): the new files keep coming
        compactions += len(compact_partition(partition, "events", min_age_seconds=0).outputs)
        # a reader sees every row whose write had returned when it started, at least once
        done = len(written)
        seen = {r[0] for r in lake_rows(tmp_path)}
        assert {f"m-{i:05d}" for i in range(10 * (1 + done))} <= seen
    stop.set()
    thread.join()
    compact_partition(partition, "events", min_age_seconds=0)
    rows = lake_rows(tmp_path)
    expected = 10 * (1 + len(written))
    assert compactions >= 2
    assert len(rows) == expected
    assert Counter(r[0] for r in rows) == Counter(f"m-{i:05d}" for i in range(expected))


def test_dead_letter_and_cdc_partitions_compact_too(tmp_path):
    writer = ParquetRawWriter(tmp_path)
    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    for i in range(3):
        writer.write(
            "events_dead_letter",
            [dead_letter_row(stage="pipeline", error=f"e{i}", payload="x", ingested_at=now)],
        )
    report = compact_lake(tmp_path, min_age_seconds=0, now=FUTURE)
    assert report.summary()["events_dead_letter"]["rows"] == 3
    with duckdb.connect() as con:
        assert (
            con.execute(
                f"select count(*) from read_parquet('{tmp_path}/events_dead_letter/**/*.parquet')"
            ).fetchone()[0]
            == 3
        )


def test_the_dagster_job_compacts_and_observes_the_raw_assets(lake):
    from platform_assets.compaction.jobs import compact_raw_lake_job
    from platform_assets.resources import PlatformResource
    from platform_core.settings import Settings

    # the run uses the lake named in its resource config, whatever this process's settings
    settings = Settings.from_env({"LAKE_DIR": str(lake), "PLATFORM_ENV": "local"})
    before = lake_rows(lake)
    with dg.instance_for_test() as instance:
        result = compact_raw_lake_job.execute_in_process(
            instance=instance,
            resources={"platform": PlatformResource.from_settings(settings)},
            run_config={
                "ops": {
                    "compact_lake_files": {"config": {"tables": ["events"], "min_age_seconds": 0}}
                }
            },
        )
        assert result.success
        observations = [
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
    assert lake_rows(lake) == before
    assert [o.asset_key.to_user_string() for o in observations] == ["raw/events"]
    meta = observations[0].metadata
    assert meta["files_in"].value == 14 and meta["files_out"].value == 2
    assert meta["rows_rewritten"].value == 130
    assert compact_raw_lake_job.tags["platform/warehouse"] == "refresh"


def test_the_compaction_definitions_load_in_a_code_location():
    from platform_assets.compaction.definitions import build_defs
    from platform_core.settings import Settings

    defs = build_defs(Settings(platform_env="local"))
    (schedule,) = defs.schedules
    assert not build_defs(Settings(platform_env="gcp")).jobs, "BigQuery needs no compaction"
    defs.get_repository_def().load_all_definitions()
    assert defs.resolve_job_def("compact_raw_lake").name == "compact_raw_lake"
    assert schedule.cron_schedule == "7,37 * * * *"
