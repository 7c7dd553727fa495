"""Sensors on the raw tables: report what landed, and refresh late event days.

One sensor, `raw_tables_sensor`, watches every raw table of the deployment through an
observer (`observers.py`: the local Parquet lake, or BigQuery's metadata).

For every table with new data it records an **AssetMaterialization** of `raw/<table>` (new
files, rows, partitions touched). A materialization, not an observation: the table's contents
changed, which is what `AutomationCondition.eager()` downstream (`any_deps_updated`) and the
freshness policies react to; observations are for metadata that does not change the data
(compaction reports them).

Refreshing downstream, default (`refresh_latest=False`): `eager()` on the day-partitioned
`staging/stg_events` handles the latest day and the eager variant the whole-table models.
Rows landing in older event days (late or replayed events) are queued in the cursor and
refreshed by a RunRequest of `dbt_event_models` for those partitions (one contiguous range per
run, single-run backfill policy). A request is made only while no run of those assets is
waiting to start (queued, or launched and not yet executing) and no backfill of them is
requested: a run that has not started will read what landed meanwhile, while one already
executing will not, so the next one queues behind it and starts as soon as the warehouse
pool frees. At most one such refresh runs and one waits.

`refresh_latest=True`: the sensor also refreshes the latest day and the whole-table models
downstream of what changed, in ONE run per tick, never while one is waiting to start, and
remembers tables that changed meanwhile (the cursor's `dirty`) for the next run: one run per
refresh cycle instead of two serialized ones (bench/freshness measures both). It also closes a
gap of `eager()` for streams: `since_last_handled()`
treats parent updates that happen while a run of the asset is in flight as handled when that
run completes, so rows that land during the last refresh of a burst are not refreshed until
more data arrives (the benchmark's tail). Use it with the dbt assets' automation conditions
removed, or both would refresh the same assets.

In either mode the first tick (no cursor, or another lake/dataset) only takes stock of what
raw holds and queues nothing: that data is a first build's (`make dev` launches one, a new
deployment backfills), and a refresh of whole tables before it fails on missing upstreams.

Checks (`checks_interval`, REFRESH_CHECKS_INTERVAL_SECONDS): with an interval, the refreshes
the sensor requests carry no checks: they publish the models first, and the checks of every
asset refreshed since (dbt tests, quality rules; not the reconciliation) are verified at
most once per interval, only while no refresh is in flight, so they see what the refreshes
published (once one is due, the sensor requests no new refresh until it has been requested,
or back-to-back refreshes would put it off forever): the dbt tests in one run that queues
like a refresh, the quality rules (which read the read snapshot) in one that never holds a
refresh up. At a few events per second refreshes run back to back, and 180 dbt tests in
each cost more than the models (bench/scale): this keeps the marts fresh in seconds and the
verification minutes behind at most. The price: a dbt test that fails no longer stops the
models downstream of it in the same refresh (it does in `dbt build`); the failure alerts
from the verification run. With 0, every refresh carries its checks, as before.
"""

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from platform_assets.dbt.assets import dbt_event_models, dbt_models
from platform_assets.partitions import daily_partitions
from platform_assets.raw.assets import raw_asset_key
from platform_assets.raw.observers import (
    BigQueryObserver,
    LakeObserver,
    observer_for,
)
from platform_assets.warehouse_runs import warehouse_tags
from platform_core.settings import Settings

SENSOR_NAME = "raw_tables_sensor"
CURSOR_VERSION = 1
MAX_DAYS_PER_RUN = 31
EVENT_TABLE = "events"
LATE_DAYS_TAG = "platform/late_event_days"
VERIFICATION_TAG = "platform/verification"


# --- cursor and late event days -------------------------------------------------------------


@dataclass
class RawCursor:
    identity: str = ""
    tables: dict[str, Any] = field(default_factory=dict)
    pending_days: list[str] = field(default_factory=list)
    seq: int = 0
    dirty: list[str] = field(default_factory=list)  # refresh_latest: tables changed since
    unverified: list[str] = field(default_factory=list)  # assets refreshed without checks
    verified_at: float = 0.0  # when the last verification run was requested (epoch s)

    @classmethod
    def load(cls, text: str | None) -> "RawCursor":
        if not text:
            return cls()
        try:
            doc = json.loads(text)
        except ValueError:
            return cls()
        if doc.get("v") != CURSOR_VERSION:
            return cls()
        return cls(
            doc.get("id", ""),
            doc.get("tables", {}),
            doc.get("pending", []),
            int(doc.get("seq", 0)),
            doc.get("dirty", []),
            doc.get("unverified", []),
            float(doc.get("verified_at", 0.0)),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "id": self.identity,
                "tables": self.tables,
                "pending": self.pending_days,
                "seq": self.seq,
                "dirty": self.dirty,
                "unverified": self.unverified,
                "verified_at": self.verified_at,
            },
            separators=(",", ":"),
            sort_keys=True,
        )


