"""Validity from the source's own constraints: PostgreSQL's catalog read on a real server built
from the shop's migrations, CHECK definitions parsed, the committed snapshot kept in step,
dbt contracts read, and every constraint a dbt test already checks left to the dbt test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import temporary_postgres
from platform_assets.quality.dbt_tests import Invariants
from platform_assets.quality.derive import derive_monitors
from platform_assets.quality.manifest import Project
from platform_assets.quality.monitors import PROJECT
from platform_assets.quality.source_constraints import from_check, load_snapshot, read_catalog
from platform_assets.quality.specs import Constraint


@pytest.fixture(scope="module")
def shop_dsn() -> Iterator[str]:
    """The shop's database as its migrations build it, plus a table with an enum type."""
    with temporary_postgres() as server:
        dsn = server.dsn()
        migrate(dsn)
        yield dsn


def test_the_catalog_gives_the_shops_not_nulls_checks_and_keys(shop_dsn):
    catalog = read_catalog(shop_dsn)
    tables = catalog["tables"]
    assert set(tables) == {"users", "products", "orders", "order_items"}
    assert tables["order_items"]["primary_key"] == ["order_id", "line_number"]
    by_name = {c["name"]: c for c in tables["orders"]["constraints"]}
    # as 0001_shop_schema.sql declares them
    not_null = {c["columns"][0] for c in by_name.values() if c["kind"] == "not_null"}
    assert not_null == {
        "order_id",
        "user_id",
        "status",
        "currency",
        "subtotal",
        "shipping",
        "total_amount",
        "created_at",
        "updated_at",
    }
    status = by_name["orders.orders_status_check"]
    assert status["kind"] == "accepted_values" and status["values"] == [
        "pending",
        "paid",
        "shipped",
        "delivered",
        "refunded",
        "cancelled",
    ]
    shipping = by_name["orders.orders_shipping_check"]
    assert (shipping["kind"], shipping["lower"], shipping["lower_inclusive"]) == ("range", 0, True)
    quantity = {c["name"]: c for c in tables["order_items"]["constraints"]}[
        "order_items.order_items_quantity_check"
    ]
    assert (quantity["lower"], quantity["lower_inclusive"]) == (0, False)


def test_the_committed_snapshot_is_the_catalog(shop_dsn):
    """A migration without `python -m platform_assets.quality constraints --refresh` fails."""
    assert load_snapshot() == read_catalog(shop_dsn)


def test_enum_types_are_accepted_values(shop_dsn):
    with psycopg.connect(shop_dsn, autocommit=True) as con:
        con.execute("create type delivery_speed as enum ('standard', 'express')")
        con.execute("create table users_pref (user_id bigint, speed delivery_speed)")
    try:
        catalog = read_catalog(shop_dsn, tables=("users_pref",))
    finally:
        with psycopg.connect(shop_dsn, autocommit=True) as con:
            con.execute("drop table users_pref; drop type delivery_speed")
    [speed] = catalog["tables"]["users_pref"]["constraints"]
    assert speed["kind"] == "accepted_values" and speed["values"] == ["standard", "express"]


@pytest.mark.parametrize(
    ("definition", "kind", "expected"),
    [
        ("CHECK ((price >= (0)::numeric))", "range", {"lower": 0.0, "lower_inclusive": True}),
        ("CHECK ((quantity > 0))", "range", {"lower": 0.0, "lower_inclusive": False}),
        (
            "CHECK (((discount >= (0)::numeric) AND (discount <= (1)::numeric)))",
            "range",
            {"lower": 0.0, "upper": 1.0},
        ),
        ("CHECK ((0 < quantity))", "range", {"lower": 0.0, "lower_inclusive": False}),
        (
            "CHECK ((status = ANY (ARRAY['a'::text, 'b'::text])))",
            "accepted_values",
            {"values": ("a", "b")},
        ),
        ("CHECK ((kind IN ('x', 'y')))", "accepted_values", {"values": ("x", "y")}),
        (
            "CHECK ((total_amount = (subtotal + shipping)))",
            "expression",
            {"expression": "total_amount = (subtotal + shipping)"},
        ),
    ],
)
def test_check_definitions(definition, kind, expected):
    found = from_check("t", "c", definition, [])
    assert found.kind == kind
    for field, value in expected.items():
        assert getattr(found, field) == value


