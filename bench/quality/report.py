"""The evaluation's figures: recall per fault class, false incidents per 30 clean days per
asset group, and what the declared promotion days and month-ends did.

A false incident is an incident that opens on a day without a fault, counted the way the
Slack sensor posts (a failure that lasts stays one incident). The same-run baseline
("before") counts only the checks the agent had before monitors were derived and sources
compared (its hand-configured rules and the dbt tests).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from bench.quality.judge import DayOutcome, is_new_check
from devtools.faults import CLASSES, FAULT_TYPES, Fault

GROUPS = ("raw", "staging", "mart")
RECALL_TARGET = 0.95
FALSE_INCIDENTS_TARGET = 1.0  # per 30 clean days per asset group


@dataclass
class SeedRun:
    seed: int
    faults: list[Fault]
    promotions: set[date]
    month_ends: set[date]
    days: dict[date, DayOutcome] = field(default_factory=dict)

    @property
    def fault_days(self) -> dict[date, Fault]:
        return {f.day: f for f in self.faults}

    def clean_days(self) -> list[DayOutcome]:
        return [o for d, o in sorted(self.days.items()) if d not in self.fault_days]


def group_of(asset: str) -> str:
    return asset.split("/", 1)[0]


@dataclass
class Verdict:
    recall_ok: bool
    false_ok: bool
    promotions_ok: bool

    @property
    def ok(self) -> bool:
        return self.recall_ok and self.false_ok and self.promotions_ok


def _recall(runs: list[SeedRun], say: Callable[[str], None]) -> bool:
    say(
        "\nRecall per fault class (a fault counts as detected when a check expected to catch "
        "it failed on its day)"
    )
    say(f"{'class':21} {'family':15} {'inj':>3} {'det':>3} {'recall':>6} {'before':>6}  caught by")
    ok = True
    for kind in FAULT_TYPES:
        injected = [(r, f) for r in runs for f in r.faults if f.type == kind]
        if not injected:
            continue
        caught, before, checks = 0, 0, set()
        for run, fault in injected:
            hit = set(fault.detected_by) & run.days[fault.day].failing
            caught += bool(hit)
            before += any(not is_new_check(c) for c in hit)
            checks |= hit
        recall = caught / len(injected)
        ok &= recall >= RECALL_TARGET
        shown = ", ".join(sorted(checks)) or "-"
        say(
            f"{kind:21} {CLASSES[kind].family:15} {len(injected):3} {caught:3} {recall:6.0%} "
            f"{before / len(injected):6.0%}  {shown}"
        )
    say(
        "magnitudes drawn per injection: "
        + "; ".join(f"{k}: {CLASSES[k].ranges}" for k in FAULT_TYPES if CLASSES[k].ranges != "-")
    )
    missed = [
        f"seed {r.seed} {f.day} {f.describe()}"
        for r in runs
        for f in r.faults
        if not set(f.detected_by) & r.days[f.day].failing
    ]
    if missed:
        say("missed: " + "; ".join(missed))
    return ok


def _false_incidents(runs: list[SeedRun], say: Callable[[str], None]) -> bool:
    clean = [(r.seed, o) for r in runs for o in r.clean_days()]
    counts: dict[str, int] = defaultdict(int)
    before: dict[str, int] = defaultdict(int)
    listed = []
    for seed, outcome in clean:
        for incident in outcome.opened:
            counts[group_of(incident.origin)] += 1
            checks = ", ".join(f.check_key for f in incident.failures[:4])
            listed.append(f"seed {seed} {outcome.day} at {incident.origin}: {checks}")
        for incident in outcome.opened_before:
            before[group_of(incident.origin)] += 1
    days = len(clean)
    weekends = sum(o.day.weekday() >= 5 for _, o in clean)
    month_ends = sum(o.day in r.month_ends for r in runs for o in r.clean_days())
    promotions = sum(o.day in r.promotions for r in runs for o in r.clean_days())
    say(
        f"\nFalse incidents: incidents that opened on a clean day ({days} days without a fault "
        f"over {len(runs)} seeds: {weekends} weekend days, {month_ends} month-end or payday "
        f"days, {promotions} declared promotions; one incident = one root cause = one Slack "
        "message)"
    )
    say(f"{'asset group':12} {'incidents':>9} {'per 30 days':>11} {'before':>6}")
    ok = True
    for group in GROUPS:
        rate = counts[group] * 30 / days if days else 0.0
        ok &= rate <= FALSE_INCIDENTS_TARGET
        say(f"{group:12} {counts[group]:9} {rate:11.2f} {before[group]:6}")
    for line in listed:
        say(f"  {line}")
    return ok


def _calendar_days(runs: list[SeedRun], say: Callable[[str], None]) -> bool:
    ok = True
    for run in runs:
        for day in sorted(run.promotions):
            incidents = run.days[day].opened if day in run.days else []
            ok &= not incidents
            origins = ", ".join(i.origin for i in incidents) or "none"
            say(f"seed {run.seed}: declared promotion {day} (x3 traffic): incidents: {origins}")
        ends = [d for d in sorted(run.month_ends) if d in run.days and d not in run.fault_days]
        noisy = [f"{d} at {i.origin}" for d in ends for i in run.days[d].opened]
        say(
            f"seed {run.seed}: month-end/payday days {', '.join(map(str, ends)) or '-'}: "
            f"incidents: {', '.join(noisy) or 'none'}"
        )
    return ok


def report(runs: list[SeedRun], say: Callable[[str], None]) -> Verdict:
    recall_ok = _recall(runs, say)
    false_ok = _false_incidents(runs, say)
    say("")
    promotions_ok = _calendar_days(runs, say)
    return Verdict(recall_ok, false_ok, promotions_ok)
