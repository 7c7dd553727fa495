"""Schemathesis over the collector's own OpenAPI schema, against a live collector and the
Pub/Sub emulator: generated requests (valid and invalid bodies, headers, media types) never
get a 5xx, and every answer is one the schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from collector_helpers import LiveServer, Topics, basic, collector_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from collector.app import create_app
from platform_core.settings import Settings

pytestmark = pytest.mark.slow

AUTH = basic("web-key")


@pytest.fixture(scope="module")
def live_collector(pubsub_emulator, tmp_path_factory):
    topics = Topics(pubsub_emulator, prefix="fuzz")
    app = create_app(collector_settings(topics, tmp_path_factory.mktemp("fuzz") / "spool"))
    with LiveServer(app) as server:
        yield server
    topics.close()


# The schema the app serves (building the app connects nowhere; that happens on startup).
# analytics.js' short paths share their handler with the long ones: fuzzing those is enough
# to stay within a minute (schemathesis' coverage phase alone sends ~3,000 requests).
schema = schemathesis.openapi.from_dict(create_app(Settings.from_env({})).openapi()).exclude(
    tag="analytics.js"
)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, live_collector):
    # a valid write key, so generated bodies get past authentication into ingestion
    case.call_and_validate(
        base_url=live_collector.url,
        headers=AUTH,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
