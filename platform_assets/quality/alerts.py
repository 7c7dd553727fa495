"""Slack alerts for failed asset checks: a cursor-based sensor over check evaluations.

Failed asset checks do not fail runs, so run-failure sensors never see them. This sensor
reads the check execution history of every check in the code location (ours and the dbt
tests), in order, per check key (a planned execution is updated in place when it completes,
so the cursor keeps the last processed record id per check, not one global id).

- A failure posts a Block Kit message: asset, check, severity, metric vs expected, the rule's
  finding, the narrative (and who wrote it), a link to the asset's checks in the Dagster UI.
- Suppression: a fingerprint (asset + check + failure kind + severity) alerts once per
  window (`suppression_minutes`, default 24 h), not every 30 minutes while a table stays
  broken. A different failure of the same check is a new fingerprint and alerts.
- Recovery: when a check that alerted passes again, a recovery message is posted and its
  fingerprint is cleared, so a new failure alerts again.
- Delivery: `SLACK_WEBHOOK_URL` (incoming webhook, plain HTTP), else `SLACK_BOT_TOKEN`
  (chat.postMessage to `SLACK_CHANNEL` with slack_sdk, which dagster-slack brings), else the
  same payload goes to the log. A failed delivery is logged and retried with the next
  evaluation (the fingerprint is only marked alerted once delivered).

The first tick without a cursor only considers evaluations of the last hour, so turning the
sensor on does not replay history into Slack.

No `from __future__ import annotations` here: Dagster inspects the context annotations.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
)

from platform_assets.genai.llm import DETERMINISTIC_LABEL
from platform_assets.genai.quality_agent import deterministic_narrative
from platform_assets.quality.dbt_tests import rule_for_dbt_test
from platform_assets.resources import reveal, secret
from platform_core.settings import Settings

log = logging.getLogger(__name__)

SENSOR_NAME = "data_quality_slack_alerts"
FIRST_RUN_LOOKBACK_SECONDS = 3600
HISTORY_PAGE = 25
MAX_BLOCK_TEXT = 2900  # Slack: 3000 characters per text object


# --- what an evaluation says -----------------------------------------------------------


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


@dataclass
class Evaluation:
    record_id: int
    asset: str
    asset_path: list[str]
    check: str
    passed: bool
    severity: str  # ERROR or WARN
    description: str
    metadata: dict[str, Any]
    run_id: str
    timestamp: float

    @property
    def check_key(self) -> str:
        return f"{self.asset}:{self.check}"

    @property
    def fingerprint(self) -> str:
        given = self.metadata.get("fingerprint")
        if given:
            return str(given)
        raw = "|".join((self.asset, self.check, "failed", self.severity.lower()))
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    @property
    def is_quality_rule(self) -> bool:
        return "rule" in self.metadata and "expected_range" in self.metadata


def evaluation_from_record(record: Any) -> Evaluation | None:
    event = record.event
    evaluation = event.asset_check_evaluation if event is not None else None
    if evaluation is None:
        return None
    return Evaluation(
        record_id=record.id,
        asset=evaluation.asset_key.to_user_string(),
        asset_path=list(evaluation.asset_key.path),
        check=evaluation.check_name,
        passed=evaluation.passed,
        severity=evaluation.severity.value,
        description=evaluation.description or "",
        metadata={k: _plain(v) for k, v in (evaluation.metadata or {}).items()},
        run_id=record.run_id or "",
        timestamp=event.timestamp,
    )


# --- Block Kit -------------------------------------------------------------------------


def escape(text: Any) -> str:
    """Slack mrkdwn control characters; data values cannot open links or mention @channel."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = MAX_BLOCK_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def asset_url(ui_url: str, path: list[str]) -> str:
    return f"{ui_url.rstrip('/')}/assets/{'/'.join(path)}?view=checks"


def _metric_line(ev: Evaluation) -> tuple[str, str]:
    meta = ev.metadata
    if ev.is_quality_rule:
        value = meta.get("value")
        value_text = f"{value:,.4g}" if isinstance(value, float) else str(value)
        return f"{meta.get('metric')} = {value_text}", str(meta.get("expected_range"))
    failed_rows = meta.get("dagster_dbt/failed_row_count")
    if failed_rows is not None:
        return f"failing rows = {failed_rows}", "0"
    return "test failed", "passes"


