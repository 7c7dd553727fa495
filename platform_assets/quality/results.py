"""What a rule returns: the verdict, the metric against its expected range, and evidence."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "error"]
SEVERITY_LABEL = {"error": "CRITICAL", "warn": "WARNING"}


@dataclass
class CheckResult:
    """One evaluation of one rule on one asset. Only rules build these; nothing else
    (in particular no LLM output) ever changes `passed`, `status` or `severity`."""

    asset: str
    check_name: str
    rule: str  # freshness, volume, null_rate, duplicates, schema, references
    passed: bool
    severity: str  # "error" (critical) or "warn": the severity a failure has / would have
    metric: str
    value: float | None
    expected_low: float | None
    expected_high: float | None
    description: str  # one deterministic sentence: what was measured and what was expected
    kind: str = ""  # what failed (e.g. "drop", "nulls:page_path"); part of the fingerprint
    blocking: bool = False
    status: Status = "pass"  # pass, warn, fail (critical) or error (could not evaluate)
    sample: list[dict[str, Any]] = field(default_factory=list)  # rows/keys that explain it
    recent: list[dict[str, Any]] = field(default_factory=list)  # recent values of the metric
    details: dict[str, Any] = field(default_factory=dict)
    as_of: datetime | None = None
    evaluated_at: datetime | None = None
    narrative: dict[str, Any] | None = None
    narrator: str = ""

    @property
    def fingerprint(self) -> str:
        """asset + check + failure kind + severity: what alert suppression keys on."""
        if self.passed:
            return ""
        raw = "|".join((self.asset, self.check_name, self.kind, self.severity))
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    @property
    def severity_label(self) -> str:
        return SEVERITY_LABEL.get(self.severity, self.severity.upper())

    @property
    def expected(self) -> str:
        return expected_text(self.expected_low, self.expected_high)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fingerprint"] = self.fingerprint
        data["expected"] = self.expected
        return jsonable(data)


def expected_text(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "n/a"
    if low is None:
        return f"<= {fmt(high)}"
    if high is None:
        return f">= {fmt(low)}"
    if low == high:
        return f"= {fmt(low)}"
    return f"{fmt(low)} .. {fmt(high)}"


def fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) < 1:
            return f"{value:.4f}".rstrip("0").rstrip(".")
        return f"{value:,.2f}"
    return str(value)


def jsonable(value: Any) -> Any:
    """Plain JSON types: dates as ISO strings, decimals as floats, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True)
