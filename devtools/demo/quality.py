"""What `make demo` needs to show the data-quality agent (called from devtools/demo/steps.py).

1. `inject_demo_fault(settings, day)`: on the last simulated day, a share of the new order
   lines point at a product that does not exist (CDC updates appended to the raw lake).
2. Materialize with `quality_asset_checks()` added and `demo_quality_resources(config.end)`:
   the checks judge the data as of the simulation's end, so freshness is measured against
   the simulated clock rather than today's.
3. `deliver_alerts_once(instance, defs)`: one tick of the Slack sensor: one message per
   incident (failing checks grouped by root cause over the asset graph). Without
   SLACK_WEBHOOK_URL / SLACK_BOT_TOKEN it posts to a local webhook stand-in on 127.0.0.1 and
   returns the payloads (also appended to DATA_DIR/slack_payloads.jsonl).
4. `failed_history_rows()`: the rows the run left in monitoring.data_quality_checks.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from devtools.faults import inject_orphaned_order_items
from devtools.slack_webhook import LocalWebhook
from platform_assets.quality.alerts import deliver_alerts
from platform_assets.quality.definitions import quality_resources
from platform_assets.quality.history import history_for
from platform_assets.quality.slack import SlackAlerts
from platform_core.settings import Settings, get_settings

# the dbt test that owns the invariant the demo's fault breaks (each invariant checked once)
DEMO_FAULT_CHECK = (
    "staging/stg_order_items",
    "relationships_stg_order_items_product_id__product_id__ref_stg_products_",
)


def inject_demo_fault(settings: Settings, day: date) -> int:
    return inject_orphaned_order_items(settings.lake_path, day)


def demo_quality_resources(simulation_end: datetime) -> dict[str, Any]:
    as_of = simulation_end.replace(tzinfo=None) + timedelta(minutes=5)
    return quality_resources(get_settings(), as_of=as_of.isoformat())


def deliver_alerts_once(
    instance: dg.DagsterInstance, defs: dg.Definitions, out: Path | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Run the alert sensor's logic once; returns (payloads, where they went)."""

    settings = get_settings()
    graph = defs.resolve_asset_graph()
    out = out or settings.data_path / "slack_payloads.jsonl"
    if settings.slack_webhook_url or settings.slack_bot_token:
        sink = SlackAlerts.from_settings(settings)
        _, outcome = deliver_alerts(instance, graph, None, sink)
        return outcome.alerts + outcome.recoveries, sink.destination()
    with LocalWebhook(out=out) as hook:
        deliver_alerts(
            instance, graph, None, SlackAlerts.from_settings(settings, webhook_url=hook.url)
        )
        return list(hook.payloads), f"local webhook {hook.url} (copied to {out})"


def failed_history_rows(limit: int = 10) -> list[dict[str, Any]]:
    return history_for(get_settings()).rows(failed_only=True, limit=limit)
