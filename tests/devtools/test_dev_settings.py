"""`make dev`'s own settings, its preflight messages and its prefixed logs."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from devtools.dev.logs import LogFollower
from devtools.dev.preflight import problems
from devtools.dev.settings import DevSettings
from platform_core.settings import SettingsError


def test_defaults_and_where_the_ports_come_from(tmp_path):
    dev = DevSettings.from_env({"DATA_DIR": str(tmp_path)})
    assert dev.events_per_second == 2 and dev.backfill_days == 14
    assert dev.data_dir == tmp_path / "dev"  # apart from make demo's data
    assert (dev.ui_host, dev.ui_port, dev.collector_port) == ("127.0.0.1", 3000, 8080)
    assert dev.postgres_port is None
    # 2 events/s over a day at 7.5 events per session
    assert dev.sessions_per_day == round(2 * 86400 / 7.5)
    custom = DevSettings.from_env(
        {
            "DEV_EVENTS_PER_SECOND": "0.5",
            "DEV_BACKFILL_DAYS": "3",
            "DEV_DATA_DIR": str(tmp_path / "elsewhere"),
            "DEV_POSTGRES_PORT": "6543",
            "DAGSTER_UI_URL": "http://127.0.0.1:3100",
            "COLLECTOR_PORT": "8181",
        }
    )
    assert custom.events_per_second == 0.5 and custom.backfill_days == 3
    assert custom.data_dir == tmp_path / "elsewhere" and custom.postgres_port == 6543
    assert (custom.ui_port, custom.collector_port) == (3100, 8181)
    assert custom.platform_env()["DATA_DIR"] == str(tmp_path / "elsewhere")
    assert custom.platform_env()["DAGSTER_HOME"] == str(tmp_path / "elsewhere" / "dagster")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEV_EVENTS_PER_SECOND", "fast"),
        ("DEV_EVENTS_PER_SECOND", "-1"),
        ("DEV_BACKFILL_DAYS", "1.5"),
        ("DEV_POSTGRES_PORT", "70000"),
        ("DAGSTER_UI_URL", "http://localhost"),
    ],
)
def test_a_bad_value_names_its_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        DevSettings.from_env({variable: value})


def test_preflight_says_what_is_missing_and_how_to_fix_it(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("PATH", str(tmp_path))  # no java, no gcloud, no pg_config
        dev = DevSettings.from_env(
            {"DAGSTER_UI_URL": f"http://127.0.0.1:{port}", "DATA_DIR": str(tmp_path)}
        )
        found = problems(dev)
    text = "\n".join(found)
    assert "Java 17 is missing" in text and "openjdk-17-jre-headless" in text
    assert f"port {port} (the Dagster UI) is in use" in text and "DAGSTER_UI_URL=" in text


def test_logs_are_followed_with_their_name_from_where_they_ended(tmp_path: Path):
    old = tmp_path / "beam.log"
    old.write_text("yesterday's line\n")
    out = io.StringIO()
    follower = LogFollower(tmp_path, out)
    with open(old, "a") as log:
        log.write("drained\nhalf a li")
    (tmp_path / "pubsub-emulator-8085.log").write_text("up\n")
    (tmp_path / "dagster.log").write_text(
        "x - QueuedRunCoordinatorDaemon - Priority sorting and checking tag concurrency limits\n"
        "run 1 - DEBUG - STEP_START\nrun 1 - INFO - dbt build\n"
    )
    follower.poll()
    with open(old, "a") as log:
        log.write("ne\n")
    follower.poll()
    lines = out.getvalue().splitlines()
    assert "yesterday's line" not in out.getvalue()  # history is not replayed
    assert lines == [
        "beam       | drained",
        "dagster    | run 1 - INFO - dbt build",  # the queue's chatter and debug are not
        "emulator   | up",
        "beam       | half a line",  # a line is printed whole, once it is
    ]
