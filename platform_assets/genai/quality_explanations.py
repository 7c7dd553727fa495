"""The deterministic side of the quality narrator: what a kind of failure usually means.

- `Narrative`: the structured explanation (summary, ranked likely causes, evidence,
  recommended actions) that both narrators return; it has no verdict or severity field,
  those stay the rule's.
- `deterministic_narrative(finding, context)`: causes and actions per rule and failure
  kind, with the likely origin first when an asset upstream fails too (lineage context).
- `incident_narrative(...)`: an incident's narrative for Slack, naming its most upstream
  failing asset (or the source its failing readers share) as the likely cause.

Used when no LLM is configured (locally), as the fallback when the model is slow, down,
malformed or contradicts the verdict, and for dbt tests' failures.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MAX_TEXT = 600
MAX_ITEMS = 5


class LikelyCause(BaseModel):
    cause: str = Field(description="A plausible cause of the finding, one sentence.")
    reasoning: str = Field(default="", description="Which evidence points to it.")


class Narrative(BaseModel):
    """An on-call explanation of a data-quality finding (the verdict is given, not judged)."""

    summary: str = Field(description="Two or three sentences: what is wrong and its impact.")
    likely_causes: list[LikelyCause] = Field(
        description="Plausible causes, most likely first (at most five)."
    )
    evidence: list[str] = Field(
        description="Facts from the finding and context that support the causes."
    )
    recommended_actions: list[str] = Field(
        description="Concrete next steps for the on-call engineer, most useful first."
    )

    def clipped(self) -> Narrative:
        def clip(text: str) -> str:
            text = " ".join(str(text).split())
            return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."

        return Narrative(
            summary=clip(self.summary),
            likely_causes=[
                LikelyCause(cause=clip(c.cause), reasoning=clip(c.reasoning))
                for c in self.likely_causes[:MAX_ITEMS]
            ],
            evidence=[clip(e) for e in self.evidence[:MAX_ITEMS]],
            recommended_actions=[clip(a) for a in self.recommended_actions[:MAX_ITEMS]],
        )


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _finding(failure: dict[str, Any]) -> dict[str, Any]:
    """An incident's failure (check, ERROR/WARN, summary) in the shape of a rule's finding
    (check_name, error/warn, description), which the deterministic narrator reads."""
    severity = str(failure.get("severity"))
    return {
        **failure,
        "check_name": failure.get("check_name") or failure.get("check"),
        "severity": {"ERROR": "error", "WARN": "warn"}.get(severity, severity),
        "description": failure.get("description") or failure.get("summary", ""),
    }


def incident_narrative(
    origin: dict[str, Any],
    failures: list[dict[str, Any]],
    origins: list[str],
    stored: dict[str, Any] | None = None,
) -> Narrative:
    """An incident's narrative: the origin check's own narrative (the model's, when it wrote
    one) led by what the grouping knows: the most upstream failing asset is the likely
    cause, and the failures downstream of it are its effects."""
    base = Narrative.model_validate(stored) if stored else deterministic_narrative(_finding(origin))
    assets = list(dict.fromkeys(str(f.get("asset")) for f in failures))
    downstream = [a for a in assets if a not in origins]
    on_origin = [str(f.get("check")) for f in failures if f.get("asset") == origins[0]]
    if on_origin:
        lead = LikelyCause(
            cause=f"The problem most likely starts at {origins[0]}, the most upstream asset "
            f"with failing checks ({', '.join(on_origin[:3])}).",
            reasoning=(
                f"{len(downstream)} downstream asset(s) fail with it ({', '.join(downstream[:4])})"
                if downstream
                else "No asset upstream of it fails."
            ),
        )
    else:  # grouped at a source its failing readers share (incidents.py)
        lead = LikelyCause(
            cause=f"The problem most likely starts at {origins[0]}, which the "
            f"{len(downstream)} failing asset(s) read directly ({', '.join(downstream[:4])}).",
            reasoning="Its own checks pass, and nothing else upstream of its readers fails: "
            "what broke is most likely in the values it carries, which only its readers "
            "parse and check.",
        )
    others = [c for c in base.likely_causes if not c.cause.startswith("The problem most likely")]
    severity = "Critical" if any(f.get("severity") == "ERROR" for f in failures) else "Warning"
    summary = (
        f"{severity} incident: {len(failures)} failing check(s) on {len(assets)} asset(s), "
        f"most upstream at {origins[0]}. {base.summary}"
    )
    evidence = [f"{f.get('check_key')}: {f.get('summary')}" for f in failures[:MAX_ITEMS]]
    actions = [f"Start at {origins[0]}: its downstream checks should recover with it."]
    return Narrative(
        summary=summary,
        likely_causes=[lead, *others],
        evidence=evidence,
        recommended_actions=actions + base.recommended_actions,
    ).clipped()


def _neighbour_problems(context: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """Failing checks of upstream and downstream neighbours, as text."""
    upstream, downstream = [], []
    for side, out in (("upstream", upstream), ("downstream", downstream)):
        for neighbour in (context or {}).get(side, []):
            for check in neighbour.get("checks", []):
                if check.get("status") == "failed":
                    out.append(f"{neighbour.get('asset')}:{check.get('check')}")
    return upstream, downstream


CAUSES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("freshness", "late"): [
        (
            "Ingestion stopped or is backlogged upstream (collector, Pub/Sub subscription, "
            "Beam job or CDC bridge).",
            "The newest data is older than the SLA allows.",
        ),
        (
            "One source stopped sending (an SDK, app release or write key).",
            "Compare the newest timestamp per source in the sample.",
        ),
        (
            "The transform did not run since raw changed (dbt or the automation sensor).",
            "Relevant when the lag is measured against an upstream asset.",
        ),
    ],
    ("freshness", "empty"): [
        (
            "Nothing has landed yet, or the table's files/partitions are missing.",
            "The table has no rows up to the evaluation time.",
        ),
    ],
    ("volume", "drop"): [
        (
            "A source or client stopped sending part of the traffic.",
            "See which group lost rows in the sample.",
        ),
        (
            "Data for the day is still arriving late (pipeline delay).",
            "Check the freshness of the same asset and of raw.",
        ),
        ("A transform or filter change drops rows.", "Compare with the upstream asset's volume."),
    ],
    ("volume", "spike"): [
        (
            "Bot or campaign traffic, or a real business event.",
            "See which group gained rows in the sample.",
        ),
        (
            "Data delivered twice (replay, redelivery) or a backfill landed on that day.",
            "Check the duplicate checks of raw and staging.",
        ),
    ],
    ("null_rate", ""): [
        (
            "A client, SDK or producer release stopped sending these fields.",
            "The null rate jumped above its usual level on one day.",
        ),
        (
            "A parsing or mapping change in the pipeline or the staging model.",
            "Check schema changes upstream.",
        ),
    ],
    ("duplicates", "duplicates"): [
        (
            "Deduplication in the model is broken or the key is no longer unique upstream.",
            "Keys in the sample appear more than once.",
        ),
        (
            "The same change was captured under two encodings of the key (e.g. CDC pk format).",
            "Inspect the raw rows of a sample key.",
        ),
    ],
    ("duplicates", "duplicate_burst"): [
        (
            "A redelivery storm: Pub/Sub ack deadlines missed or the CDC bridge replayed after a "
            "restart.",
            "The share of repeated keys is far above its baseline.",
        ),
        (
            "Clients retrying aggressively (a network or collector error wave).",
            "Look at the collector's error rate at that time.",
        ),
    ],
    ("schema", ""): [
        (
            "The producer changed its schema (new writer, SDK or source-table migration).",
            "Columns changed since the schema last seen.",
        ),
    ],
    ("references", "orphans"): [
        (
            "The dimension arrives later than the facts (late CDC of the parent table).",
            "Orphan keys in the sample may appear in the parent later.",
        ),
        (
            "The parent rows were deleted (e.g. GDPR erasure) or ids are written wrongly.",
            "Check the sample keys in the parent's raw CDC.",
        ),
    ],
    ("column_values", ""): [
        (
            "A producer changed what a value means (a unit: cents instead of dollars; a "
            "price, tax or discount computed differently) in a release.",
            "The column's sum, mean or extremes left their usual range while row counts did not.",
        ),
        (
            "A checkout or pricing bug charges wrong amounts (zero, negative, multiplied).",
            "Look at the zero and negative rates and at the sample of metrics that moved.",
        ),
        (
            "A real business change (new product mix, price change) not declared in the "
            "business calendar.",
            "Check dbt_project/seeds/business_calendar.csv and recent catalogue changes.",
        ),
    ],
    ("column_mix", ""): [
        (
            "A tracking call stopped (or started) on one page, screen or client release.",
            "One value's share of the column moved while the others kept their proportions.",
        ),
        (
            "One source or pipeline of several stalled while the others flow.",
            "Compare the shares per source with the volume and freshness per source.",
        ),
        (
            "A mapping changed (user agents, status codes, currency): values moved to "
            "another label.",
            "Look for a value whose share rose as much as another's fell.",
        ),
    ],
    ("timestamp_bounds", ""): [
        (
            "A client or producer writes wrong times (clock reset, seconds vs milliseconds, "
            "local time as UTC).",
            "Values in the future or before 2000 appeared on the judged day.",
        ),
    ],
    ("source_constraints", ""): [
        (
            "Rows arrived that the source database would refuse: the capture, bridge or "
            "staging model maps a field wrongly (or a field was dropped).",
            "The source's own NOT NULL / CHECK / enum constraints are broken in staging.",
        ),
        (
            "The source's schema changed (a migration) and the constraint snapshot or the "
            "staging model was not updated.",
            "Refresh the snapshot: python -m platform_assets.quality constraints --refresh.",
        ),
    ],
    ("consistency", "diverge:below"): [
        (
            "One of the two sources lost data: events stopped being sent or collected, or the "
            "CDC stream stalled while the other flows.",
            "The ratio fell below what the two sources usually agree at.",
        ),
        (
            "The database records different amounts than the shop reported to the client "
            "(a checkout charging the wrong amount).",
            "Compare both sides per day in the recent values.",
        ),
    ],
    ("consistency", "diverge:above"): [
        (
            "One source reports more than the other: duplicated or replayed events, or "
            "values in another unit (cents).",
            "The ratio rose above what the two sources usually agree at.",
        ),
        (
            "The database side lost rows (a CDC stall, a filter) while events flow.",
            "Check the freshness and volume of the CDC tables.",
        ),
    ],
    ("consistency", "unmatched"): [
        (
            "Events refer to records the database does not have: a stale client catalogue, "
            "an id mapping bug, or late CDC of the parent table.",
            "The sample lists the unknown keys.",
        ),
    ],
    ("error", ""): [
        (
            "The warehouse could not be read (locked by a long dbt build, missing table, "
            "permissions).",
            "The rule raised an error instead of a measurement.",
        ),
    ],
}
ACTIONS: dict[str, list[str]] = {
    "freshness": [
        "Check the Beam job and the Pub/Sub subscription backlog (or the CDC bridge).",
        "Check the collector's logs, spool and dead letters for the stalled source.",
        "Once data flows again, confirm the next check passes (a recovery is posted).",
    ],
    "volume": [
        "Compare the day's rows per source/client with the previous days.",
        "Check freshness and duplicate checks of the same asset and its upstream.",
        "If a source broke, fix it and rebuild the affected day partitions.",
    ],
    "null_rate": [
        "Find which source/app version sends the nulls (sample keys in raw payload).",
        "Check recent releases of the SDKs and of the staging model.",
        "Backfill or exclude the affected rows if dashboards are impacted.",
    ],
    "duplicates": [
        "Inspect the sample keys in raw and in the model's deduplication.",
        "Rebuild the model after fixing; blocking checks hold downstream assets.",
        "Check the upstream delivery (Pub/Sub redeliveries, CDC replays).",
    ],
    "schema": [
        "Confirm the change with the producer and update the contract/staging model.",
        "Check that staging still selects and types every column it needs.",
    ],
    "references": [
        "Look up the sample keys in the parent table and its raw CDC.",
        "Check the parent's freshness: late dimensions resolve on their own.",
        "If ids are wrong upstream, fix the producer and correct the facts.",
    ],
    "column_values": [
        "Compare the sample metrics with the raw payloads of the day (units, signs).",
        "Check recent releases of the producer (checkout, app, backend) for value changes.",
        "If the change is planned business, declare it in the business calendar seed.",
    ],
    "column_mix": [
        "Find which value's share moved and which page, client or source produces it.",
        "Check volume and freshness per source for a partial stall.",
        "Fix the tracking or mapping and rebuild the affected days.",
    ],
    "timestamp_bounds": [
        "Find the producer of the out-of-range values (sample) and its clock or unit.",
        "Correct or quarantine the rows; they will keep failing until fixed.",
    ],
    "source_constraints": [
        "Look the sample keys up in the source database and in raw CDC.",
        "Fix the capture, bridge or staging mapping; rebuild the staging table.",
    ],
    "consistency": [
        "Compare both sides for the day (recent values) to see which one moved.",
        "Check freshness and volume of the events path and of the CDC path.",
        "Once the broken side is fixed, rebuild the day; the check recovers by itself.",
    ],
    "error": [
        "Rerun the check; check whether dbt holds the warehouse lock.",
        "Check that the table exists and the platform can read it.",
    ],
}


def deterministic_narrative(
    finding: dict[str, Any], context: dict[str, Any] | None = None
) -> Narrative:
    rule = str(finding.get("rule", ""))
    kind = str(finding.get("kind", ""))
    if finding.get("status") == "error":
        rule, kind = "error", ""
    causes = (
        CAUSES.get((rule, kind))
        or CAUSES.get((rule, ""))
        or [("The measured value left its expected range.", "See the finding.")]
    )
    ranked = [LikelyCause(cause=c, reasoning=r) for c, r in causes]
    upstream, downstream = _neighbour_problems(context)
    origin = (context or {}).get("likely_origin") or {}
    if origin.get("asset") and origin.get("asset") != finding.get("asset"):
        checks = ", ".join(str(c) for c in origin.get("checks", [])[:3])
        ranked.insert(
            0,
            LikelyCause(
                cause=f"The problem most likely starts upstream at {origin['asset']}, the "
                f"most upstream asset with failing checks ({checks}).",
                reasoning="Failures downstream of a failing asset are usually its effects.",
            ),
        )
    elif upstream:
        ranked.insert(
            0,
            LikelyCause(
                cause=f"An upstream problem propagated here: {', '.join(upstream[:3])} "
                "also failing.",
                reasoning="Lineage neighbours upstream have failing checks.",
            ),
        )
    evidence = [str(finding.get("description", ""))]
    value, metric = finding.get("value"), finding.get("metric")
    if value is not None:
        evidence.append(f"{metric} = {_num(value)}; expected {finding.get('expected', 'n/a')}.")
    sample = finding.get("sample") or []
    if sample:
        evidence.append(
            "Sample: "
            + "; ".join(", ".join(f"{k}={_num(v)}" for k, v in row.items()) for row in sample[:3])
        )
    if downstream:
        evidence.append(f"Downstream also failing: {', '.join(downstream[:3])}.")
    severity = {"error": "Critical", "warn": "Warning"}.get(str(finding.get("severity")), "Check")
    summary = (
        f"{severity}: {finding.get('asset')} failed {finding.get('check_name')}. "
        f"{finding.get('description', '')}"
    )
    if finding.get("blocking") and finding.get("severity") == "error":
        summary += " Downstream assets of the run were held back (blocking check)."
    return Narrative(
        summary=summary,
        likely_causes=ranked,
        evidence=evidence,
        recommended_actions=ACTIONS.get(rule, ["Inspect the sample rows."]),
    ).clipped()
