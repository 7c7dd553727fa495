"""Every data-quality rule of every asset, configured in this one module.

An asset's rules are an `AssetQuality`; `ASSETS` lists them by asset key (`raw/<table>`,
`staging/<model>`, `mart/<model>`, the keys of `platform_assets.definitions`). Each rule
becomes one Dagster asset check named after `Rule.check_name`.

Severities: `error` is critical (the seed's SLA: data more than 30 minutes late is critical;
duplicate keys in a mart; a fact pointing at a missing dimension), `warn` is worth a look.
`blocking=True` stops downstream assets of the same run when the check fails with `error`
(Dagster's blocking asset checks): used where bad data must not flow on, such as duplicate
keys in staging events and in marts.

Daily rules (volume, null rate, duplicate rate) judge the last complete UTC day before the
evaluation time against a training window of the days before it, like Elementary's anomaly
tests (sensitivity 3, 14 days, at least 7 points; day-of-week seasonality widens the window
to 28 days so every weekday has 4 points, see `stats.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Literal

from platform_assets.dbt.project import dbt_project
from platform_assets.quality.dbt_tests import Invariants

Severity = Literal["error", "warn"]

SENSITIVITY = 3.0
TRAINING_DAYS = 14
SEASONAL_TRAINING_DAYS = 28
MIN_TRAINING_POINTS = 7


@dataclass(frozen=True)
class Freshness:
    """How late the newest row is: `as_of - max(column)` (or behind `relative_to`'s newest).

    `column` is when the data happened or arrived at the edge (collector receipt, source
    commit), not when it was loaded, so a pipeline that keeps loading hours-old data is late.
    Late means beyond the SLA (`error_after`, critical; `warn_after`, optional, a warning)
    and, with `adaptive`, also beyond `allowance_factor` x the largest lag seen at the same
    time of day over the last `history_days` days: at 4 am a small shop is quiet for an
    hour without anything being broken, while a stalled pipeline soon exceeds both.
    With `relative_to` (an upstream asset key) the lag is measured against the upstream's
    newest value of `column` instead of the clock: "staging is behind raw".
    """

    column: str
    error_after: timedelta
    warn_after: timedelta | None = None
    relative_to: str | None = None
    adaptive: bool = True
    history_days: int = 7
    allowance_factor: float = 1.5
    explain_by: str | None = None  # newest value per group (e.g. per source) as evidence
    check_name: str = "freshness"
    blocking: bool = False


@dataclass(frozen=True)
class Volume:
    """Rows (or `measure`) per day of `date_column` against a seasonal z-score baseline."""

    date_column: str
    measure: str = "count(*)"
    metric: str = "row_count"
    sensitivity: float = SENSITIVITY
    training_days: int = TRAINING_DAYS
    seasonal_training_days: int = SEASONAL_TRAINING_DAYS
    min_training_points: int = MIN_TRAINING_POINTS
    seasonality: Literal["day_of_week"] | None = "day_of_week"
    min_relative_change: float = 0.15  # ignore smaller changes, whatever the z-score
    severity: Severity = "warn"
    explain_by: str | None = None  # per-group change on the day (e.g. per source) as evidence
    check_name: str = "volume_anomaly"
    blocking: bool = False


@dataclass(frozen=True)
class NullRate:
    """Share of nulls per column. With `date_column`: the day's rate against the column's own
    baseline (median + max(sensitivity x robust sigma, min_abs_change)); without it: the
    whole table against the fixed `max_rate`."""

    columns: tuple[str, ...]
    date_column: str | None = None
    max_rate: float = 0.0
    sensitivity: float = SENSITIVITY
    training_days: int = TRAINING_DAYS
    min_training_points: int = MIN_TRAINING_POINTS
    min_abs_change: float = 0.05
    severity: Severity = "warn"
    check_name: str = "null_rate"
    blocking: bool = False


@dataclass(frozen=True)
class Duplicates:
    """Rows sharing the declared key. `baseline=False`: any duplicate fails (staging, marts).
    `baseline=True` (raw, where at-least-once delivery makes some normal): the day's
    duplicate rate against its baseline."""

    key: tuple[str, ...]
    baseline: bool = False
    date_column: str | None = None
    sensitivity: float = SENSITIVITY
    training_days: int = TRAINING_DAYS
    min_training_points: int = MIN_TRAINING_POINTS
    min_abs_change: float = 0.02
    severity: Severity = "error"
    check_name: str = "duplicate_keys"
    blocking: bool = False


@dataclass(frozen=True)
class SchemaChange:
    """Columns added, removed or retyped since the last schema seen (stored in history)."""

    added: Severity = "warn"
    removed: Severity = "error"
    type_changed: Severity = "error"
    check_name: str = "schema_change"
    blocking: bool = False


@dataclass(frozen=True)
class References:
    """Referential integrity: non-null `column` values must exist in `parent.parent_column`.

    `max_orphan_rate` tolerates known, legitimate orphans (GDPR erasure deletes users while
    their orders stay). `cast` converts the child's value first (string ids in events).
    """

    column: str
    parent: str
    parent_column: str
    max_orphan_rate: float = 0.0
    cast: str | None = None
    severity: Severity = "error"
    blocking: bool = False

    @property
    def check_name(self) -> str:
        return f"referential_integrity_{self.column}"


Rule = Freshness | Volume | NullRate | Duplicates | SchemaChange | References


@dataclass(frozen=True)
class AssetQuality:
    asset: str  # "raw/events", "staging/stg_orders", "mart/fct_orders"
    freshness: Freshness | None = None
    volume: Volume | None = None
    nulls: NullRate | None = None
    duplicates: Duplicates | None = None
    schema: SchemaChange | None = field(default_factory=SchemaChange)
    references: tuple[References, ...] = ()

    @property
    def rules(self) -> tuple[Rule, ...]:
        found = (self.freshness, self.volume, self.nulls, self.duplicates, self.schema)
        return tuple(r for r in found if r is not None) + self.references

    @property
    def layer(self) -> str:
        return self.asset.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.asset.split("/", 1)[1]

    def rule(self, check_name: str) -> Rule:
        for rule in self.rules:
            if rule.check_name == check_name:
                return rule
        raise KeyError(f"{self.asset} has no quality check {check_name!r}")


MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
CDC_KEY = ("pk", "lsn")  # the same change twice: a replay


def _cdc(table: str) -> AssetQuality:
    # Source changes are bursty (catalogue edits at night, quiet hours): freshness would page
    # for nothing, so CDC tables are watched by volume, replays and schema instead.
    return AssetQuality(
        asset=f"raw/cdc_{table}",
        volume=Volume(date_column="ingest_date"),
        duplicates=Duplicates(
            key=CDC_KEY, baseline=True, date_column="ingest_date", severity="warn"
        ),
    )


CONFIGURED: dict[str, AssetQuality] = {
    a.asset: a
    for a in (
        # --- raw: what landed ---------------------------------------------------------
        AssetQuality(
            asset="raw/events",
            # the seed's SLA: data more than 30 minutes late is critical
            freshness=Freshness(column="received_at", error_after=30 * MIN, explain_by="source"),
            volume=Volume(date_column="received_at", explain_by="source"),
            nulls=NullRate(
                columns=(
                    "anonymous_id",
                    "event",
                    "device_type",
                    "os_name",
                    "page_path",
                    "traffic_source",
                ),
                date_column="received_at",
            ),
            duplicates=Duplicates(
                key=("message_id",), baseline=True, date_column="received_at", severity="warn"
            ),
        ),
        AssetQuality(asset="raw/events_dead_letter"),
        _cdc("users"),
        _cdc("products"),
        _cdc("orders"),
        _cdc("order_items"),
        # --- staging: typed, deduplicated, current state -------------------------------
        AssetQuality(
            asset="staging/stg_events",
            freshness=Freshness(
                column="received_at",
                warn_after=30 * MIN,
                error_after=HOUR,
                relative_to="raw/events",
                adaptive=False,
            ),
            volume=Volume(date_column="event_date", explain_by="source"),
            nulls=NullRate(
                columns=("anonymous_id", "device_type", "os_name", "page_path", "traffic_source"),
                date_column="event_date",
            ),
            duplicates=Duplicates(key=("message_id",), blocking=True),
            references=(
                References(
                    column="product_id",
                    parent="staging/stg_products",
                    parent_column="product_id",
                    cast="bigint",
                    severity="warn",
                ),
            ),
        ),
        AssetQuality(
            asset="staging/stg_orders",
            # declined orders are purged after a few days: count the others
            volume=Volume(
                date_column="created_at",
                metric="orders",
                measure="sum(case when status <> 'cancelled' then 1 else 0 end)",
            ),
            nulls=NullRate(columns=("user_id", "status", "total_amount"), date_column="created_at"),
            duplicates=Duplicates(key=("order_id",)),
            references=(
                # GDPR erasure deletes users, their orders stay: tolerate a few percent
                References(
                    column="user_id",
                    parent="staging/stg_users",
                    parent_column="user_id",
                    max_orphan_rate=0.05,
                    severity="warn",
                ),
            ),
        ),
        AssetQuality(
            asset="staging/stg_order_items",
            nulls=NullRate(columns=("product_id", "quantity", "unit_price")),
            duplicates=Duplicates(key=("order_id", "line_number")),
            references=(
                References(
                    column="product_id", parent="staging/stg_products", parent_column="product_id"
                ),
                # built in the same run as stg_orders, but raw may grow in between
                References(
                    column="order_id",
                    parent="staging/stg_orders",
                    parent_column="order_id",
                    max_orphan_rate=0.01,
                    severity="warn",
                ),
            ),
        ),
        AssetQuality(
            asset="staging/stg_products",
            nulls=NullRate(columns=("sku", "price")),
            duplicates=Duplicates(key=("product_id",)),
        ),
        AssetQuality(
            asset="staging/stg_users",
            volume=Volume(date_column="created_at", metric="sign_ups"),
            duplicates=Duplicates(key=("user_id",)),
        ),
        AssetQuality(
            asset="staging/stg_order_status_history",
            duplicates=Duplicates(key=("order_id", "lsn")),
        ),
        AssetQuality(asset="staging/stg_events_dead_letter"),
        AssetQuality(
            asset="staging/int_sessions",
            volume=Volume(date_column="session_date", metric="sessions"),
            duplicates=Duplicates(key=("session_id",)),
        ),
        # --- marts: duplicate keys must not reach a dashboard (blocking) ---------------
        AssetQuality(
            asset="mart/fct_orders",
            volume=Volume(
                date_column="order_date",
                metric="orders",
                measure="sum(case when status <> 'cancelled' then 1 else 0 end)",
            ),
            nulls=NullRate(columns=("user_id", "total_amount")),
            duplicates=Duplicates(key=("order_id",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_daily_sales",
            volume=Volume(date_column="sales_date", measure="sum(orders)", metric="paid_orders"),
            duplicates=Duplicates(key=("sales_date",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_conversion_funnel",
            volume=Volume(date_column="session_date", measure="sum(sessions)", metric="sessions"),
            duplicates=Duplicates(
                key=("session_date", "device_type", "traffic_source"), blocking=True
            ),
        ),
        AssetQuality(
            asset="mart/mart_product_performance",
            duplicates=Duplicates(key=("product_id",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_user_behavior",
            duplicates=Duplicates(key=("user_id",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_retention_cohorts",
            duplicates=Duplicates(key=("cohort_week", "weeks_since_first"), blocking=True),
        ),
    )
}


def without_dbt_invariants(asset: AssetQuality, invariants: Invariants) -> AssetQuality:
    """The asset's rules minus those a dbt test already checks: zero-tolerance duplicates
    (`unique`), references (`relationships`) and whole-table nulls (`not_null`). Baselined
    rules (a rate against its history) are different checks and stay."""
    duplicates = asset.duplicates
    if (
        duplicates
        and not duplicates.baseline
        and invariants.covers_unique(asset.asset, duplicates.key)
    ):
        duplicates = None
    nulls = asset.nulls
    if nulls and nulls.date_column is None and nulls.max_rate == 0:
        left = tuple(c for c in nulls.columns if not invariants.covers_not_null(asset.asset, c))
        nulls = replace(nulls, columns=left) if left else None
    references = tuple(
        r
        for r in asset.references
        if not invariants.covers_relationship(asset.asset, r.column, r.parent, r.parent_column)
    )
    return replace(asset, duplicates=duplicates, nulls=nulls, references=references)


# What the agent checks: the configuration above, minus what the dbt project tests.
ASSETS: dict[str, AssetQuality] = {
    key: without_dbt_invariants(asset, Invariants.from_path(dbt_project.manifest_path))
    for key, asset in CONFIGURED.items()
}


def asset_quality(asset: str) -> AssetQuality:
    try:
        return ASSETS[asset]
    except KeyError:
        raise KeyError(f"no quality rules for {asset!r}; known: {', '.join(ASSETS)}") from None


def select_assets(keys: list[str] | None = None) -> list[AssetQuality]:
    """The configured assets, all of them or those named (exact keys or `layer/*`)."""
    if not keys:
        return list(ASSETS.values())
    chosen: list[AssetQuality] = []
    for key in keys:
        key = key.strip().strip("/")
        if key.endswith("/*") or key in ("raw", "staging", "mart"):
            layer = key.removesuffix("/*")
            chosen += [a for a in ASSETS.values() if a.layer == layer and a not in chosen]
        else:
            found = asset_quality(key)
            if found not in chosen:
                chosen.append(found)
    return chosen
