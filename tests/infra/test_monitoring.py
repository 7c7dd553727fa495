"""The alerts run: `promtool check rules` on the PrometheusRule's spec, and promtool unit tests
(tests/infra/prometheus/*.test.yml) that fire them on series the platform really exports:

* Kafka Connect's connector/task states and Debezium's streaming metrics come from the JMX
  exporter rules of infra/k8s/kafka/metrics-config.yaml. This test applies those rules (the
  exporter's own matching: an unanchored regex over ``domain<properties><>attribute: value``)
  to the MBeans Kafka Connect and Debezium register (names from their documentation), and
  checks that every Connect/Debezium series of the unit tests is one they produce.
* cdc_slot_*, cdc_bridge_* and collector_* series are names the code exports
  (tests/infra/test_infra.py's exported_metrics reads their definitions).

promtool comes with Debian's `prometheus` package (.ci/run installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.test_infra import exported_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "monitoring" / "prometheus" / "platform-rules.yaml"
METRICS_CONFIG = ROOT / "infra" / "k8s" / "kafka" / "metrics-config.yaml"
UNIT_TESTS = sorted((Path(__file__).parent / "prometheus").glob("*.test.yml"))

# MBean attributes as the JMX exporter renders them, for a connector "shop-postgres" with one
# task and Debezium's topic prefix "shop" (Kafka Connect monitoring docs; Debezium PostgreSQL
# connector docs, "Streaming metrics").
CONNECTOR = "kafka.connect<type=connector-metrics, connector=shop-postgres><>"
TASK = "kafka.connect<type=connector-task-metrics, connector=shop-postgres, task=0><>"
STREAMING = "debezium.postgres<type=connector-metrics, context=streaming, server=shop><>"
MBEANS = [
    (CONNECTOR + "status: running", None),
    (CONNECTOR + "status: paused", None),
    (TASK + "status: failed", None),
    (TASK + "status: running", None),
    (STREAMING + "Connected: true", 1),
    (STREAMING + "MilliSecondsBehindSource: 250", 250),
]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; .ci/run installs it)")
    return found


def rule_file(tmp_path: Path) -> Path:
    spec = yaml.safe_load(RULES.read_text())["spec"]
    path = tmp_path / "platform-rules.rules.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(rule_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_fire_the_alerts(tmp_path: Path) -> None:
    rule_file(tmp_path)
    for test in UNIT_TESTS:
        shutil.copy(test, tmp_path / test.name)
    result = subprocess.run(
        [promtool(), "test", "rules", *(t.name for t in UNIT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_fails_the_check(tmp_path: Path) -> None:
    """The check is real: an expression that does not parse is refused."""
    path = tmp_path / "broken.yml"
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])"}]}]}
        )
    )
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


# --- the JMX exporter's rules, applied ---------------------------------------------------------


def exporter_rules() -> list[dict[str, Any]]:
    rules = []
    for doc in yaml.safe_load_all(METRICS_CONFIG.read_text()):
        for text in doc["data"].values():
            config = yaml.safe_load(text)
            assert config["lowercaseOutputName"] is True
            rules += config["rules"]
    return rules


def export(mbean: str, attribute_value: float | None) -> tuple[str, dict[str, str], float] | None:
    """The series the exporter makes of one MBean attribute (first matching rule wins)."""
    for rule in exporter_rules():
        match = re.search(rule["pattern"], mbean)
        if match is None:
            continue

        def expand(template: str, found: re.Match[str] = match) -> str:
            return re.sub(r"\$(\d+)", lambda m: found.group(int(m.group(1))), template)

        labels = {key: expand(value) for key, value in (rule.get("labels") or {}).items()}
        value = rule.get("value", attribute_value)
        assert value is not None, f"{rule['pattern']}: a text attribute needs a rule value"
        return expand(rule["name"]).lower(), labels, float(value)
    return None


def test_the_exporter_rules_turn_connect_mbeans_into_the_alerted_series() -> None:
    exported = {mbean: export(mbean, value) for mbean, value in MBEANS}
    assert all(exported.values()), [m for m, e in exported.items() if e is None]
    assert exported[MBEANS[2][0]] == (
        "kafka_connect_connector_task_status",
        {"connector": "shop-postgres", "task": "0", "status": "failed"},
        1.0,
    )
    assert exported[MBEANS[4][0]] == (
        "debezium_postgres_streaming_connected",
        {"server": "shop"},
        1.0,
    )
    produced = {(name, frozenset(labels)) for name, labels, _ in exported.values() if name}
    # every Connect/Debezium series the unit tests feed promtool is one the exporter makes
    for name, labels in unit_test_series():
        if name.startswith(("kafka_connect_", "debezium_")):
            assert (name, frozenset(labels)) in produced, (name, labels)


def unit_test_series() -> list[tuple[str, dict[str, str]]]:
    series = []
    for test in UNIT_TESTS:
        for case in yaml.safe_load(test.read_text())["tests"]:
            for item in case["input_series"]:
                name, _, rest = item["series"].partition("{")
                labels = dict(re.findall(r'(\w+)="([^"]*)"', rest))
                series.append((name, labels))
    return series


def test_unit_tests_only_feed_series_the_platform_exports() -> None:
    known = exported_metrics() | {"up"}
    unknown = {name for name, _ in unit_test_series()} - known
    assert not unknown, f"series no code or exporter rule produces: {unknown}"
