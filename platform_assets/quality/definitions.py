"""Everything the data-quality agent adds to the code location, for the lead to merge:

    dg.Definitions.merge(build_definitions(), quality_definitions())

- asset checks: one multi-asset check per configured asset (raw, staging, mart);
- job `data_quality_checks` + schedule `data_quality_every_30_minutes` (RUNNING);
- sensor `data_quality_slack_alerts` (RUNNING): failed checks to Slack, recoveries;
- resources `quality` (QualityResource) and `slack_alerts` (SlackAlerts).
"""

from __future__ import annotations

import dagster as dg

from platform_assets.quality.alerts import SlackAlerts, build_alert_sensor
from platform_assets.quality.checks import (
    QualityResource,
    quality_asset_checks,
    quality_schedule,
)


def quality_resources(**quality_config: object) -> dict[str, dg.ConfigurableResource]:
    return {"quality": QualityResource(**quality_config), "slack_alerts": SlackAlerts()}


def quality_definitions() -> dg.Definitions:
    checks = quality_asset_checks()
    return dg.Definitions(
        asset_checks=checks,
        schedules=[quality_schedule(checks)],
        sensors=[build_alert_sensor()],
        resources=quality_resources(),
    )
