"""Reconciliation logic (streaming/cdc/reconcile.py): canonical rendering, checksums, diffs,
and the Dagster check's results. The full check against a live stack runs in test_cdc_e2e."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import dagster as dg
import pytest

from devtools.shop.simulator import KEY_COLUMNS
from platform_assets.reconciliation import definitions as reconciliation_definitions
from platform_assets.reconciliation.checks import (
    CDC_TABLES,
    check_results,
    reconciliation_checks,
    staging_asset_key,
)
from platform_core.settings import Settings
from streaming.cdc.reconcile import (
    COMPARED_COLUMNS,
    DrainStatus,
    Reconciliation,
    canonical,
    canonical_rows,
    checksum,
    compare,
)


@pytest.mark.parametrize(
    "source,warehouse",
    [
        (Decimal("12.50"), Decimal("12.500000")),  # numeric(12,2) vs DuckDB decimal(28,6)
        (Decimal("10"), Decimal("1E+1")),
        (Decimal("0.00"), Decimal("-0")),
        (Decimal("12.5"), 12.5),
        (datetime(2026, 11, 20, 12, 0, 0, 1, tzinfo=UTC), datetime(2026, 11, 20, 12, 0, 0, 1)),
        (
            datetime(2026, 11, 20, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 11, 20, 12),
        ),
        (None, None),
        (True, True),
        (date(2026, 11, 20), date(2026, 11, 20)),
        ("text", "text"),
    ],
)
def test_same_value_renders_the_same_on_both_sides(source: object, warehouse: object) -> None:
    assert canonical(source) == canonical(warehouse)


@pytest.mark.parametrize(
    "left,right",
    [
        (True, 1),
        (None, ""),
        (None, "\\N"),
        (Decimal("12.5"), Decimal("12.51")),
        (datetime(2026, 11, 20, 12), datetime(2026, 11, 20, 12, 0, 0, 1)),
        ("a\x1fb", "a"),
    ],
)
def test_different_values_render_differently(left: object, right: object) -> None:
    assert canonical(left) != canonical(right)


def test_key_columns_come_first() -> None:
    for table, keys in KEY_COLUMNS.items():
        assert COMPARED_COLUMNS[table][: len(keys)] == keys


def test_checksum_ignores_row_order() -> None:
    rows = [(1, "a", Decimal("1.00")), (2, "b", None)]
    assert checksum(canonical_rows(rows, 1)) == checksum(canonical_rows(rows[::-1], 1))
    assert checksum(canonical_rows(rows, 1)) != checksum(canonical_rows(rows[:1], 1))


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate primary key"):
        canonical_rows([(1, "a"), (1, "b")], 1)


def test_compare_lists_missing_extra_and_different_keys() -> None:
    source = canonical_rows([(i, "paid", Decimal("10.00")) for i in range(1, 31)], 1)
    warehouse = canonical_rows(
        [(i, "paid", Decimal("10.0")) for i in range(3, 31)]  # 1 and 2 missing
        + [(99, "paid", Decimal("1"))]  # extra
        + [],
        1,
    )
    warehouse[("5",)] = warehouse[("5",)].replace("paid", "shipped")
    result = compare("orders", source, warehouse, max_keys=5)
    assert not result.matches
    assert result.differences == 4
    assert result.missing_in_warehouse == ['{"order_id":"1"}', '{"order_id":"2"}']
    assert result.extra_in_warehouse == ['{"order_id":"99"}']
    assert result.different == ['{"order_id":"5"}']
    capped = compare("orders", source, {}, max_keys=3)
    assert capped.differences == 30 and len(capped.missing_in_warehouse) == 3


def test_matching_tables() -> None:
    rows = canonical_rows([(1, 2, 3, 4, Decimal("5.00"))], 2)
    result = compare("order_items", rows, dict(rows))
    assert result.matches and result.differences == 0 and result.source_rows == 1


def test_check_results_not_drained_is_a_warning_not_a_diff() -> None:
    outcome = Reconciliation(
        DrainStatus(False, "the bridge is behind by 12 records", {"bridge_lag": 12}), {}
    )
    results = check_results(outcome)
    assert [r.asset_key for r in results] == [staging_asset_key(t) for t in CDC_TABLES]
    for result in results:
        assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
        assert result.metadata["status"].value == "not drained"
        assert "behind by 12" in result.description


def test_check_results_with_differences_fail_with_keys() -> None:
    source = canonical_rows([(1, "a@x", "A", "DE", True, None, None)], 1)
    tables = {t: compare(t, {}, {}) for t in CDC_TABLES}
    tables["users"] = compare("users", source, {})
    results = {
        r.asset_key: r for r in check_results(Reconciliation(DrainStatus(True, "drained"), tables))
    }
    users = results[staging_asset_key("users")]
    assert not users.passed and users.severity == dg.AssetCheckSeverity.ERROR
    assert users.metadata["missing_in_warehouse"].value == ['{"user_id":"1"}']
    assert results[staging_asset_key("orders")].passed


def test_definitions_load() -> None:
    specs = [dg.AssetSpec(staging_asset_key(t)) for t in CDC_TABLES]
    defs = dg.Definitions.merge(
        reconciliation_definitions.build_defs(Settings()), dg.Definitions(assets=specs)
    )
    keys = defs.resolve_asset_graph().asset_check_keys
    assert {k.asset_key for k in keys} == {staging_asset_key(t) for t in CDC_TABLES}
    assert len(reconciliation_checks()) == 1


def test_unreachable_source_is_reported_not_raised() -> None:
    from platform_assets.reconciliation.checks import CdcSourceResource

    specs = [dg.AssetSpec(staging_asset_key(t)) for t in CDC_TABLES]
    job = dg.define_asset_job(
        "reconcile", selection=dg.AssetSelection.checks(*reconciliation_checks())
    )
    defs = dg.Definitions(
        assets=specs,
        asset_checks=reconciliation_checks(),
        jobs=[job],
        resources={
            "cdc_source": CdcSourceResource.from_settings(
                Settings(), dsn="postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
            )
        },
    )
    result = defs.resolve_job_def("reconcile").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4
    assert all(not e.passed and e.severity == dg.AssetCheckSeverity.WARN for e in evaluations)
    assert "unreachable" in evaluations[0].description


class _Warehouse:
    def __init__(self, latest: datetime | None) -> None:
        self.latest = latest

    def rows(self, table: str, columns: object) -> list[tuple[object, ...]]:
        return []

    def raw_max_ingested_at(self, tables: object) -> datetime | None:
        return self.latest


# a source at LSN 0x180 and no Kafka to ask (the bridge's lag is not checked)
DRAIN_ARGS = dict(
    dsn="unused",
    source_lsn=0x180,
    slot="shop_cdc",
    kafka_bootstrap=None,
    bridge_group="cdc-bridge",
    topics=[],
    tables=CDC_TABLES,
    timeout=0.2,
)


@pytest.mark.parametrize(
    "confirmed,built_after_raw,drained,reason",
    [
        (None, True, False, "does not exist"),
        (0x100, True, False, "has not confirmed"),
        (0x200, False, False, "rebuild staging"),
        (0x200, True, True, "drained"),
    ],
)
def test_drain_status(
    monkeypatch: pytest.MonkeyPatch,
    confirmed: int | None,
    built_after_raw: bool,
    drained: bool,
    reason: str,
) -> None:
    from streaming.cdc import reconcile

    monkeypatch.setattr(reconcile, "slot_confirmed_lsn", lambda dsn, slot: confirmed)
    raw_latest = datetime(2026, 11, 20, 12, 0)
    built = raw_latest + timedelta(seconds=30 if built_after_raw else -30)
    status = reconcile.drain_status(
        warehouse=_Warehouse(raw_latest),
        staging_built_at={t: built.replace(tzinfo=UTC) for t in CDC_TABLES},
        **DRAIN_ARGS,
    )
    assert status.drained is drained
    assert reason in status.reason


class _PerTableWarehouse(_Warehouse):
    def __init__(self, latest: dict[str, datetime]) -> None:
        self.by_table = latest

    def raw_max_ingested_at(self, tables: object) -> datetime | None:
        return max(self.by_table[t] for t in tables)  # type: ignore[attr-defined]


def test_a_table_nobody_changed_since_its_last_build_is_drained(monkeypatch) -> None:
    """Reproduction: at 00:50 UTC no product had changed yet today, so stg_products kept
    yesterday's build while orders streamed in and were rebuilt; comparing the oldest build
    with the newest raw row of any table reported every table "not drained"."""
    from streaming.cdc import reconcile

    monkeypatch.setattr(reconcile, "slot_confirmed_lsn", lambda dsn, slot: 0x200)
    now = datetime(2026, 12, 6, 0, 50)
    raw = {t: now - timedelta(minutes=5) for t in CDC_TABLES}
    raw["products"] = now - timedelta(hours=20)
    built = {t: (now - timedelta(minutes=1)).replace(tzinfo=UTC) for t in CDC_TABLES}
    built["products"] = (now - timedelta(hours=19)).replace(tzinfo=UTC)
    status = reconcile.drain_status(
        warehouse=_PerTableWarehouse(raw), staging_built_at=built, **DRAIN_ARGS
    )
    assert status.drained, status
    # but a table whose raw moved after its build is reported, by name
    raw["orders"] = now
    status = reconcile.drain_status(
        warehouse=_PerTableWarehouse(raw), staging_built_at=built, **DRAIN_ARGS
    )
    assert not status.drained and "stg_orders" in status.reason
    assert "stg_products" not in status.reason
