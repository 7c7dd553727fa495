"""Slack alerts: one message per incident (failing checks grouped by root cause over the asset
graph), one recovery, suppression and reminders, delivery, escaping."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import dagster as dg
import pytest

from devtools.slack_webhook import LocalWebhook
from platform_assets.quality.alerts import (
    AlertState,
    Topology,
    build_alert_sensor,
    deliver_alerts,
    process_evaluations,
)
from platform_assets.quality.checks import to_check_result
from platform_assets.quality.evaluations import Evaluation
from platform_assets.quality.incidents import Lineage
from platform_assets.quality.results import CheckResult
from platform_assets.quality.slack import SlackAlerts, incident_payload
from platform_core.settings import get_settings

KEY = dg.AssetKey(["staging", "stg_order_items"])
UI = "http://dagster.test:3000"
RELATIONSHIPS = "relationships_stg_order_items_product_id__product_id__ref_stg_products_"

# a hand-drawn piece of the platform's lineage
LINEAGE = Lineage(
    {
        "staging/stg_order_items": ["raw/cdc_order_items"],
        "staging/stg_orders": ["raw/cdc_orders"],
        "mart/fct_orders": ["staging/stg_orders", "staging/stg_order_items"],
        "mart/mart_daily_sales": ["mart/fct_orders"],
        "staging/stg_events": ["raw/events"],
        "staging/int_sessions": ["staging/stg_events"],
    }
)
READS = {
    "mart/mart_daily_sales:consistency_order_amounts_events_vs_database": ("staging/stg_events",)
}
TOPOLOGY = Topology(LINEAGE, READS)


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


def finding(*, passed: bool, severity: str = "error") -> CheckResult:
    return CheckResult(
        asset="staging/stg_order_items",
        check_name="column_values",
        rule="column_values",
        passed=passed,
        severity=severity,
        metric="max(unit_price)",
        value=1.0 if passed else 12_999.0,
        expected_low=0.0,
        expected_high=260.0,
        description="max(unit_price) 12,999 (expected 0 .. 260).",
        kind="" if passed else "values:max(unit_price)",
        status="pass" if passed else ("fail" if severity == "error" else "warn"),
        sample=[] if passed else [{"column": "unit_price", "metric": "max", "value": 12999.0}],
        as_of=datetime(2026, 11, 21),
        narrative=None
        if passed
        else {
            "summary": "Unit prices look like cents.",
            "likely_causes": [{"cause": "A release writes cents.", "reasoning": ""}],
            "evidence": ["max 12,999"],
            "recommended_actions": ["Check the checkout release."],
        },
        narrator="deterministic narrator (no LLM)",
    )


class Scripted:
    """A check whose next result the test decides."""

    def __init__(self) -> None:
        self.next = finding(passed=False)

    def definitions(self) -> dg.Definitions:
        script = self

        @dg.asset_check(asset=KEY, name="column_values")
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


def test_a_failing_check_is_one_incident_message_then_silence_then_one_recovery(
    no_slack_settings, webhook
):
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
            cursor = sensor.evaluate_tick(context).cursor

        check_then_tick(finding(passed=False))
        assert len(webhook.payloads) == 1
        alert = webhook.payloads[0]
        assert alert["text"] == (
            "[CRITICAL] data-quality incident at staging/stg_order_items: "
            "1 failing check(s) on 1 asset(s)"
        )
        text = str(alert["blocks"])
        assert "max(unit_price) = 1.3e+04 (expected 0 .. 260)" in text
        assert "Unit prices look like cents." in text  # the check's own narrative
        assert "most likely starts at staging/stg_order_items" in text
        assert "deterministic narrator (no LLM)" in text
        button = alert["blocks"][-1]["elements"][0]
        assert button["url"] == f"{UI}/assets/staging/stg_order_items?view=checks"

        check_then_tick(finding(passed=False))  # still failing 30 minutes later: silent
        check_then_tick(finding(passed=False, severity="warn"))  # milder: still the incident
        assert len(webhook.payloads) == 1

        check_then_tick(finding(passed=True))  # recovered: one message
        assert len(webhook.payloads) == 2
        assert webhook.payloads[1]["text"].startswith(
            "[RECOVERED] data-quality incident at staging/stg_order_items: all 1 checks pass"
        )
        check_then_tick(finding(passed=True))  # still fine: nothing
        check_then_tick(finding(passed=False))  # broken again after a recovery: a new incident
        assert len(webhook.payloads) == 3 and webhook.payloads[2]["text"].startswith("[CRITICAL]")


def ev(
    record_id: int,
    asset: str,
    check: str,
    passed: bool = False,
    at: float = 1_800_000_000.0,
    severity: str = "WARN",
    dbt: bool = False,
) -> Evaluation:
    metadata = (
        {"dagster_dbt/failed_row_count": 12}
        if dbt
        else {
            "rule": "column_values",
            "kind": "values:sum(x)",
            "expected_range": "1 .. 2",
            "metric": "sum(x)",
            "value": 9.0,
            "description": f"{check} of {asset} moved.",
        }
    )
    return Evaluation(
        record_id=record_id,
        asset=asset,
        asset_path=asset.split("/"),
        check=check,
        passed=passed,
        severity=severity,
        description="",
        metadata=metadata,
        run_id="abcdef1234",
        timestamp=at,
    )


def texts(outcome) -> list[str]:
    return [p["text"] for p in outcome.alerts + outcome.recoveries]


def test_one_root_cause_is_one_message_listing_every_failing_check(no_slack_settings, webhook):
    sink = SlackAlerts(webhook_url=webhook.url, dagster_ui_url=UI)
    state = AlertState(started=True)
    t0 = 1_800_000_000.0
    first = process_evaluations(
        [
            # the dbt test and an agent rule on the same asset (and column) ...
            ev(1, "staging/stg_order_items", RELATIONSHIPS, severity="ERROR", dbt=True),
            ev(2, "staging/stg_order_items", "column_values"),
            # ... a mart downstream of it ...
            ev(3, "mart/mart_daily_sales", "column_values"),
            # ... and an unrelated problem in the events path
            ev(4, "staging/int_sessions", "column_mix"),
        ],
        state,
        sink,
        t0,
        TOPOLOGY,
    )
    # the most upstream origin first (stg_order_items has 1 ancestor, int_sessions 2)
    assert texts(first) == [
        "[CRITICAL] data-quality incident at staging/stg_order_items: "
        "3 failing check(s) on 2 asset(s)",
        "[WARNING] data-quality incident at staging/int_sessions: 1 failing check(s) on 1 asset(s)",
    ]
    blocks = str(first.alerts[0]["blocks"])
    for check in (RELATIONSHIPS, "column_values"):
        assert check in blocks
    assert "mart/mart_daily_sales" in blocks and "dbt test: 12 failing row(s)" in blocks
    assert "most likely starts at staging/stg_order_items" in blocks
    assert "3 failing check(s) on 2 asset(s), most upstream at staging/stg_order_items" in blocks

    # the mart recovers first: the incident stays open, nothing is posted
    later = process_evaluations(
        [ev(5, "mart/mart_daily_sales", "column_values", passed=True)],
        state,
        sink,
        t0 + 60,
        TOPOLOGY,
    )
    assert texts(later) == [] and later.open_incidents == 2
    # the origin recovers: one recovery for all three checks
    done = process_evaluations(
        [
            ev(6, "staging/stg_order_items", RELATIONSHIPS, passed=True, dbt=True),
            ev(7, "staging/stg_order_items", "column_values", passed=True),
        ],
        state,
        sink,
        t0 + 5400,
        TOPOLOGY,
    )
    assert texts(done) == [
        "[RECOVERED] data-quality incident at staging/stg_order_items: all 3 checks pass again "
        "after 1.5 h"
    ]
    assert done.open_incidents == 1 and len(webhook.payloads) == 3


def test_a_cross_source_check_joins_the_incident_of_the_source_it_reads(no_slack_settings):
    sent = []
    sink = type("Sink", (), {"suppression_minutes": 60, "ui_url": lambda s: UI})()
    sink.send = sent.append
    outcome = process_evaluations(
        [
            ev(1, "mart/mart_daily_sales", "consistency_order_amounts_events_vs_database"),
            ev(2, "staging/stg_events", "column_values"),
        ],
        AlertState(started=True),
        sink,
        0.0,
        TOPOLOGY,
    )
    assert texts(outcome) == [
        "[WARNING] data-quality incident at staging/stg_events: 2 failing check(s) on 2 asset(s)"
    ]


def test_a_failure_downstream_of_two_failing_assets_ties_them_together(no_slack_settings):
    sent = []
    sink = type("Sink", (), {"suppression_minutes": 60, "ui_url": lambda s: UI})()
    sink.send = sent.append
    process_evaluations(
        [
            ev(1, "staging/stg_orders", "column_values"),
            ev(2, "staging/stg_order_items", "column_values"),
            ev(3, "mart/fct_orders", "column_values"),
        ],
        AlertState(started=True),
        sink,
        0.0,
        TOPOLOGY,
    )
    assert len(sent) == 1
    fields = str(sent[0]["blocks"][1])
    assert "staging/stg_order_items" in fields and "mart/fct_orders" in fields


def test_a_raw_table_whose_three_readers_fail_is_one_message_naming_it(no_slack_settings):
    """A raw CDC fault read by three models directly (raw/cdc_orders' readers), none of
    raw's own checks failing: one incident at the raw table, one recovery."""
    readers = ("staging/stg_orders", "staging/stg_order_status_history", "staging/int_orders")
    topology = Topology(Lineage({r: ["raw/cdc_orders"] for r in readers}), {})
    sent = []
    sink = type("Sink", (), {"suppression_minutes": 60, "ui_url": lambda s: UI})()
    sink.send = sent.append
    state = AlertState(started=True)
    failing = [ev(n, r, "source_constraints", severity="ERROR") for n, r in enumerate(readers)]
    outcome = process_evaluations(failing, state, sink, 0.0, topology)
    assert texts(outcome) == [
        "[CRITICAL] data-quality incident at raw/cdc_orders: 3 failing check(s) on 3 asset(s)"
    ]
    blocks = str(sent[0]["blocks"])
    assert "*Likely origin*" in blocks and all(r in blocks for r in readers)
    assert "most likely starts at raw/cdc_orders, which the 3 failing asset(s) read" in blocks
    passing = [
        ev(10 + n, r, "source_constraints", passed=True, severity="ERROR")
        for n, r in enumerate(readers)
    ]
    done = process_evaluations(passing, state, sink, 60.0, topology)
    assert [t.split(":")[0] for t in texts(done)] == [
        "[RECOVERED] data-quality incident at raw/cdc_orders"
    ]


def test_reminder_after_the_window_and_escalation(no_slack_settings, webhook):
    sink = SlackAlerts(webhook_url=webhook.url, suppression_minutes=60)
    state = AlertState(started=True)
    t0 = 1_800_000_000.0
    key = ("staging/stg_orders", "column_values")
    assert len(process_evaluations([ev(1, *key)], state, sink, t0, TOPOLOGY).alerts) == 1
    assert not process_evaluations([ev(2, *key)], state, sink, t0 + 1800, TOPOLOGY).alerts
    worse = process_evaluations([ev(3, *key, severity="ERROR")], state, sink, t0 + 1900, TOPOLOGY)
    assert texts(worse) == [
        "[CRITICAL] now critical: data-quality incident at staging/stg_orders: "
        "1 failing check(s) on 1 asset(s)"
    ]
    reminder = process_evaluations(
        [ev(4, *key, severity="ERROR")], state, sink, t0 + 5600, TOPOLOGY
    )
    assert texts(reminder)[0].startswith("[CRITICAL] still open: data-quality incident")
    restored = AlertState.load(state.dump())
    assert restored.failing == state.failing and restored.dump() == state.dump()


def test_undelivered_alert_is_retried_on_the_next_tick(no_slack_settings):
    state = AlertState(started=True)
    key = ("staging/stg_orders", "column_values")
    with LocalWebhook(status=500) as failing:
        outcome = process_evaluations(
            [ev(1, *key)], state, SlackAlerts(webhook_url=failing.url), 0.0, TOPOLOGY
        )
        assert outcome.errors and not outcome.alerts
    with LocalWebhook() as working:
        outcome = process_evaluations(
            [], state, SlackAlerts(webhook_url=working.url), 60.0, TOPOLOGY
        )
        assert len(outcome.alerts) == 1 and len(working.payloads) == 1


def _alert_on_metric(metric: str):
    """A failing check whose metric text is `metric`: the message sent and the incident."""
    state = AlertState(started=True)
    evaluation = ev(1, "staging/stg_orders", "column_values")
    evaluation.metadata["metric"] = metric
    sent = []
    sink = type("Sink", (), {"suppression_minutes": 60, "ui_url": lambda s: UI})()
    sink.send = sent.append
    process_evaluations([evaluation], state, sink, 0.0, TOPOLOGY)
    return sent, next(iter(state.incidents.open.values()))


def test_data_values_cannot_inject_slack_markup():
    sent, incident = _alert_on_metric("<!channel> look <http://evil.example|here> & now")
    stored = {
        "summary": "<@U123> ping",
        "likely_causes": [{"cause": "<!here>", "reasoning": ""}],
        "evidence": [],
        "recommended_actions": [],
    }
    for text in (
        str(sent[0]["blocks"]),
        str(incident_payload(incident, UI, stored, "x")["blocks"]),
    ):
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text
        assert "<http://evil" not in text and "&amp; now" in text
    assert "<@U123>" not in str(incident_payload(incident, UI, stored, "x"))


def _text_objects(node):
    """Every Block Kit text object of a payload."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text"):
            yield node
        for value in node.values():
            yield from _text_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _text_objects(value)


def test_slack_shows_data_as_written_no_auto_links_mentions_or_emphasis():
    """Bare URLs, @here and #channels are linked by Slack unless a text object is verbatim;
    a backtick in a name would close its code span and let `*` emphasis through."""
    sent, incident = _alert_on_metric("visit www.evil.example or https://evil.example/x @here")
    stored = {
        "summary": "see #general and @channel",
        "likely_causes": [{"cause": "x` *bold* `y", "reasoning": ""}],
        "evidence": [],
        "recommended_actions": ["open https://evil.example"],
    }
    for payload in (sent[0], incident_payload(incident, UI, stored, "x")):
        mrkdwn = [t for t in _text_objects(payload["blocks"]) if t["type"] == "mrkdwn"]
        assert mrkdwn and all(t.get("verbatim") is True for t in mrkdwn)
    listed = str(sent[0]["blocks"])
    assert "`staging/stg_orders` · `column_values`" in listed  # names in code spans


def test_bot_token_posts_through_the_web_api(no_slack_settings, webhook):
    no_slack_settings.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    no_slack_settings.setenv("SLACK_CHANNEL", "#dq-test")
    get_settings.cache_clear()
    sink = SlackAlerts.from_settings(get_settings(), slack_api_url=webhook.url)
    assert sink.destination() == "slack-api"
    assert sink.bot_token == "SLACK_BOT_TOKEN", "config names the secret, never holds it"
    outcome = process_evaluations(
        [ev(1, "staging/stg_orders", "column_values")],
        AlertState(started=True),
        sink,
        0.0,
        TOPOLOGY,
    )
    assert len(outcome.alerts) == 1
    assert webhook.paths == ["/chat.postMessage"]
    assert webhook.payloads[0]["channel"] == "#dq-test" and webhook.payloads[0]["blocks"]


def test_without_webhook_or_token_the_payload_goes_to_the_log(no_slack_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="platform_assets.quality.slack"):
        process_evaluations(
            [ev(1, "staging/stg_orders", "column_values")],
            AlertState(started=True),
            SlackAlerts(),
            0.0,
            TOPOLOGY,
        )
    assert "Slack alert (no SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN set)" in caplog.text
    assert '"blocks"' in caplog.text


def test_first_tick_only_reports_recent_evaluations(no_slack_settings, webhook):
    script = Scripted()
    defs = script.definitions()
    with dg.instance_for_test() as instance:
        defs.resolve_job_def("checks").execute_in_process(instance=instance, raise_on_error=False)
        graph = defs.resolve_asset_graph()
        sink = SlackAlerts(webhook_url=webhook.url)
        cursor, outcome = deliver_alerts(instance, graph, None, sink, now=time.time() + 7200)
        assert not outcome.alerts and not webhook.payloads  # two hours old: history
        cursor, outcome = deliver_alerts(instance, graph, cursor, sink)
        assert not outcome.alerts  # and it is not replayed later either
        defs.resolve_job_def("checks").execute_in_process(instance=instance, raise_on_error=False)
        cursor, outcome = deliver_alerts(instance, graph, cursor, sink)
        assert len(outcome.alerts) == 1