def late_days(
    partitions: Iterable[str], partitions_def: dg.DailyPartitionsDefinition, now: datetime
) -> tuple[list[str], list[str]]:
    """(event days older than the latest partition, days outside the partition range)."""
    keys = partitions_def.get_partition_keys(current_time=now)
    first, latest = (keys[0], keys[-1]) if keys else (None, None)
    late, outside = [], []
    for value in sorted(set(partitions)):
        try:
            day = date.fromisoformat(value).isoformat()
        except ValueError:
            outside.append(value)
            continue
        if latest is None or first is None or day < first or day > latest:
            outside.append(day)
        elif day < latest:
            late.append(day)
    return late, outside


def next_range(days: Sequence[str], max_days: int = MAX_DAYS_PER_RUN) -> tuple[str, str]:
    """The first contiguous run of days (at most max_days)."""
    ordered = sorted(set(days))
    start = end = date.fromisoformat(ordered[0])
    for value in ordered[1:]:
        day = date.fromisoformat(value)
        if day != end + timedelta(days=1) or (day - start).days >= max_days:
            break
        end = day
    return start.isoformat(), end.isoformat()


IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
# a run in these has not started its steps: it will read whatever lands until it does
NOT_YET_STARTED = IN_FLIGHT[:3]


def refresh_in_flight(
    instance: dg.DagsterInstance,
    keys: Iterable[dg.AssetKey],
    statuses: Sequence[dg.DagsterRunStatus] = IN_FLIGHT,
) -> str | None:
    """Id of a run in `statuses` (default: queued or running) or a requested backfill that
    refreshes any of `keys`."""
    wanted = set(keys)
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(statuses)), limit=200):
        if VERIFICATION_TAG in run.tags:
            continue  # checks only: a refresh may queue behind it
        selection = run.asset_selection
        if selection is not None and selection & wanted:
            return run.run_id
        if selection is None and run.job_name.startswith("__"):
            return run.run_id  # an implicit asset job over every asset (e.g. dg.materialize)
    from dagster._core.execution.backfill import BulkActionStatus

    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=50):
        selection = set(backfill.asset_selection or [])
        if not selection or selection & wanted:
            return backfill.backfill_id
    return None


# Checks that need more than the refreshed table (the source database, a drained stream)
# run from their own job, not along with every refresh.
STANDALONE_CHECKS = frozenset({"reconciles_with_source"})


def _ride_along_checks(
    context: dg.SensorEvaluationContext, keys: Sequence[dg.AssetKey]
) -> list[dg.AssetCheckKey] | None:
    repository = getattr(context, "repository_def", None)
    if repository is None:
        return None
    wanted = set(keys)
    return [
        check
        for check in repository.asset_graph.asset_check_keys
        if check.asset_key in wanted and check.name not in STANDALONE_CHECKS
    ]


def verification_in_flight(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=list(IN_FLIGHT), tags={VERIFICATION_TAG: "refreshes"}),
        limit=1,
    )
    return bool(runs)


def verification_due(cursor: "RawCursor", now: datetime, interval: timedelta) -> bool:
    return bool(cursor.unverified) and (
        now.timestamp() - cursor.verified_at >= interval.total_seconds()
    )


def _verification(
    context: dg.SensorEvaluationContext,
    cursor: "RawCursor",
    now: datetime,
    interval: timedelta,
) -> list[dg.RunRequest]:
    """The checks of every asset refreshed without them since the last verification, once
    the interval has passed, with neither a verification nor a refresh of those assets in
    flight: the dbt tests in one run, which queues like a refresh (dbt opens the warehouse)
    behind the refresh requested in the same tick, and the quality rules in another, which
    reads the read snapshot and so never holds up a refresh."""
    if not verification_due(cursor, now, interval):
        return []
    keys = [dg.AssetKey.from_user_string(k) for k in cursor.unverified]
    checks = _ride_along_checks(context, keys)
    if not checks or verification_in_flight(context.instance):
        return []
    if refresh_in_flight(context.instance, keys):  # it would check a table mid-refresh
        return []
    cursor.seq += 1
    cursor.verified_at = now.timestamp()
    cursor.unverified = []
    dbt_tests = set(dbt_event_models.check_keys) | set(dbt_models.check_keys)
    kinds = (
        ("dbt-tests", [c for c in checks if c in dbt_tests], warehouse_tags()),
        ("rules", [c for c in checks if c not in dbt_tests], {}),
    )
    # no partition: checks are not partitioned, and the dbt tests read whole tables
    return [
        dg.RunRequest(
            run_key=f"verify-refreshes-{cursor.seq}-{kind}",
            asset_selection=[],
            asset_check_keys=selected,
            tags=tags | {VERIFICATION_TAG: "refreshes"},
        )
        for kind, selected, tags in kinds
        if selected
    ]


