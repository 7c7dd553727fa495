"""Slack alerts for data-quality incidents: a cursor-based sensor over check evaluations.

Each tick reads the new evaluations of every check in the code location (the agent's and
the dbt tests; `evaluations.py`), keeps which checks fail now, groups them by root cause
over the asset graph (`incidents.py`) and posts (`slack.py`):

- one message when an incident opens, listing every failing check and affected asset,
  its likely origin (the most upstream failing asset) and the narrative;
- one more when it becomes critical, and a reminder per suppression window
  (`suppression_minutes`, default 24 h) while it stays open, never one per check or per
  30-minute evaluation;
- one recovery message when every check of the incident passes again.

A failed delivery is logged and retried on the next tick (the incident is only marked
posted once delivered). The sensor never calls an LLM: narratives come from the checks
(written when they failed, by the model or the deterministic narrator) and the incident
summary is deterministic, so a slow or down model cannot delay or drop an alert.

No `from __future__ import annotations` here: Dagster inspects the context annotations.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from platform_assets.genai.llm import DETERMINISTIC_LABEL
from platform_assets.genai.quality_explanations import incident_narrative
from platform_assets.quality.evaluations import Evaluation, evaluation_from_record, new_evaluations
from platform_assets.quality.incidents import (
    Action,
    Failure,
    IncidentBook,
    Lineage,
    group_failures,
)
from platform_assets.quality.slack import SlackAlerts, incident_payload, recovery_payload

log = logging.getLogger(__name__)

SENSOR_NAME = "data_quality_slack_alerts"
UPDATES = {"escalate": "now critical", "remind": "still open"}

# the narrative a check stored when it failed ({summary, likely_causes, ...}, narrator)
StoredNarrative = Callable[[Failure], tuple[dict[str, Any], str] | None]


@dataclass
class AlertState:
    seen: dict[str, int] = field(default_factory=dict)  # check key -> last record id
    failing: dict[str, dict[str, Any]] = field(default_factory=dict)  # check key -> Failure
    incidents: IncidentBook = field(default_factory=IncidentBook)
    started: bool = False

    @classmethod
    def load(cls, cursor: str | None) -> "AlertState":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(
            seen=data.get("seen", {}),
            failing=data.get("failing", {}),
            incidents=IncidentBook.from_list(data.get("incidents", [])),
            started=True,
        )

    def dump(self) -> str:
        return json.dumps(
            {"seen": self.seen, "failing": self.failing, "incidents": self.incidents.to_list()},
            sort_keys=True,
        )


@dataclass
class Outcome:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    open_incidents: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.alerts)} incident message(s), {len(self.recoveries)} recovery(ies), "
            f"{self.open_incidents} open, {len(self.errors)} delivery error(s)"
        )


@dataclass(frozen=True)
class Topology:
    """What the grouping needs from the code location: each asset's parents and the other
    assets each check reads (its additional dependencies)."""

    lineage: Lineage
    reads: dict[str, tuple[str, ...]]  # check key -> assets

    @classmethod
    def from_graph(cls, graph: Any) -> "Topology":
        parents = {
            key.to_user_string(): [p.to_user_string() for p in graph.get(key).parent_keys]
            for key in graph.get_all_asset_keys()
        }
        reads = {}
        for check_key in graph.asset_check_keys:
            spec = graph.get_check_spec(check_key)
            deps = tuple(d.asset_key.to_user_string() for d in spec.additional_deps or ())
            if deps:
                reads[check_key.to_user_string()] = deps
        return cls(Lineage(parents), reads)


def apply_evaluations(evaluations: list[Evaluation], state: AlertState, topology: Topology) -> None:
    """What fails now: the latest evaluation of each check wins."""
    for ev in evaluations:
        state.seen[ev.check_key] = max(state.seen.get(ev.check_key, 0), ev.record_id)
        if ev.passed:
            state.failing.pop(ev.check_key, None)
        else:
            previous = state.failing.get(ev.check_key)
            failure = ev.to_failure(topology.reads.get(ev.check_key, ()))
            if previous:  # still the same failure episode: it started back then
                failure = Failure.from_dict({**failure.to_dict(), "since": previous["since"]})
            state.failing[ev.check_key] = failure.to_dict()


def _payload(
    action: Action, sink: SlackAlerts, now: float, stored: StoredNarrative | None
) -> dict[str, Any]:
    incident = action.incident
    if action.kind == "recover":
        return recovery_payload(incident, sink.ui_url(), now)
    origin_failure = incident.failures[0]
    found = stored(origin_failure) if stored else None
    narrative = incident_narrative(
        origin_failure.to_dict(),
        [f.to_dict() for f in incident.failures],
        list(incident.origins),
        found[0] if found else None,
    )
    narrator = found[1] if found else DETERMINISTIC_LABEL
    return incident_payload(
        incident,
        sink.ui_url(),
        narrative.model_dump(),
        narrator,
        update=UPDATES.get(action.kind, ""),
    )


def process_evaluations(
    evaluations: list[Evaluation],
    state: AlertState,
    sink: SlackAlerts,
    now: float,
    topology: Topology,
    *,
    stored: StoredNarrative | None = None,
    logger: Any = log,
) -> Outcome:
    outcome = Outcome()
    apply_evaluations(evaluations, state, topology)
    failures = [Failure.from_dict(f) for f in state.failing.values()]
    groups = group_failures(failures, topology.lineage)
    for action in state.incidents.reconcile(groups, now, sink.suppression_minutes * 60):
        payload = _payload(action, sink, now, stored)
        try:
            sink.send(payload)
        except Exception as error:  # retried on the next tick: not marked as posted
            outcome.errors.append(f"{action.incident.origin}: {error}")
            logger.error(
                f"{action.kind} message for {action.incident.origin} not delivered: {error}"
            )
            continue
        state.incidents.delivered(action, now)
        (outcome.recoveries if action.kind == "recover" else outcome.alerts).append(payload)
    outcome.open_incidents = len(state.incidents.open)
    return outcome


def stored_narratives(instance: dg.DagsterInstance) -> StoredNarrative:
    """The narrative the origin check stored with its latest failed evaluation, if any."""

    def lookup(failure: Failure) -> tuple[dict[str, Any], str] | None:
        key = dg.AssetCheckKey(dg.AssetKey(failure.asset.split("/")), failure.check)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
        evaluation = evaluation_from_record(record) if record is not None else None
        if evaluation is None or not isinstance(evaluation.metadata.get("narrative_json"), dict):
            return None
        return evaluation.metadata["narrative_json"], str(evaluation.metadata.get("narrator", ""))

    return lookup


def deliver_alerts(
    instance: dg.DagsterInstance,
    graph: Any,
    cursor: str | None,
    sink: SlackAlerts,
    *,
    now: float | None = None,
    logger: Any = log,
) -> tuple[str, Outcome]:
    """One sensor tick, callable outside the daemon (the demo and tests use it)."""
    now = time.time() if now is None else now
    state = AlertState.load(cursor)
    keys = sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
    evaluations = new_evaluations(instance, keys, state.seen, state.started, now)
    state.started = True
    outcome = process_evaluations(
        evaluations,
        state,
        sink,
        now,
        Topology.from_graph(graph),
        stored=stored_narratives(instance),
        logger=logger,
    )
    return state.dump(), outcome


def build_alert_sensor(minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts data-quality incidents to Slack: failed checks (the agent's and "
        "dbt tests) grouped by root cause over the asset graph, one message per incident "
        "and one when it recovers.",
    )
    def data_quality_slack_alerts(context: dg.SensorEvaluationContext, slack_alerts: SlackAlerts):
        cursor, outcome = deliver_alerts(
            context.instance,
            context.repository_def.asset_graph,
            context.cursor,
            slack_alerts,
            logger=context.log,
        )
        context.update_cursor(cursor)
        return dg.SkipReason(f"{outcome.summary()} via {slack_alerts.destination()}")

    return data_quality_slack_alerts
