"""Slack: where incident messages go, and what they look like (Block Kit).

- Delivery (`SlackAlerts`): `SLACK_WEBHOOK_URL` (incoming webhook, plain HTTP), else
  `SLACK_BOT_TOKEN` (chat.postMessage to `SLACK_CHANNEL` with slack_sdk, which dagster-slack
  brings), else the same payload goes to the log.
- One message per incident (`incident_payload`): the likely origin (the most upstream
  failing asset), severity, the affected assets, every failing check with its metric
  against the expected range, the narrative and a link to the origin in the Dagster UI;
  one message when it recovers (`recovery_payload`).

Every value that comes from data (descriptions, metric text, narratives, asset and check
names) is escaped for mrkdwn (`&`, `<`, `>`: a value cannot open a link or a `<!channel>`),
and every text object is `verbatim`, so Slack does not turn a bare URL, a #channel or an
@mention in a value into a link or a notification. Names go in code spans (no emphasis).

No `from __future__ import annotations` here: Dagster inspects the resource's annotations.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from platform_assets.quality.incidents import Incident
from platform_assets.resources import reveal, secret
from platform_core.settings import Settings

log = logging.getLogger(__name__)

MAX_BLOCK_TEXT = 2900  # Slack: 3000 characters per text object
MAX_CHECKS_LISTED = 12
LABELS = {"ERROR": ("CRITICAL", ":red_circle:"), "WARN": ("WARNING", ":large_yellow_circle:")}


def escape(text: Any) -> str:
    """Slack mrkdwn control characters; data values cannot open links or mention @channel."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: Any) -> str:
    """A name in a code span: no emphasis or strike inside; a backtick cannot close it."""
    return "`" + escape(str(text).replace("`", "'")) + "`"


