"""What a rule is: the rule types of the data-quality agent and an asset's set of them.

An asset's rules are an `AssetQuality`; each rule becomes one Dagster asset check named
after its `check_name`. The hand configuration (`config.py`) and the derived monitors
(`derive.py`) both build these; `monitors.py` assembles what the code location checks.

Severities: `error` is critical, `warn` is worth a look. `blocking=True` stops downstream
assets of the same run when the check fails with `error` (Dagster's blocking checks).

Daily rules judge the last complete UTC day before the evaluation time against a training
window of the days before it, like Elementary's anomaly tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

Severity = Literal["error", "warn"]

SENSITIVITY = 3.0
TRAINING_DAYS = 14
SEASONAL_TRAINING_DAYS = 28
MIN_TRAINING_POINTS = 7
# dbt's dedup_window_days (stg_events): deliveries of one message further apart in event
# date may both be staged
SAME_ROWS_WINDOW_DAYS = 2


# --- hand-configured rules (what the agent did before it derived anything) --------------


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
    newest value of `column` instead of the clock: "staging is behind raw". When this asset
    keeps one row of several upstream (the first delivery of a message), `same_rows` names
    the columns that say two rows are the same (source, message_id): an upstream row whose
    key is already here does not make this asset behind (a client's retry, hours later, of
    a message staged long ago). `same_rows_date`, a date column of both, bounds that lookup
    here to the dates of the upstream's newer rows, `SAME_ROWS_WINDOW_DAYS` either side (a
    retry whose device clock moved lands on another date).
    """

    column: str
    error_after: timedelta
    warn_after: timedelta | None = None
    relative_to: str | None = None
    same_rows: tuple[str, ...] = ()
    same_rows_date: str | None = None
    adaptive: bool = True
    history_days: int = 7
    allowance_factor: float = 1.5
    explain_by: str | None = None  # newest value per group (e.g. per source) as evidence
    check_name: str = "freshness"
    blocking: bool = False


@dataclass(frozen=True)
class Volume:
    """Rows (or `measure`) per day of `date_column` against a seasonal z-score baseline.
    On a day the business calendar declares (a promotion), the expectation is scaled by the
    declared traffic factor."""

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


# --- derived monitors (from the dbt manifest, the raw schemas, the source's catalog) ----


@dataclass(frozen=True)
class ParentDay:
    """A table without a date of its own takes its rows' day from the parent it references
    (a dbt `relationships` test): `child.column -> parent.parent_column`."""

    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True)
class DayColumn:
    """How the daily monitors cut an asset into days.

    `column` when given (hand override, or the raw layer's ingestion time); otherwise the
    rule picks at run time from the table's real types: the first DATE column, else the
    first TIMESTAMP column, else the first `parents` link whose parent has a day.
    """

    column: str | None = None
    parents: tuple[ParentDay, ...] = ()


@dataclass(frozen=True)
class ColumnValues:
    """Per day, each numeric column's sum, mean, zero rate, negative rate, min and max
    against the days before (Elementary's column anomalies).

    Sums follow the weekday pattern and the trend (a seasonal fit on an asinh scale; sums
    of counts on the Anscombe scale, never less noisy than counting) and scale with a
    declared calendar factor; means, min and max are judged against the robust
    spread of the training days (means also against their own standard error); zero and
    negative rates with a binomial tail, so a table with one row a day (a daily mart) does
    not alert on every day without refunds. A metric fails when it is beyond `sensitivity`
    sigmas AND differs by more than `min_relative_change` of the expected value AND lies
    outside every value of the training days (min/max: by `extreme_margin` more, since
    daily extremes are heavy-tailed; only a lower min or a higher max, and only for amounts,
    not for counts). One table gets dozens of these tests a day and the
    platform hundreds, so the default sensitivity is 5 rather than a single test's 3
    (Bonferroni: 3 sigmas for one test is about 4.5 to 5 for two hundred). Columns come
    from the table's real types at run time, so a new numeric column is monitored without
    a change here; keys and ids (`*_id`, unique and relationship columns) are left out.
    """

    day: DayColumn = field(default_factory=DayColumn)
    exclude: tuple[str, ...] = ()
    where: str | None = None  # rows that belong in the monitor (SQL, DuckDB dialect)
    sensitivity: float = 5.0
    min_relative_change: float = 0.25
    extreme_margin: float = 1.0
    training_days: int = SEASONAL_TRAINING_DAYS
    min_training_points: int = 10
    min_rows_per_day: int = 10
    severity: Severity = "warn"
    check_name: str = "column_values"
    blocking: bool = False


