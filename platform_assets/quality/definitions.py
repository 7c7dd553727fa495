"""The data-quality feature: what the agent adds to the code location.

- asset checks: one multi-asset check per configured asset (raw, staging, mart);
- job `data_quality_checks` + schedule `data_quality_every_30_minutes` (RUNNING);
- sensor `data_quality_slack_alerts` (RUNNING): failed checks to Slack, recoveries;
- resources `quality` (QualityResource) and `slack_alerts` (SlackAlerts), with the values
  of this deployment.
"""

from __future__ import annotations

import dagster as dg

from platform_assets.quality.alerts import build_alert_sensor
from platform_assets.quality.checks import QualityResource, quality_asset_checks, quality_schedule
from platform_assets.quality.slack import SlackAlerts
from platform_core.settings import Settings


def quality_resources(settings: Settings, **quality_config: object) -> dict[str, object]:
    return {
        "quality": QualityResource.from_settings(settings, **quality_config),
        "slack_alerts": SlackAlerts.from_settings(settings),
    }


def build_defs(settings: Settings) -> dg.Definitions:
    checks = quality_asset_checks()
    return dg.Definitions(
        asset_checks=checks,
        schedules=[quality_schedule(checks)],
        sensors=[build_alert_sensor()],
        resources=quality_resources(settings),
    )