def mrkdwn(text: str) -> dict[str, Any]:
    """A text object Slack shows as written: no auto-linked URLs, channels or mentions."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def clip(text: str, limit: int = MAX_BLOCK_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def asset_url(ui_url: str, asset: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{asset}?view=checks"


def _narrative_lines(narrative: dict[str, Any]) -> str:
    lines = [escape(narrative.get("summary", ""))]
    causes = narrative.get("likely_causes") or []
    if causes:
        lines.append("*Likely causes*")
        lines += [f"{i}. {escape(c.get('cause', ''))}" for i, c in enumerate(causes[:3], 1)]
    actions = narrative.get("recommended_actions") or []
    if actions:
        lines.append("*Recommended actions*")
        lines += [f"• {escape(a)}" for a in actions[:3]]
    return "\n".join(lines)


def _check_lines(incident: Incident) -> str:
    lines = []
    for failure in incident.failures[:MAX_CHECKS_LISTED]:
        label = LABELS.get(failure.severity, (failure.severity, ""))[0]
        lines.append(
            f"• {code(failure.asset)} · {code(failure.check)} ({label}): {escape(failure.summary)}"
        )
    hidden = len(incident.failures) - MAX_CHECKS_LISTED
    if hidden > 0:
        lines.append(f"… and {hidden} more")
    return "\n".join(lines)


def incident_payload(
    incident: Incident,
    ui_url: str,
    narrative: dict[str, Any],
    narrator: str,
    *,
    update: str = "",
) -> dict[str, Any]:
    """The one message of an incident (`update`: why it is posted again, if it is)."""
    label, icon = LABELS.get(incident.severity, LABELS["WARN"])
    origin = incident.origin
    url = asset_url(ui_url, origin)
    checks = len(incident.failures)
    assets = incident.assets
    count = f"{checks} failing check(s) on {len(assets)} asset(s)"
    prefix = f"{update}: " if update else ""
    text = f"[{label}] {prefix}data-quality incident at {origin}: {count}"
    blocking = " (blocking)" if any(f.blocking for f in incident.failures) else ""
    return {
        "text": text,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "emoji": True,
                    "text": clip(f"{icon} Data quality {label}: incident at {origin}", 150),
                },
            },
            {
                "type": "section",
                "fields": [
                    mrkdwn(f"*Likely origin*\n<{url}|{escape(origin)}>"),
                    mrkdwn(f"*Severity*\n{label}{blocking}"),
                    {
                        "type": "mrkdwn",
                        "verbatim": True,
                        "text": clip(f"*Affected assets*\n{escape(', '.join(assets))}", 1900),
                    },
                    mrkdwn(f"*Since*\n{utc_text(incident.opened_at)}"),
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "verbatim": True,
                    "text": clip(f"*Failing checks*\n{_check_lines(incident)}"),
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "verbatim": True,
                    "text": clip(f"*Narrative*\n{_narrative_lines(narrative)}"),
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "verbatim": True,
                        "text": clip(
                            f"Narrative by {escape(narrator)} · verdicts and severities from "
                            f"the rules and dbt tests · incident `{incident.id}` · runs "
                            f"{escape(', '.join(r[:8] for r in incident.run_ids) or 'n/a')}",
                            300,
                        ),
                    }
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in Dagster"},
                        "url": url,
                        "style": "danger" if incident.severity == "ERROR" else "primary",
                    }
                ],
            },
        ],
    }


def recovery_payload(incident: Incident, ui_url: str, now: float) -> dict[str, Any]:
    minutes = max(0.0, (now - incident.opened_at) / 60)
    lasted = f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"
    origin = incident.origin
    checks = sorted(incident.members)
    text = (
        f"[RECOVERED] data-quality incident at {origin}: all {len(checks)} checks pass again "
        f"after {lasted}"
    )
    listed = ", ".join(escape(c) for c in checks[:MAX_CHECKS_LISTED])
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "verbatim": True,
                    "text": clip(
                        f":large_green_circle: *Recovered*: incident at "
                        f"<{asset_url(ui_url, origin)}|{escape(origin)}> · all {len(checks)} "
                        f"check(s) pass again after {lasted}.\n{listed}"
                    ),
                },
            },
            {
                "type": "context",
                "elements": [mrkdwn(f"incident `{incident.id}`")],
            },
        ],
    }


def utc_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


class SlackAlerts(dg.ConfigurableResource):
    """Where alerts go: the webhook, else the bot token (chat.postMessage to `channel`), else
    the log. The two secrets are config only as `dg.EnvVar`s (SLACK_WEBHOOK_URL,
    SLACK_BOT_TOKEN): the UI shows the variable's name, never its value.
    """

    webhook_url: str = ""
    bot_token: str = ""
    channel: str = "#data-alerts"
    dagster_ui_url: str = "http://127.0.0.1:3000"
    slack_api_url: str = "https://slack.com/api/"
    suppression_minutes: int = 24 * 60
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "SlackAlerts":
        values: dict[str, Any] = {
            "webhook_url": secret(settings.slack_webhook_url, "SLACK_WEBHOOK_URL"),
            "bot_token": secret(settings.slack_bot_token, "SLACK_BOT_TOKEN"),
            "channel": settings.slack_channel,
            "dagster_ui_url": settings.dagster_ui_url,
        }
        return cls(**(values | overrides))

    def ui_url(self) -> str:
        return self.dagster_ui_url

    def destination(self) -> str:
        if self.webhook_url:
            return "webhook"
        if self.bot_token:
            return "slack-api"
        return "log"

    def send(self, payload: dict[str, Any]) -> str:
        webhook = reveal(self.webhook_url)
        if webhook:
            import httpx

            response = httpx.post(webhook, json=payload, timeout=self.timeout_seconds)
            if response.status_code >= 300:
                raise RuntimeError(
                    f"Slack webhook answered {response.status_code}: {response.text[:200]}"
                )
            return "webhook"
        if self.bot_token:
            from slack_sdk import WebClient  # only where the bot token is used

            client = WebClient(
                token=reveal(self.bot_token),
                base_url=self.slack_api_url,
                timeout=int(self.timeout_seconds),
            )
            client.chat_postMessage(
                channel=self.channel,
                text=payload["text"],
                blocks=payload["blocks"],
            )
            return "slack-api"
        log.warning(
            "Slack alert (no SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN set): %s", json.dumps(payload)
        )
        return "log"