def _narrative_text(ev: Evaluation) -> tuple[str, str]:
    narrative = ev.metadata.get("narrative_json")
    narrator = ev.metadata.get("narrator", "")
    if not isinstance(narrative, dict):
        # a dbt test: the agent explains it with what it knows of that kind of failure
        rule, kind = rule_for_dbt_test(ev.check)
        finding = {
            "asset": ev.asset,
            "check_name": ev.check,
            "passed": False,
            "severity": "error" if ev.severity == "ERROR" else "warn",
            "rule": rule,
            "kind": kind,
            "description": ev.description or f"dbt test {ev.check} failed on {ev.asset}.",
        }
        narrative = deterministic_narrative(finding).model_dump()
        narrator = DETERMINISTIC_LABEL
    lines = [escape(narrative.get("summary", ""))]
    causes = narrative.get("likely_causes") or []
    if causes:
        lines.append("*Likely causes*")
        lines += [f"{i}. {escape(c.get('cause', ''))}" for i, c in enumerate(causes[:3], 1)]
    actions = narrative.get("recommended_actions") or []
    if actions:
        lines.append("*Recommended actions*")
        lines += [f"• {escape(a)}" for a in actions[:3]]
    return "\n".join(lines), str(narrator)


def alert_payload(ev: Evaluation, ui_url: str) -> dict[str, Any]:
    critical = ev.severity == "ERROR"
    label = "CRITICAL" if critical else "WARNING"
    blocking = " (blocking)" if ev.metadata.get("blocking") is True else ""
    icon = ":red_circle:" if critical else ":large_yellow_circle:"
    metric, expected = _metric_line(ev)
    narrative, narrator = _narrative_text(ev)
    finding = ev.metadata.get("description") or ev.description or "The check failed."
    url = asset_url(ui_url, ev.asset_path)
    text = f"[{label}] {ev.asset} · {ev.check} failed: {metric} (expected {expected})"
    return {
        "text": text,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "emoji": True,
                    "text": _clip(f"{icon} Data quality {label}: {ev.asset}", 150),
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Asset*\n<{url}|{escape(ev.asset)}>"},
                    {"type": "mrkdwn", "text": f"*Check*\n{escape(ev.check)}"},
                    {"type": "mrkdwn", "text": f"*Severity*\n{label}{blocking}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Metric vs expected*\n{escape(metric)} "
                        f"(expected {escape(expected)})",
                    },
                ],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(f"*Finding*\n{escape(finding)}")},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(f"*Narrative*\n{narrative}")},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _clip(
                            f"Narrative by {escape(narrator)} · "
                            "verdict and severity from the rule · "
                            f"fingerprint `{ev.fingerprint}` · run `{ev.run_id[:8] or 'n/a'}`",
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
                        "style": "danger" if critical else "primary",
                    }
                ],
            },
        ],
    }


def recovery_payload(ev: Evaluation, ui_url: str, since: float | None) -> dict[str, Any]:
    metric, expected = _metric_line(ev) if ev.is_quality_rule else ("passed", "passes")
    lasted = ""
    if since:
        minutes = max(0, (ev.timestamp - since) / 60)
        lasted = f" after {minutes / 60:.1f} h" if minutes >= 90 else f" after {minutes:.0f} min"
    url = asset_url(ui_url, ev.asset_path)
    text = f"[RECOVERED] {ev.asset} · {ev.check} passes again{lasted}"
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip(
                        f":large_green_circle: *Recovered*: <{url}|{escape(ev.asset)}> · "
                        f"{escape(ev.check)} passes again{lasted}.\n{escape(metric)} "
                        f"(expected {escape(expected)})"
                    ),
                },
            },
        ],
    }


# --- delivery --------------------------------------------------------------------------


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


# --- state and processing --------------------------------------------------------------


@dataclass
class AlertState:
    seen: dict[str, int] = field(default_factory=dict)  # check key -> last record id
    alerted: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> at, check
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # check key -> incident
    started: bool = False

    @classmethod
    def load(cls, cursor: str | None) -> "AlertState":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(
            seen=data.get("seen", {}),
            alerted=data.get("alerted", {}),
            open=data.get("open", {}),
            started=True,
        )

    def dump(self) -> str:
        return json.dumps(
            {"seen": self.seen, "alerted": self.alerted, "open": self.open}, sort_keys=True
        )


@dataclass
class Outcome:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.alerts)} alert(s), {len(self.recoveries)} recovery(ies), "
            f"{len(self.suppressed)} suppressed, {len(self.errors)} delivery error(s)"
        )


