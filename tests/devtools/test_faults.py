"""The fault catalogue's expectations name checks that exist: a check renamed or moved (a
NOT NULL that became a dbt test) would otherwise turn a detected fault into a miss."""

from __future__ import annotations

from devtools.faults import DETECTED_BY, FAULT_TYPES
from platform_assets.definitions import build_definitions
from platform_core.settings import get_settings


def test_every_expected_check_exists_in_the_code_location():
    graph = build_definitions(get_settings()).resolve_asset_graph()
    existing = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert set(DETECTED_BY) == set(FAULT_TYPES)
    missing = {kind: set(checks) - existing for kind, checks in DETECTED_BY.items()}
    # a class is judged by any one of its checks; every one must exist to be fair
    assert not {kind: m for kind, m in missing.items() if m}
