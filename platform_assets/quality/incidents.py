"""One incident per root cause: failing checks grouped over the asset graph.

A failure belongs to an asset (and, for cross-source checks, also reads others). Its
*origins* are the most upstream failing assets among the asset, what it reads, and their
ancestors: where the problem most likely started. Failures that share an origin are one
incident, so

- a dbt test and an agent rule failing on the same asset (and column) are one incident;
- failures on assets downstream of a failing asset join that asset's incident (a raw
  fault that propagates does not page once per downstream table);
- a failure downstream of two failing assets ties their incidents together;
- failing assets that read the same source directly (a raw table: an asset with no parents)
  while nothing upstream of them fails are one incident at that source, even when its own
  checks pass: raw keeps what arrived (CDC row images, event payloads as JSON), so a fault
  in the values it carries (a field the CDC bridge dropped) only shows in the models that
  parse them, and three staging models of one raw table failing together have one cause.

An incident's origin is its most upstream failing asset (fewest ancestors, then name), or
the source its failing readers share: the likely cause the message and the narrative name.
Its severity is the worst of its checks.

`IncidentBook` keeps the open incidents between sensor ticks and says what to post: a new
incident (one message), a worse one (its severity rose to critical), a reminder after the
suppression window, and one recovery when every check of it passes again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITY_RANK = {"WARN": 1, "ERROR": 2}


@dataclass(frozen=True)
class Failure:
    """A check whose latest evaluation failed."""

    check_key: str  # "asset:check"
    asset: str
    check: str
    severity: str  # ERROR or WARN
    summary: str  # metric against the expected range, or the finding
    reads: tuple[str, ...] = ()  # other assets the check reads (cross-source, references)
    blocking: bool = False
    since: float = 0.0
    run_id: str = ""
    rule: str = ""  # the agent's rule, or the rule that explains a dbt test
    kind: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the sensor's cursor)."""
        return {**asdict(self), "reads": list(self.reads)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        return cls(**{**data, "reads": tuple(data.get("reads") or ())})


@dataclass(frozen=True)
class Group:
    """Failures with a common origin, the most upstream first."""

    origins: tuple[str, ...]
    failures: tuple[Failure, ...]

    @property
    def checks(self) -> set[str]:
        return {f.check_key for f in self.failures}


class Lineage:
    """Ancestors of assets, from a map of each asset's parents."""

    def __init__(self, parents: Mapping[str, Iterable[str]]) -> None:
        self.parents = {k: tuple(v) for k, v in parents.items()}
        self._ancestors: dict[str, frozenset[str]] = {}

    def ancestors(self, asset: str) -> frozenset[str]:
        if asset not in self._ancestors:
            found: set[str] = set()
            stack = list(self.parents.get(asset, ()))
            while stack:
                parent = stack.pop()
                if parent not in found:
                    found.add(parent)
                    stack.extend(self.parents.get(parent, ()))
            self._ancestors[asset] = frozenset(found)
        return self._ancestors[asset]

    def depth(self, asset: str) -> int:
        return len(self.ancestors(asset))


def group_failures(failures: Sequence[Failure], lineage: Lineage) -> list[Group]:
    failing = {f.asset for f in failures}
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    origins_of: dict[str, set[str]] = {}
    for failure in failures:
        # what the failure depends on that fails too: its asset's ancestors, and what it
        # reads with their ancestors; the failure's own asset is the origin only when none
        upstream = set(lineage.ancestors(failure.asset) & failing)
        for asset in failure.reads:
            upstream |= ({asset} | lineage.ancestors(asset)) & failing
        upstream.discard(failure.asset)
        origins = {a for a in upstream if not (lineage.ancestors(a) & upstream)}
        origins_of[failure.check_key] = origins or {failure.asset}
    shared = _shared_sources({o for found in origins_of.values() for o in found}, lineage)
    for failure in failures:
        origins = {s for o in origins_of[failure.check_key] for s in shared.get(o, {o})}
        origins_of[failure.check_key] = origins
        for origin in origins:
            union(f"check:{failure.check_key}", f"asset:{origin}")
    groups: dict[str, list[Failure]] = {}
    for failure in failures:
        groups.setdefault(find(f"check:{failure.check_key}"), []).append(failure)
    out = []
    for members in groups.values():
        origins = {o for f in members for o in origins_of[f.check_key]}
        ordered = tuple(sorted(origins, key=lambda a: (lineage.depth(a), a)))
        out.append(Group(ordered, tuple(sorted(members, key=lambda f: _order(f, lineage)))))
    return sorted(out, key=lambda g: (lineage.depth(g.origins[0]), g.origins[0]))


def _shared_sources(roots: set[str], lineage: Lineage) -> dict[str, set[str]]:
    """For failing assets with nothing failing upstream (`roots`): the sources (assets
    without parents) that two or more of them read directly, per root reading one."""
    readers: dict[str, set[str]] = {}
    for root in roots:
        for parent in lineage.parents.get(root, ()):
            if not lineage.parents.get(parent):
                readers.setdefault(parent, set()).add(root)
    shared: dict[str, set[str]] = {}
    for source, reading in readers.items():
        if len(reading) >= 2:
            for root in reading:
                shared.setdefault(root, set()).add(source)
    return shared


def _order(failure: Failure, lineage: Lineage) -> tuple[int, int, str]:
    return (
        lineage.depth(failure.asset),
        -SEVERITY_RANK.get(failure.severity, 0),
        failure.check_key,
    )


@dataclass
class Incident:
    id: str
    origins: tuple[str, ...]
    failures: tuple[Failure, ...]  # failing now
    members: set[str] = field(default_factory=set)  # every check that was part of it
    opened_at: float = 0.0
    alerted_at: float | None = None  # None: not delivered yet (retried next tick)
    alerted_severity: str = ""

    @property
    def origin(self) -> str:
        return self.origins[0]

    @property
    def severity(self) -> str:
        return max((f.severity for f in self.failures), key=lambda s: SEVERITY_RANK.get(s, 0))

    @property
    def assets(self) -> list[str]:
        return list(dict.fromkeys(f.asset for f in self.failures))

    @property
    def run_ids(self) -> list[str]:
        return sorted({f.run_id for f in self.failures if f.run_id})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origins": list(self.origins),
            "failures": [f.to_dict() for f in self.failures],
            "members": sorted(self.members),
            "opened_at": self.opened_at,
            "alerted_at": self.alerted_at,
            "alerted_severity": self.alerted_severity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        return cls(
            id=data["id"],
            origins=tuple(data["origins"]),
            failures=tuple(Failure.from_dict(f) for f in data["failures"]),
            members=set(data.get("members") or ()),
            opened_at=data.get("opened_at", 0.0),
            alerted_at=data.get("alerted_at"),
            alerted_severity=data.get("alerted_severity", ""),
        )


@dataclass(frozen=True)
class Action:
    kind: str  # "open", "escalate", "remind", "recover"
    incident: Incident


def incident_id(origins: Sequence[str], opened_at: float) -> str:
    return hashlib.sha1(f"{'|'.join(origins)}@{opened_at}".encode()).hexdigest()[:10]


@dataclass
class IncidentBook:
    """The open incidents, matched against each tick's groups of failing checks."""

    open: dict[str, Incident] = field(default_factory=dict)

    def reconcile(self, groups: Sequence[Group], now: float, reminder_after: float) -> list[Action]:
        actions: list[Action] = []
        matched: set[str] = set()
        for group in groups:
            incident = self._match(group, matched)
            if incident is None:
                opened = min((f.since for f in group.failures if f.since), default=now)
                incident = Incident(
                    incident_id(group.origins, opened),
                    group.origins,
                    group.failures,
                    opened_at=opened,
                )
                self.open[incident.id] = incident
            incident.origins, incident.failures = group.origins, group.failures
            incident.members |= group.checks
            matched.add(incident.id)
            action = self._due(incident, now, reminder_after)
            if action:
                actions.append(Action(action, incident))
        for key in sorted(set(self.open) - matched):
            if self.open[key].alerted_at is None:  # never posted: nothing to recover from
                del self.open[key]
            else:
                actions.append(Action("recover", self.open[key]))
        return actions

    def _match(self, group: Group, taken: set[str]) -> Incident | None:
        candidates = [
            i
            for i in self.open.values()
            if i.id not in taken
            and (i.members & group.checks or set(i.origins) & set(group.origins))
        ]
        if not candidates:
            return None
        keep = min(candidates, key=lambda i: i.opened_at)
        for other in candidates:  # two incidents that now share a cause become one
            if other is not keep:
                keep.members |= other.members
                keep.alerted_at = keep.alerted_at or other.alerted_at
                del self.open[other.id]
        return keep

    @staticmethod
    def _due(incident: Incident, now: float, reminder_after: float) -> str | None:
        if incident.alerted_at is None:
            return "open"
        if SEVERITY_RANK.get(incident.severity, 0) > SEVERITY_RANK.get(
            incident.alerted_severity, 0
        ):
            return "escalate"
        if now - incident.alerted_at >= reminder_after:
            return "remind"
        return None

    def delivered(self, action: Action, now: float) -> None:
        if action.kind == "recover":
            self.open.pop(action.incident.id, None)
            return
        action.incident.alerted_at = now
        action.incident.alerted_severity = action.incident.severity

    def to_list(self) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.open.values()]

    @classmethod
    def from_list(cls, data: Iterable[Mapping[str, Any]]) -> IncidentBook:
        incidents = [Incident.from_dict(d) for d in data]
        return cls({i.id: i for i in incidents})