def new_evaluations(
    instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], state: AlertState, now: float
) -> list[Evaluation]:
    """Completed evaluations not processed yet, oldest first."""
    storage = instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(check_keys)
    found: list[Evaluation] = []
    for key, latest_record in latest.items():
        name = key.to_user_string()
        last_seen = state.seen.get(name, 0)
        if (
            latest_record is None
            or latest_record.id <= last_seen
            and latest_record.status in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        ):
            continue
        records = storage.get_asset_check_execution_history(key, limit=HISTORY_PAGE)
        fresh = []
        for record in records:  # newest first
            if record.id <= last_seen:
                break
            if record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
                continue  # in flight: completes in place, seen on a later tick
            evaluation = evaluation_from_record(record)
            if evaluation is not None:
                fresh.append(evaluation)
        if not state.started:  # first tick: only the latest, and only if recent
            fresh = [e for e in fresh[:1] if now - e.timestamp <= FIRST_RUN_LOOKBACK_SECONDS]
            completed = [
                r.id for r in records if r.status in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
            ]
            if completed and not fresh:
                state.seen[name] = max(completed)
        found += fresh
    return sorted(found, key=lambda e: e.record_id)


def process_evaluations(
    evaluations: list[Evaluation],
    state: AlertState,
    sink: SlackAlerts,
    now: float,
    logger: Any = log,
) -> Outcome:
    outcome = Outcome()
    window = sink.suppression_minutes * 60
    state.alerted = {fp: sent for fp, sent in state.alerted.items() if now - sent["at"] < window}
    ui_url = sink.ui_url()
    for ev in evaluations:
        key = ev.check_key
        if ev.passed:
            incident = state.open.get(key)
            if incident:
                payload = recovery_payload(ev, ui_url, incident.get("since"))
                try:
                    sink.send(payload)
                except Exception as error:
                    outcome.errors.append(f"{key}: {error}")
                    logger.error(f"recovery message for {key} not delivered: {error}")
                    break  # keep the cursor here: retried on the next tick
                outcome.recoveries.append(payload)
                state.alerted = {
                    fp: sent for fp, sent in state.alerted.items() if sent["check"] != key
                }  # a new failure alerts again
                del state.open[key]
            state.seen[key] = max(state.seen.get(key, 0), ev.record_id)
            continue
        fingerprint = ev.fingerprint
        if fingerprint in state.alerted:
            outcome.suppressed.append(f"{key} ({fingerprint})")
            state.open.setdefault(key, {"fingerprint": fingerprint, "since": ev.timestamp})
            state.seen[key] = max(state.seen.get(key, 0), ev.record_id)
            continue
        payload = alert_payload(ev, ui_url)
        try:
            sink.send(payload)
        except Exception as error:
            outcome.errors.append(f"{key}: {error}")
            logger.error(f"alert for {key} not delivered: {error}")
            state.seen[key] = max(state.seen.get(key, 0), ev.record_id)
            continue  # not marked alerted: the next failing evaluation alerts
        outcome.alerts.append(payload)
        state.alerted[fingerprint] = {"at": now, "check": key}
        previous = state.open.get(key, {})
        state.open[key] = {
            "fingerprint": fingerprint,
            "since": previous.get("since", ev.timestamp),
            "severity": ev.severity,
        }
        state.seen[key] = max(state.seen.get(key, 0), ev.record_id)
    return outcome


def deliver_alerts(
    instance: dg.DagsterInstance,
    check_keys: list[dg.AssetCheckKey],
    cursor: str | None,
    sink: SlackAlerts,
    *,
    now: float | None = None,
    logger: Any = log,
) -> tuple[str, Outcome]:
    """One sensor tick, callable outside the daemon (the demo and tests use it)."""
    now = time.time() if now is None else now
    state = AlertState.load(cursor)
    evaluations = new_evaluations(instance, check_keys, state, now)
    state.started = True
    outcome = process_evaluations(evaluations, state, sink, now, logger)
    return state.dump(), outcome


def build_alert_sensor(minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts failed asset checks to Slack (once per fingerprint and window) "
        "and a recovery message when they pass again.",
    )
    def data_quality_slack_alerts(context: dg.SensorEvaluationContext, slack_alerts: SlackAlerts):
        keys = sorted(
            context.repository_def.asset_graph.asset_check_keys, key=lambda k: k.to_user_string()
        )
        cursor, outcome = deliver_alerts(
            context.instance, keys, context.cursor, slack_alerts, logger=context.log
        )
        context.update_cursor(cursor)
        return dg.SkipReason(f"{outcome.summary()} via {slack_alerts.destination()}")

    return data_quality_slack_alerts


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