@dataclass(frozen=True)
class ColumnMix:
    """Per day, the share of each value of every low-cardinality column (text or boolean
    with at most `max_distinct` values over the training window): event name, source,
    status, device, currency. Values below `min_share` in training are pooled as
    "(other)". A share fails when it moves beyond `sensitivity` x its spread (the binomial
    noise of the day's row count and the training days' robust spread together, so
    sessions that bring many events of one kind do not make it brittle) and by more than
    `min_abs_change` (absolute share) and `min_relative_change` (of the expected share).
    Like the value monitors, a table gets dozens of these tests a day: sensitivity 5.
    """

    day: DayColumn = field(default_factory=DayColumn)
    exclude: tuple[str, ...] = ()
    where: str | None = None
    max_distinct: int = 300
    min_share: float = 0.01
    sensitivity: float = 5.0
    min_abs_change: float = 0.01
    min_relative_change: float = 0.25
    training_days: int = SEASONAL_TRAINING_DAYS
    min_training_points: int = 10
    min_rows_per_day: int = 30
    severity: Severity = "warn"
    check_name: str = "column_mix"
    blocking: bool = False


@dataclass(frozen=True)
class TimestampBounds:
    """Every timestamp column: the share of the day's rows (the whole table for assets
    without a day) with a value after `as_of + future_tolerance` or before `ancient_before`.
    Client clocks are sometimes wrong, so the share is judged against its own baseline
    (one-sided, at least `min_abs_change` above it); server-set columns have a baseline of 0."""

    day: DayColumn = field(default_factory=DayColumn)
    exclude: tuple[str, ...] = ()
    future_tolerance: timedelta = timedelta(days=1)
    ancient_before: date = date(2000, 1, 1)
    sensitivity: float = SENSITIVITY
    min_abs_change: float = 0.001
    training_days: int = TRAINING_DAYS
    min_training_points: int = MIN_TRAINING_POINTS
    severity: Severity = "warn"
    check_name: str = "timestamp_bounds"
    blocking: bool = False


ConstraintKind = Literal["not_null", "range", "accepted_values", "expression"]


@dataclass(frozen=True)
class Constraint:
    """One constraint the data's producer declares: a PostgreSQL NOT NULL, CHECK or enum of
    the source table, or a dbt contract's constraint. `expression` is the violation-free
    condition in DuckDB SQL (NULL counts as satisfied, as in SQL CHECKs)."""

    name: str
    kind: ConstraintKind
    columns: tuple[str, ...]
    expression: str
    origin: str  # "postgres:orders" or "dbt contract"
    definition: str = ""  # as the producer wrote it (pg_get_constraintdef, contract text)
    lower: float | None = None  # range: column >= lower (> when not inclusive)
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = True
    values: tuple[str, ...] = ()  # accepted_values / enum labels


@dataclass(frozen=True)
class SourceConstraints:
    """Rows that break a constraint their producer declares (the shop database's CHECKs,
    enums and NOT NULLs, dbt contracts): a value the source would refuse, caught where it
    lands. Any violating row fails; sample keys show which."""

    constraints: tuple[Constraint, ...]
    key: tuple[str, ...] = ()  # columns that identify a row in samples
    severity: Severity = "error"
    check_name: str = "source_constraints"
    blocking: bool = False


