"""Slack alerts: Block Kit payload to a local HTTP server, suppression and recovery, delivery."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import dagster as dg
import pytest

from devtools.slack_webhook import LocalWebhook
from platform_assets.quality.alerts import (
    AlertState,
    Evaluation,
    SlackAlerts,
    alert_payload,
    build_alert_sensor,
    deliver_alerts,
    process_evaluations,
)
from platform_assets.quality.checks import to_check_result
from platform_assets.quality.results import CheckResult
from platform_core.settings import get_settings

KEY = dg.AssetKey(["staging", "stg_order_items"])
UI = "http://dagster.test:3000"


@pytest.fixture
def no_slack_settings(monkeypatch):
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def webhook():
    with LocalWebhook() as hook:
        yield hook


def finding(
    *,
    passed: bool,
    kind: str = "orphans",
    severity: str = "error",
    description: str = "12 of 100 rows (12.00%) have no match.",
) -> CheckResult:
    return CheckResult(
        asset="staging/stg_order_items",
        check_name="referential_integrity_product_id",
        rule="references",
        passed=passed,
        severity=severity,
        metric="orphan_rate",
        value=0.0 if passed else 0.12,
        expected_low=0.0,
        expected_high=0.0,
        description=description,
        kind="" if passed else kind,
        status="pass" if passed else ("fail" if severity == "error" else "warn"),
        sample=[] if passed else [{"product_id": 990001, "rows": 12}],
        as_of=datetime(2026, 11, 21),
        narrative=None
        if passed
        else {
            "summary": "Order lines point at product 990001, unknown to stg_products.",
            "likely_causes": [{"cause": "Late products CDC.", "reasoning": ""}],
            "evidence": ["orphan_rate 0.12"],
            "recommended_actions": ["Look up 990001 in raw.cdc_products."],
        },
        narrator="deterministic narrator (no LLM)",
    )


class Scripted:
    """A check whose next result the test decides."""

    def __init__(self) -> None:
        self.next = finding(passed=False)

    def definitions(self) -> dg.Definitions:
        script = self

        @dg.asset_check(asset=KEY, name="referential_integrity_product_id")
        def scripted_check() -> dg.AssetCheckResult:
            return to_check_result(script.next)

        return dg.Definitions(
            assets=[dg.AssetSpec(KEY)],
            asset_checks=[scripted_check],
            jobs=[
                dg.define_asset_job("checks", selection=dg.AssetSelection.checks(scripted_check))
            ],
            sensors=[build_alert_sensor()],
        )


def test_failed_check_posts_block_kit_then_suppresses_then_recovers(no_slack_settings, webhook):
    script = Scripted()
    defs = script.definitions()
    job = defs.resolve_job_def("checks")
    sensor = defs.resolve_sensor_def("data_quality_slack_alerts")
    sink = SlackAlerts(webhook_url=webhook.url, dagster_ui_url=UI)

    with dg.instance_for_test() as instance:
        cursor = None

        def check_then_tick(result: CheckResult) -> None:
            nonlocal cursor
            script.next = result
            assert job.execute_in_process(instance=instance, raise_on_error=False)
            context = dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                repository_def=defs.get_repository_def(),
                resources={"slack_alerts": sink},
            )
            tick = sensor.evaluate_tick(context)
            cursor = tick.cursor

        check_then_tick(finding(passed=False))
        assert len(webhook.payloads) == 1
        alert = webhook.payloads[0]
        assert alert["text"].startswith("[CRITICAL] staging/stg_order_items")
        text = str(alert["blocks"])
        assert "referential_integrity_product_id" in text
        assert "orphan_rate = 0.12 (expected 0 .. 0)" in text or "orphan_rate = 0.12" in text
        assert "Order lines point at product 990001" in text  # the narrative
        assert "deterministic narrator (no LLM)" in text
        button = alert["blocks"][-1]["elements"][0]
        assert button["url"] == f"{UI}/assets/staging/stg_order_items?view=checks"

        check_then_tick(finding(passed=False))  # same failure 30 minutes later: silent
        assert len(webhook.payloads) == 1

        check_then_tick(finding(passed=False, severity="warn"))  # a different failure
        assert len(webhook.payloads) == 2 and webhook.payloads[1]["text"].startswith("[WARNING]")

        check_then_tick(finding(passed=True))  # recovered
        assert len(webhook.payloads) == 3
        assert webhook.payloads[2]["text"].startswith("[RECOVERED] staging/stg_order_items")

        check_then_tick(finding(passed=True))  # still fine: nothing
        check_then_tick(finding(passed=False))  # broken again after a recovery: alerts
        assert len(webhook.payloads) == 4 and webhook.payloads[3]["text"].startswith("[CRITICAL]")


def ev(record_id: int, passed: bool, at: float, fingerprint: str = "fp1") -> Evaluation:
    return Evaluation(
        record_id=record_id,
        asset="mart/fct_orders",
        asset_path=["mart", "fct_orders"],
        check="duplicate_keys",
        passed=passed,
        severity="ERROR",
        description="",
        metadata={
            "fingerprint": fingerprint,
            "rule": "duplicates",
            "expected_range": "= 0",
            "metric": "duplicate_keys",
            "value": 3.0,
            "blocking": True,
        },
        run_id="abcdef1234",
        timestamp=at,
    )


def test_suppression_window_expires(no_slack_settings, webhook):
    sink = SlackAlerts(webhook_url=webhook.url, suppression_minutes=60)
    state = AlertState(started=True)
    t0 = 1_800_000_000.0
    assert len(process_evaluations([ev(1, False, t0)], state, sink, t0).alerts) == 1
    assert process_evaluations([ev(2, False, t0 + 1800)], state, sink, t0 + 1800).suppressed
    later = process_evaluations([ev(3, False, t0 + 3700)], state, sink, t0 + 3700)
    assert len(later.alerts) == 1  # a reminder once the window has passed
    assert "(blocking)" in str(webhook.payloads[0]["blocks"])
    restored = AlertState.load(state.dump())
    assert restored.open == state.open and restored.alerted == state.alerted


def test_undelivered_alert_is_not_marked_as_sent(no_slack_settings):
    with LocalWebhook(status=500) as failing:
        sink = SlackAlerts(webhook_url=failing.url)
        state = AlertState(started=True)
        outcome = process_evaluations([ev(1, False, 0.0)], state, sink, 0.0)
        assert outcome.errors and not outcome.alerts and "fp1" not in state.alerted
    with LocalWebhook() as working:
        sink = SlackAlerts(webhook_url=working.url)
        outcome = process_evaluations([ev(2, False, 60.0)], state, sink, 60.0)
        assert len(outcome.alerts) == 1 and len(working.payloads) == 1


def test_data_values_cannot_inject_slack_markup():
    evaluation = ev(1, False, 0.0)
    evaluation.metadata["description"] = "<!channel> look <http://evil.example|here> & now"
    evaluation.metadata["narrative_json"] = {
        "summary": "<@U123> ping",
        "likely_causes": [],
        "recommended_actions": [],
    }
    text = str(alert_payload(evaluation, UI)["blocks"])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<http://evil" not in text and "&amp; now" in text and "<@U123>" not in text


def test_bot_token_posts_through_the_web_api(no_slack_settings, webhook):
    no_slack_settings.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    no_slack_settings.setenv("SLACK_CHANNEL", "#dq-test")
    get_settings.cache_clear()
    sink = SlackAlerts.from_settings(get_settings(), slack_api_url=webhook.url)
    assert sink.destination() == "slack-api"
    assert sink.bot_token == "SLACK_BOT_TOKEN", "config names the secret, never holds it"
    assert sink.send(alert_payload(ev(1, False, 0.0), UI)) == "slack-api"
    assert webhook.paths == ["/chat.postMessage"]
    assert webhook.payloads[0]["channel"] == "#dq-test" and webhook.payloads[0]["blocks"]


def test_without_webhook_or_token_the_payload_goes_to_the_log(no_slack_settings, caplog):
    sink = SlackAlerts()
    with caplog.at_level(logging.WARNING, logger="platform_assets.quality.alerts"):
        assert sink.send(alert_payload(ev(1, False, 0.0), UI)) == "log"
    assert "Slack alert (no SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN set)" in caplog.text
    assert '"blocks"' in caplog.text


def test_first_tick_only_reports_recent_evaluations(no_slack_settings, webhook):
    script = Scripted()
    defs = script.definitions()
    with dg.instance_for_test() as instance:
        defs.resolve_job_def("checks").execute_in_process(instance=instance, raise_on_error=False)
        keys = list(defs.resolve_asset_graph().asset_check_keys)
        sink = SlackAlerts(webhook_url=webhook.url)
        cursor, outcome = deliver_alerts(instance, keys, None, sink, now=time.time() + 7200)
        assert not outcome.alerts and not webhook.payloads  # two hours old: history
        cursor, outcome = deliver_alerts(instance, keys, cursor, sink)
        assert not outcome.alerts  # and it is not replayed later either
        script.next = finding(passed=False, kind="other")
        defs.resolve_job_def("checks").execute_in_process(instance=instance, raise_on_error=False)
        cursor, outcome = deliver_alerts(instance, keys, cursor, sink)
        assert len(outcome.alerts) == 1
