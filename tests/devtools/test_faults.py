"""The fault catalogue's expectations name checks that exist: a check renamed or moved (a
NOT NULL that became a dbt test) would otherwise turn a detected fault into a miss."""

from __future__ import annotations

from datetime import date

from devtools.faults import DETECTED_BY, FAULT_TYPES, Fault, apply_fault, repair_fault
from platform_assets.definitions import build_definitions
from platform_core.settings import get_settings


def test_every_expected_check_exists_in_the_code_location():
    graph = build_definitions(get_settings()).resolve_asset_graph()
    existing = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert set(DETECTED_BY) == set(FAULT_TYPES)
    missing = {kind: set(checks) - existing for kind, checks in DETECTED_BY.items()}
    # a class is judged by any one of its checks; every one must exist to be fair
    assert not {kind: m for kind, m in missing.items() if m}


def _orders_table(con, day, orders: int) -> None:
    """`orders` new orders on `day` in a raw cdc_orders table, each created then paid."""
    con.execute(
        'create table cdc_orders (op varchar, pk varchar, "before" varchar, after varchar, '
        "lsn bigint, ingest_date date)"
    )
    for n in range(orders):
        row = f'{{"order_id": {n}, "currency": "EUR", "subtotal": 20.0, "shipping": 4.9}}'
        con.execute(
            "insert into cdc_orders values ('c', ?, null, ?, ?, ?), ('u', ?, ?, ?, ?, ?)",
            [
                f'{{"order_id":{n}}}',
                row,
                2 * n,
                day,
                f'{{"order_id":{n}}}',
                row,
                row,
                2 * n + 1,
                day,
            ],
        )


def test_a_value_fault_on_a_small_day_changes_its_share_of_orders_and_never_none():
    """A share of a day's new orders is a share of a few dozen: drawn row by row it was
    sometimes none at all (6% of 43 orders, seed 11), a fault that did not happen. The
    injection takes round(share x orders) of them, at least one, with every change of each."""
    import duckdb

    day = date(2026, 5, 3)
    for orders, share, expected in ((43, 0.06, 3), (10, 0.05, 1), (40, 0.25, 10)):
        with duckdb.connect() as con:
            _orders_table(con, day, orders)
            fault = Fault("invalid_values", day, (("column", "shipping"), ("share", share)))
            apply_fault(con, fault)
            hit = con.execute(
                "select count(distinct pk), count(*) from cdc_orders "
                "where json_extract(after, '$.shipping') is null"
            ).fetchall()[0]
            assert hit == (expected, 2 * expected), (orders, share)
            assert repair_fault(con, fault)
            left = con.execute(
                "select count(*) from cdc_orders where json_extract(after, '$.shipping') is null"
            ).fetchall()[0][0]
            assert left == 0