@dataclass(frozen=True)
class DailyMeasure:
    """One side of a consistency rule: `measure` per day of `day` over `asset`."""

    asset: str
    day: str  # a DATE or TIMESTAMP column
    measure: str  # an aggregate (count(*), sum(...))
    where: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Agreement:
    """Two sources describing the same business agree per day: the ratio `left / right`
    (orders completed in events / paid orders in the database) is judged against where it
    usually is. The tolerance is learnt from the clean days before, as a rate of "missing"
    units (`per`: the count the measures add up, by default `right`; an order whose event
    comes late), so a day with few orders is allowed more; never less than
    `min_abs_change` (see `stats.ratio_band`)."""

    name: str
    left: DailyMeasure
    right: DailyMeasure
    per: DailyMeasure | None = None
    sensitivity: float = 4.0
    min_abs_change: float = 0.04
    training_days: int = SEASONAL_TRAINING_DAYS
    min_training_points: int = MIN_TRAINING_POINTS
    min_right: float = 5.0  # days with less on the right are not judged (a ratio of noise)
    severity: Severity = "warn"
    blocking: bool = False

    @property
    def check_name(self) -> str:
        return f"consistency_{self.name}"

    @property
    def other_assets(self) -> tuple[str, ...]:
        return (self.left.asset, self.right.asset)


@dataclass(frozen=True)
class Unmatched:
    """The share of the day's rows of one source whose `column` has no match in another
    (products viewed in events that the database does not have), against its baseline.
    With `value` and `parent_value`, a matched row whose values differ by more than
    `tolerance` counts too (orders whose amount in the database is not what the shop
    reported): an exact comparison per row, free of the noise of daily totals."""

    name: str
    child: DailyMeasure  # measure unused; `where` selects the rows
    column: str
    parent: str
    parent_column: str
    cast: str | None = None
    value: str | None = None
    parent_value: str | None = None
    tolerance: float = 0.01
    sensitivity: float = 4.0
    min_abs_change: float = 0.01
    training_days: int = TRAINING_DAYS
    min_training_points: int = MIN_TRAINING_POINTS
    severity: Severity = "warn"
    blocking: bool = False

    @property
    def check_name(self) -> str:
        return f"consistency_{self.name}"

    @property
    def other_assets(self) -> tuple[str, ...]:
        return (self.child.asset, self.parent)


Rule = (
    Freshness
    | Volume
    | NullRate
    | Duplicates
    | SchemaChange
    | References
    | ColumnValues
    | ColumnMix
    | TimestampBounds
    | SourceConstraints
    | Agreement
    | Unmatched
)
CROSS_ASSET_TYPES = (References, Agreement, Unmatched)


def other_assets(rule: Rule) -> tuple[str, ...]:
    """Assets a rule reads besides its own (its check runs after them)."""
    if isinstance(rule, References):
        return (rule.parent,)
    if isinstance(rule, Agreement | Unmatched):
        return rule.other_assets
    return ()


@dataclass(frozen=True)
class AssetQuality:
    asset: str  # "raw/events", "staging/stg_orders", "mart/fct_orders"
    freshness: Freshness | None = None
    volume: Volume | None = None
    nulls: NullRate | None = None
    duplicates: Duplicates | None = None
    schema: SchemaChange | None = field(default_factory=SchemaChange)
    references: tuple[References, ...] = ()
    values: ColumnValues | None = None
    mix: ColumnMix | None = None
    timestamps: TimestampBounds | None = None
    constraints: SourceConstraints | None = None
    consistency: tuple[Agreement | Unmatched, ...] = ()

    @property
    def rules(self) -> tuple[Rule, ...]:
        found = (
            self.freshness,
            self.volume,
            self.nulls,
            self.duplicates,
            self.schema,
            self.values,
            self.mix,
            self.timestamps,
            self.constraints,
        )
        own = tuple(r for r in found if r is not None)
        return own + self.references + self.consistency

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


@dataclass(frozen=True)
class Override:
    """A hand override of an asset's derived monitors (the exception, with its reason).

    `skip`: monitor families not derived ("values", "mix", "timestamps", "constraints");
    `exclude`: columns no derived monitor looks at; `where`: the rows the value and mix
    monitors look at; `day`: the day column instead of the first date; `severity` and
    `sensitivity` replace the derived monitors' defaults.
    """

    reason: str
    skip: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    where: str | None = None
    day: str | None = None
    severity: Severity | None = None
    sensitivity: float | None = None
