"""Grouping failures by root cause over a hand-drawn asset graph, and the incident book that
decides what Slack gets (no Dagster, no Slack: the pure logic)."""

from __future__ import annotations

from platform_assets.quality.incidents import Failure, IncidentBook, Lineage, group_failures

#  raw/a -> staging/b -> mart/c        raw/x -> staging/y -> mart/z
LINEAGE = Lineage(
    {
        "staging/b": ["raw/a"],
        "mart/c": ["staging/b"],
        "staging/y": ["raw/x"],
        "mart/z": ["staging/y"],
    }
)


def fail(asset: str, check: str = "column_values", severity: str = "WARN", **kw) -> Failure:
    return Failure(f"{asset}:{check}", asset, check, severity, "moved", **kw)


def test_downstream_failures_join_their_most_upstream_failing_ancestor():
    groups = group_failures(
        [fail("mart/c"), fail("staging/b", "unique_b_id", "ERROR"), fail("mart/z")], LINEAGE
    )
    assert [(g.origins, sorted(g.checks)) for g in groups] == [
        (("staging/b",), ["mart/c:column_values", "staging/b:unique_b_id"]),
        (("mart/z",), ["mart/z:column_values"]),
    ]
    # the origin's own failures come first, the worst first
    assert groups[0].failures[0].check_key == "staging/b:unique_b_id"


def test_a_check_reading_another_source_joins_that_sources_incident():
    groups = group_failures(
        [fail("mart/c", "consistency_revenue", reads=("staging/y",)), fail("staging/y")], LINEAGE
    )
    assert [g.origins for g in groups] == [("staging/y",)]


def test_independent_roots_stay_apart_unless_a_failure_depends_on_both():
    apart = group_failures([fail("raw/a"), fail("raw/x")], LINEAGE)
    assert len(apart) == 2
    tied = group_failures(
        [fail("raw/a"), fail("raw/x"), fail("mart/c", "consistency", reads=("staging/y",))],
        LINEAGE,
    )
    assert [g.origins for g in tied] == [("raw/a", "raw/x")]


def test_the_book_posts_once_merges_and_recovers_once():
    book = IncidentBook()
    day = 86_400.0
    first = book.reconcile(group_failures([fail("mart/c")], LINEAGE), 0.0, day)
    assert [a.kind for a in first] == ["open"]
    book.delivered(first[0], 0.0)
    # the cause upstream shows up later: the same incident, now at its origin, not a new one
    later = book.reconcile(group_failures([fail("mart/c"), fail("raw/a")], LINEAGE), 60.0, day)
    assert later == [] and next(iter(book.open.values())).origin == "raw/a"
    worse = book.reconcile(
        group_failures([fail("mart/c"), fail("raw/a", severity="ERROR")], LINEAGE), 120.0, day
    )
    assert [a.kind for a in worse] == ["escalate"]
    book.delivered(worse[0], 120.0)
    done = book.reconcile([], 180.0, day)
    assert [a.kind for a in done] == ["recover"]
    assert done[0].incident.members == {"mart/c:column_values", "raw/a:column_values"}
    book.delivered(done[0], 180.0)
    assert not book.open


def test_an_incident_never_posted_is_dropped_silently_when_it_recovers():
    book = IncidentBook()
    book.reconcile(group_failures([fail("raw/x")], LINEAGE), 0.0, 60.0)  # delivery failed
    assert book.reconcile([], 30.0, 60.0) == [] and not book.open


# a raw CDC table read directly by three models (as raw/cdc_orders is by stg_orders,
# stg_order_status_history and int_orders), and another raw table with one reader
CDC = Lineage(
    {
        "staging/stg_orders": ["raw/cdc_orders"],
        "staging/stg_order_status_history": ["raw/cdc_orders"],
        "staging/int_orders": ["raw/cdc_orders"],
        "mart/fct_orders": ["staging/int_orders"],
        "staging/stg_users": ["raw/cdc_users"],
    }
)
READERS = ("staging/stg_orders", "staging/stg_order_status_history", "staging/int_orders")


def test_readers_of_one_raw_table_failing_together_are_one_incident_at_that_table():
    """A field the CDC bridge dropped fails the three models that parse the raw table's
    row images; raw itself keeps JSON and passes. One cause, one incident, named at raw."""
    failures = [fail(a, "source_constraints", "ERROR") for a in READERS]
    groups = group_failures([*failures, fail("mart/fct_orders")], CDC)
    assert len(groups) == 1
    assert groups[0].origins == ("raw/cdc_orders",)
    assert {f.asset for f in groups[0].failures} == {*READERS, "mart/fct_orders"}


def test_readers_of_a_failing_raw_table_join_its_incident():
    groups = group_failures(
        [fail("raw/cdc_orders", "volume_anomaly")] + [fail(a) for a in READERS], CDC
    )
    assert [(g.origins, len(g.failures)) for g in groups] == [(("raw/cdc_orders",), 4)]
    assert groups[0].failures[0].asset == "raw/cdc_orders"  # the origin's own check first


def test_a_lone_failing_reader_stays_its_own_origin_and_other_tables_stay_apart():
    alone = group_failures([fail("staging/stg_orders")], CDC)
    assert [g.origins for g in alone] == [("staging/stg_orders",)]
    apart = group_failures([fail("staging/stg_orders"), fail("staging/stg_users")], CDC)
    assert sorted(g.origins for g in apart) == [("staging/stg_orders",), ("staging/stg_users",)]
    # a failing reader downstream of another one is that one's effect, not a second reader
    chained = group_failures([fail("staging/int_orders"), fail("mart/fct_orders")], CDC)
    assert [g.origins for g in chained] == [("staging/int_orders",)]