def manifest(tests: list[dict], contract: bool = False) -> dict:
    model = {
        "resource_type": "model",
        "name": "stg_orders",
        "fqn": ["ecommerce", "staging", "stg_orders"],
        "columns": {
            "order_id": {"constraints": []},
            "shipping": {
                "constraints": [{"type": "check", "expression": "shipping < 1000"}]
                if contract
                else []
            },
            "currency": {"constraints": [{"type": "not_null"}] if contract else []},
        },
        "depends_on": {"nodes": ["source.ecommerce.raw.cdc_orders"]},
        "config": {"contract": {"enforced": contract}},
    }
    nodes = {"model.ecommerce.stg_orders": model}
    for i, (name, column, kwargs) in enumerate(tests):
        nodes[f"test.{i}"] = {
            "resource_type": "test",
            "attached_node": "model.ecommerce.stg_orders",
            "column_name": column,
            "test_metadata": {"name": name, "kwargs": kwargs},
        }
    return {"nodes": nodes}


def range_constraint(lower: float, inclusive: bool = True) -> Constraint:
    return Constraint(
        "c", "range", ("shipping",), "", "postgres:orders", lower=lower, lower_inclusive=inclusive
    )


@pytest.mark.parametrize(
    ("test", "constraint", "covered"),
    [
        (("not_negative", "shipping", {}), range_constraint(0.0), True),
        (("not_negative", "shipping", {}), range_constraint(-5.0), True),  # stricter test
        (("not_negative", "shipping", {}), range_constraint(0.0, inclusive=False), False),
        (("accepted_range", "shipping", {"min_value": 1}), range_constraint(0.0, False), True),
        (("accepted_range", "shipping", {"min_value": 0}), range_constraint(1.0), False),
        (
            ("accepted_values", "status", {"values": ["paid"]}),
            Constraint("s", "accepted_values", ("status",), "", "pg", values=("paid", "pending")),
            True,
        ),
        (
            ("accepted_values", "status", {"values": ["paid", "lost"]}),
            Constraint("s", "accepted_values", ("status",), "", "pg", values=("paid", "pending")),
            False,
        ),
        (
            ("not_null", "currency", {}),
            Constraint("n", "not_null", ("currency",), "", "pg"),
            True,
        ),
    ],
)
def test_a_constraint_is_left_to_the_dbt_test_that_already_checks_it(test, constraint, covered):
    invariants = Invariants.from_manifest(manifest([test]))
    assert invariants.covers_constraint("staging/stg_orders", constraint) is covered


def test_contracts_and_the_catalog_become_one_validity_check_minus_dbt_tests():
    project = Project.from_manifest(manifest([("not_null", "currency", {})], contract=True))
    catalog = {
        "tables": {
            "orders": {
                "primary_key": ["order_id"],
                "constraints": [
                    {
                        "name": "orders.currency not null",
                        "kind": "not_null",
                        "columns": ["currency"],
                        "expression": "currency is not null",
                        "origin": "postgres:orders",
                    },
                    {
                        "name": "orders.orders_shipping_check",
                        "kind": "range",
                        "columns": ["shipping"],
                        "expression": '"shipping" >= 0',
                        "origin": "postgres:orders",
                        "lower": 0.0,
                    },
                    {
                        "name": "orders.refunded_at not null",
                        "kind": "not_null",
                        "columns": ["refunded_at"],  # not a column of this model
                        "expression": "",
                        "origin": "postgres:orders",
                    },
                ],
            }
        }
    }
    rule = derive_monitors(project, catalog, {})["staging/stg_orders"].constraints
    assert rule is not None and rule.key == ("order_id",)
    assert {(c.name, c.origin) for c in rule.constraints} == {
        ("contract check stg_orders.shipping", "dbt contract"),
        ("orders.orders_shipping_check", "postgres:orders"),
    }  # both NOT NULLs on currency are the dbt test's; refunded_at is not in the model


def test_the_code_location_checks_what_dbt_does_not():
    """On the real project: stg_orders' subtotal, shipping and updated_at NOT NULLs come from
    the catalog; its currency NOT NULL, status values and non-negative amounts are dbt tests
    (stg_orders.yml declares them)."""
    rule = derive_monitors(PROJECT, load_snapshot(), {})["staging/stg_orders"].constraints
    assert {c.name for c in rule.constraints} == {
        "orders.subtotal not null",
        "orders.shipping not null",
        "orders.updated_at not null",
    }