def _request(
    cursor: "RawCursor",
    kind: str,
    start: str,
    end: str,
    keys: Sequence[dg.AssetKey],
    check_keys: Sequence[dg.AssetCheckKey] | None = None,
) -> dg.RunRequest:
    """One run over the event days start..end (one partition, or a single-run range)."""
    cursor.seq += 1
    tags = warehouse_tags()
    if kind == "late":
        tags[LATE_DAYS_TAG] = f"{start}...{end}"
    run_key = f"{'late-event-days' if kind == 'late' else 'latest-event-day'}-{cursor.seq}"
    if start == end:
        return dg.RunRequest(
            run_key=run_key,
            asset_selection=list(keys),
            asset_check_keys=check_keys,
            partition_key=start,
            tags=tags,
        )
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    tags |= {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
    return dg.RunRequest(
        run_key=run_key, asset_selection=list(keys), asset_check_keys=check_keys, tags=tags
    )


def _downstream(
    context: dg.SensorEvaluationContext, tables: Iterable[str], candidates: Sequence[dg.AssetKey]
) -> list[dg.AssetKey]:
    """The candidate keys downstream of these raw tables (all candidates without a graph)."""
    repository = getattr(context, "repository_def", None)
    if repository is None or not candidates:
        return list(candidates)
    selection = dg.AssetSelection.assets(*(raw_asset_key(t) for t in tables)).downstream()
    found = selection.resolve(repository.asset_graph)
    return [key for key in candidates if key in found]


def evaluate_raw_tables(
    context: dg.SensorEvaluationContext,
    observer: LakeObserver | BigQueryObserver,
    *,
    refresh_keys: Sequence[dg.AssetKey],
    partitions_def: dg.DailyPartitionsDefinition,
    now: datetime | None = None,
    refresh_latest: bool = False,
    whole_table_keys: Sequence[dg.AssetKey] = (),
    checks_interval: timedelta = timedelta(0),
) -> dg.SensorResult:
    """One tick. `refresh_keys` are the day-partitioned assets whose late days this sensor
    refreshes. With `refresh_latest` the sensor also refreshes the latest day and the
    `whole_table_keys` downstream of what changed, in one run per tick (for deployments that
    do not use declarative automation for them; see the module docstring). A positive
    `checks_interval` moves the refreshes' checks into verification runs."""
    now = now or datetime.now(UTC)
    cursor = RawCursor.load(context.cursor)
    baseline = cursor.identity != observer.identity
    if baseline:  # first tick (or another lake/dataset): report what is there, queue nothing
        cursor = RawCursor(identity=observer.identity, seq=cursor.seq, dirty=cursor.dirty)
    changes, cursor.tables = observer.observe(cursor.tables)

    events: list[dg.AssetMaterialization] = []
    for table, change in sorted(changes.items()):
        if not change.has_new_data:
            continue
        metadata = change.metadata()
        if table == EVENT_TABLE:
            late, outside = late_days(change.partitions, partitions_def, now)
            metadata["late_event_days"] = dg.MetadataValue.json(late)
            if outside:
                metadata["event_days_outside_partitions"] = dg.MetadataValue.json(outside)
            if not baseline:
                cursor.pending_days = sorted(set(cursor.pending_days) | set(late))
        if refresh_latest and not baseline:  # what raw held before is the first build's
            cursor.dirty = sorted(set(cursor.dirty) | {table})
        events.append(
            dg.AssetMaterialization(
                asset_key=raw_asset_key(table),
                metadata=metadata,
                description=(
                    "first observation of the existing raw data"
                    if baseline
                    else f"{change.new_files or 'new'} new file(s) / rows landed"
                ),
            )
        )

    def checks_for(keys: Sequence[dg.AssetKey]) -> list[dg.AssetCheckKey] | None:
        """The checks a refresh of `keys` carries: none when a verification run does them."""
        if not checks_interval:
            return _ride_along_checks(context, keys)
        cursor.unverified = sorted({*cursor.unverified, *(k.to_user_string() for k in keys)})
        return []

    # decided before this tick's refresh (which it does not cover) and queued after it, so
    # that refresh does not wait for the checks
    due = bool(checks_interval) and not baseline and verification_due(cursor, now, checks_interval)
    verification = _verification(context, cursor, now, checks_interval) if due else []
    run_requests: list[dg.RunRequest] = []
    waiting_on = None
    if cursor.pending_days or cursor.dirty:
        watched = [*refresh_keys, *whole_table_keys] if refresh_latest else list(refresh_keys)
        # A refresh that has not started will read what landed since: nothing to add. One
        # that has started reads no more, so the next one is requested now and queues behind
        # it (the warehouse pool lets one in at a time): the daemon launches it as soon as
        # the pool frees, instead of at the tick after. While a verification is due and
        # waits for refreshes to finish, no new one is requested, so that it gets its turn.
        holding_for_verification = due and not verification
        waiting_on = refresh_in_flight(
            context.instance,
            watched,
            IN_FLIGHT if holding_for_verification else NOT_YET_STARTED,
        )
    if waiting_on is None and cursor.pending_days:  # late days first: rare, and quick
        start, end = next_range(cursor.pending_days)
        keys = list(refresh_keys)
        if refresh_latest:
            keys += _downstream(context, [EVENT_TABLE], whole_table_keys)
        run_requests.append(_request(cursor, "late", start, end, keys, checks_for(keys)))
        cursor.pending_days = [d for d in cursor.pending_days if not start <= d <= end]
    elif waiting_on is None and cursor.dirty:
        whole = _downstream(context, cursor.dirty, whole_table_keys)
        days = partitions_def.get_partition_keys(current_time=now)
        if EVENT_TABLE in cursor.dirty and days:
            keys = [*refresh_keys, *whole]
            run_requests.append(
                _request(cursor, "latest", days[-1], days[-1], keys, checks_for(keys))
            )
        elif whole:  # only CDC / dead letters changed: whole tables, no partition
            cursor.seq += 1
            run_requests.append(
                dg.RunRequest(
                    run_key=f"whole-tables-{cursor.seq}",
                    asset_selection=whole,
                    asset_check_keys=checks_for(whole),
                    tags=warehouse_tags(),
                )
            )
        cursor.dirty = []

    run_requests += verification

    # what this tick saw, in the tick's reason or logs (the UI shows both per tick)
    saw = "; ".join(
        f"{e.asset_key.to_user_string()} +{e.metadata['new_rows'].value} rows" for e in events
    )
    if not run_requests:
        reason = saw or "no new raw data"
        if waiting_on:
            reason += f"; refreshes wait for {waiting_on}"
        return dg.SensorResult(asset_events=events, skip_reason=reason, cursor=cursor.dump())
    context.log.info(
        f"saw: {saw or 'no new raw data'}; requested: "
        + "; ".join(f"{r.run_key} ({len(r.asset_selection or [])} assets)" for r in run_requests)
    )
    return dg.SensorResult(asset_events=events, run_requests=run_requests, cursor=cursor.dump())


def build_raw_sensor(
    settings: Settings,
    *,
    observer_factory: Callable[[Settings], LakeObserver | BigQueryObserver] | None = None,
    minimum_interval_seconds: int | None = None,
    refresh_latest: bool = False,
    checks_interval: timedelta | None = None,
) -> dg.SensorDefinition:
    """The raw sensor of this deployment (`settings` picks the lake or BigQuery observer and
    the interval, RAW_SENSOR_INTERVAL_SECONDS, unless `minimum_interval_seconds` is given).

    Default: it reports raw materializations and refreshes late event days; declarative
    automation refreshes the latest day and the whole-table models. `refresh_latest=True`
    makes the sensor request those refreshes itself, one run per tick (latest day of the
    partitioned models + the whole-table models downstream of what changed): use it only
    with the automation conditions of the dbt assets removed, or both would refresh them.
    `checks_interval` (default: REFRESH_CHECKS_INTERVAL_SECONDS) moves the checks of the
    refreshes into a verification run at most that often; 0 keeps them in every refresh.
    """

    def by_name(keys: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
        return sorted(keys, key=lambda k: k.to_user_string())

    refresh_keys = by_name(dbt_event_models.keys)
    whole_table_keys = by_name(dbt_models.keys) if refresh_latest else []
    make_observer = observer_factory or observer_for
    target = (
        dg.AssetSelection.assets(dbt_event_models, dbt_models)
        if refresh_latest
        else dg.AssetSelection.assets(dbt_event_models)
    )

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds
        or max(1, round(settings.raw_sensor_interval.total_seconds())),
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=target,
        description="Reports new data in the raw tables (lake files or BigQuery metadata) and "
        "refreshes late event days of the day-partitioned staging models.",
    )
    def raw_tables_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        started = time.monotonic()
        result = evaluate_raw_tables(
            context,
            make_observer(settings),
            refresh_keys=refresh_keys,
            partitions_def=daily_partitions(),
            refresh_latest=refresh_latest,
            whole_table_keys=whole_table_keys,
            checks_interval=(
                settings.refresh_checks_interval if checks_interval is None else checks_interval
            ),
        )
        context.log.debug(f"raw sensor tick took {time.monotonic() - started:.2f}s")
        return result

    return raw_tables_sensor
