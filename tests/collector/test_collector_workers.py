"""Several collector workers per pod (COLLECTOR_WORKERS, collector.workers): each worker's
spool directory, the pod's spool gauges from any worker, and `python -m collector` with two
workers on one port during a Pub/Sub outage, then stopped and drained by the drain tool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from collector_helpers import ROOT, CollectorProcess, Topics, basic, collector_env

from collector.config import CollectorConfig, CollectorConfigError
from collector.workers import GAUGES_FILE, PodSpoolGauges
from devtools.services import free_port
from platform_core.settings import Settings, SettingsError

WEB = basic("web-key")


def test_each_worker_has_its_own_spool_directory(tmp_path):
    one = Settings.from_env({"COLLECTOR_SPOOL_DIR": str(tmp_path)})
    assert CollectorConfig.from_settings(one).spool_dir == tmp_path, "one worker: as before"
    two = Settings.from_env({"COLLECTOR_SPOOL_DIR": str(tmp_path), "COLLECTOR_WORKERS": "2"})
    dirs = [CollectorConfig.from_settings(two, i).spool_dir for i in (0, 1)]
    assert dirs == [tmp_path / "worker-0", tmp_path / "worker-1"]
    with pytest.raises(CollectorConfigError):
        CollectorConfig.from_settings(two, 2)
    with pytest.raises(SettingsError):
        Settings.from_env({"COLLECTOR_WORKERS": "0"})


def test_any_worker_exports_the_pods_spool_gauges(tmp_path):
    """Depths and sizes add up, the lag is the largest, the oldest record the oldest; a
    worker whose file went stale (stopped) no longer counts."""
    own = (lambda: 10.0, lambda: 1000.0, lambda: 4096.0, lambda: 3.0, lambda: 0.0, lambda: 0.0)
    (tmp_path / "worker-0").mkdir()
    (tmp_path / "worker-1").mkdir()
    (tmp_path / "worker-2").mkdir()
    now = time.time()
    other = {"at": now, "values": [5, 500, 2048, 7.5, 100, now - 7.5]}
    (tmp_path / "worker-1" / GAUGES_FILE).write_text(json.dumps(other))
    stale = {"at": now - 3600, "values": [99, 99, 99, 99, 99, 1]}
    (tmp_path / "worker-2" / GAUGES_FILE).write_text(json.dumps(stale))
    gauges = PodSpoolGauges(tmp_path / "worker-0", tmp_path, own).gauges()
    values = [g() for g in gauges]
    assert values == [15.0, 1500.0, 6144.0, 7.5, 100.0, now - 7.5]


def batch(n: int) -> tuple[dict, list[str]]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    events = [
        {"type": "track", "event": "Order Completed", "anonymousId": "a-1", "messageId": i}
        | {"properties": {"order_id": "o-1", "total": 10}}
        for i in ids
    ]
    return {"batch": events}, ids


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


@pytest.mark.slow
def test_two_workers_share_the_port_spool_apart_and_drain(pubsub_emulator, tmp_path):
    topics = Topics(pubsub_emulator, prefix="workers")
    spool = tmp_path / "spool"
    nowhere = f"127.0.0.1:{free_port()}"
    env = collector_env(topics, spool, COLLECTOR_WORKERS="2", PUBSUB_EMULATOR_HOST=nowhere)
    env["COLLECTOR_PUBLISH_TIMEOUT_S"] = "1"
    sent: list[str] = []
    try:
        with CollectorProcess(env, tmp_path / "collector.log") as collector:
            # a new connection per request: the kernel spreads them over both workers
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                any((spool / f"worker-{i}").glob("segment-*.log")) for i in (0, 1)
            ):
                body, ids = batch(3)
                answer = httpx.post(collector.url + "/v1/batch", json=body, headers=WEB, timeout=30)
                assert answer.json()["delivery"] == "spooled", answer.text
                sent += ids
            assert all(any((spool / f"worker-{i}").glob("segment-*.log")) for i in (0, 1)), (
                "both workers took requests"
            )
            time.sleep(2.5)  # each worker shares its gauges every second
            for _ in range(4):  # whichever worker answers, it counts the pod's spool
                text = httpx.get(collector.url + "/metrics", timeout=10).text
                assert metric(text, "collector_spool_depth_events") == len(sent)
            collector.process.send_signal(signal.SIGTERM)
            assert collector.process.wait(60) == 0
        drained = subprocess.run(
            [sys.executable, "-m", "collector.drain", "--spool-dir", str(spool), "--timeout", "60"],
            cwd=ROOT,
            env={**os.environ, **collector_env(topics, tmp_path / "elsewhere")},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert drained.returncode == 0, drained.stderr[-2000:]
        received = topics.events_received(len(sent), timeout=30, settle=1.0)
        assert sorted(r.attributes["message_id"] for r in received) == sorted(sent)
        assert not list(Path(spool).glob("worker-*/segment-*.log"))
    finally:
        topics.close()
