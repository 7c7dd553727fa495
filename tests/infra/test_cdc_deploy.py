"""The CDC path's deployment against the code that runs behind it: the Debezium connector emits
every operation the bridge applies, the Kafka Connect image cannot be built from an unverified
plugin, and the shop database bounds the WAL a replication slot may hold."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from platform_core.raw.schema import raw_table
from streaming.cdc.bridge_records import read_change
from streaming.cdc.debezium import OPS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CONNECTOR = INFRA / "k8s" / "kafka" / "debezium-connector.yaml"
CONNECT_DOCKERFILE = INFRA / "docker" / "kafka-connect.Dockerfile"

# Debezium 2.x's default for skipped.operations (documented for the PostgreSQL connector:
# "t", truncates are skipped unless the setting says otherwise).
DEBEZIUM_DEFAULT_SKIPPED = "t"


def connector_config() -> dict[str, Any]:
    return yaml.safe_load(CONNECTOR.read_text())["spec"]["config"]


def emitted_operations(config: dict[str, Any]) -> set[str]:
    skipped = str(config.get("skipped.operations", DEBEZIUM_DEFAULT_SKIPPED))
    skipped_ops = set() if skipped == "none" else {op.strip() for op in skipped.split(",")}
    return {"c", "u", "d", "r", "t"} - skipped_ops


def test_the_connector_emits_every_operation_the_bridge_applies() -> None:
    """Without skipped.operations Debezium drops truncates: a TRUNCATE on the shop would leave
    every row in staging."""
    assert emitted_operations({}) == {"c", "u", "d", "r"}  # what the default would do
    assert emitted_operations(connector_config()) == set(OPS)


def test_a_debezium_truncate_event_becomes_a_raw_row() -> None:
    """A truncate as Debezium 2.7's PostgreSQL connector writes it (JsonConverter, no schemas):
    no key, no before/after, op "t"."""
    value = {
        "before": None,
        "after": None,
        "source": {
            "version": "2.7.3.Final",
            "connector": "postgresql",
            "name": "shop",
            "ts_ms": 1763632800123,
            "snapshot": "false",
            "db": "shop",
            "sequence": '["24023128", "24023184"]',
            "schema": "public",
            "table": "orders",
            "txId": 771,
            "lsn": 24023184,
            "xmin": None,
        },
        "op": "t",
        "ts_ms": 1763632800456,
        "transaction": None,
    }
    change = read_change(
        None,
        json.dumps(value).encode(),
        ingested_at=datetime(2025, 11, 20, tzinfo=UTC),
        topic="shop.public.orders",
        partition=0,
        offset=9,
    )
    assert change is not None and change.table == "cdc_orders"
    assert change.row["op"] == "t" and change.row["pk"] is None
    assert change.row["lsn"] == 24023184
    assert {c.name for c in raw_table("cdc_orders").columns} == set(change.row)


def plugin_guard() -> str:
    """The shell the plugin stage runs before it downloads anything."""
    text = re.sub(r"\\\n", " ", CONNECT_DOCKERFILE.read_text())
    run = next(line for line in text.splitlines() if line.startswith("RUN ") and "SHA512" in line)
    return run.removeprefix("RUN ").split("&& wget")[0]


def test_the_connect_image_build_fails_closed_without_the_plugin_checksum() -> None:
    dockerfile = CONNECT_DOCKERFILE.read_text()
    assert re.search(r"^ARG DEBEZIUM_SHA512$", dockerfile, re.MULTILINE), "no default checksum"
    assert "sha512sum -c -" in dockerfile
    assert "if [ -n" not in dockerfile, "the checksum check must not be optional"
    guard = plugin_guard()
    for value, ok in [("", False), ("abc", False), ("0" * 128, True), ("g" * 128, False)]:
        result = subprocess.run(
            ["sh", "-c", guard],
            env={"DEBEZIUM_SHA512": value, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert (result.returncode == 0) is ok, (value, result.stderr)
