"""What a 2xx promises, tested by breaking things: Pub/Sub stopped mid-run (events spool,
then replay with none lost and none duplicated), a full spool (503 + Retry-After), a spool
left by one process replayed by the next, and SIGTERM in the middle of traffic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from collector_helpers import (
    LiveServer,
    TcpProxy,
    Topics,
    basic,
    collector_env,
    collector_settings,
)

from collector.app import create_app
from devtools.services import free_port, start_pubsub_emulator, wait_for_port
from platform_core.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WEB = basic("web-key")


def batch(n: int) -> tuple[dict, list[str]]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    events = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "a-1",
            "messageId": i,
            "properties": {"product_id": "p-1", "price": 3.5},
        }
        for i in ids
    ]
    return {"batch": events, "sentAt": "2026-11-26T03:01:13.000Z"}, ids


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_pubsub_outage_spools_then_replays_everything_once(tmp_path):
    """A Pub/Sub emulator of its own, reached through a proxy: stop the emulator (Pub/Sub
    down), keep sending, start it again on the same port, and every acknowledged event
    arrives exactly once."""
    emulator = start_pubsub_emulator(tmp_path / "emulator")
    port = emulator.port
    proxy = TcpProxy(emulator.address)
    proxy.start()
    topics = Topics(emulator.address, prefix="outage")
    settings = collector_settings(topics, tmp_path / "spool", PUBSUB_EMULATOR_HOST=proxy.address)
    try:
        with (
            LiveServer(create_app(settings)) as server,
            httpx.Client(base_url=server.url, headers=WEB, timeout=30) as http,
        ):
            before: list[str] = []
            for _ in range(5):
                body, ids = batch(20)
                answer = http.post("/v1/batch", json=body).json()
                assert answer["delivery"] == "published" and answer["accepted"] == 20
                before += ids
            got = [r.attributes["message_id"] for r in topics.events_received(100, settle=0.5)]
            assert sorted(got) == sorted(before)

            emulator.stop()  # Pub/Sub is gone
            during: list[str] = []
            for _ in range(10):
                body, ids = batch(20)
                response = http.post("/v1/batch", json=body)
                assert response.status_code == 200, response.text
                assert response.json()["delivery"] == "spooled"
                during += ids
            single = http.post("/v1/track", json={"event": "Signed Up", "userId": "u-9"})
            assert single.status_code == 200 and single.json()["delivery"] == "spooled"
            during.append(single.json()["messageId"])
            text = http.get("/metrics").text
            assert metric(text, "collector_spool_depth_events") == 201
            assert metric(text, "collector_pubsub_available") == 0
            assert metric(text, "collector_spool_replay_lag_seconds") > 0
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["pubsub_reachable"] is False

            # bring Pub/Sub back on the same port; the collector may reach it only once the
            # topics and subscriptions exist again (a restarted emulator has none)
            proxy.stop()
            emulator = start_pubsub_emulator(tmp_path / "emulator", port=port)
            topics.create()
            proxy.start()
            received = topics.events_received(len(during), timeout=60, settle=2.0)
            got = [r.attributes["message_id"] for r in received]
            assert len(got) == len(set(got)), "no duplicates"
            assert sorted(got) == sorted(during), "every spooled event replayed"
            wait_until(
                lambda: metric(http.get("/metrics").text, "collector_spool_depth_events") == 0,
                10,
                "empty spool",
            )
            text = http.get("/metrics").text
            assert metric(text, "collector_events_replayed_total") == 201
            assert metric(text, "collector_spool_replay_lag_seconds") == 0
            assert http.get("/readyz").status_code == 200
            body, ids = batch(5)
            assert http.post("/v1/batch", json=body).json()["delivery"] == "published"
            assert len(topics.events_received(5)) == 5
        assert not list((tmp_path / "spool").glob("segment-*.log")), "replayed segments deleted"
    finally:
        topics.close()
        proxy.close()
        emulator.stop()


def test_full_spool_answers_503_with_retry_after(tmp_path):
    """Pub/Sub unreachable from the start and a 50 KB spool: 200s until it is full, then
    503 with Retry-After; readiness says why."""
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        "PLATFORM_ENV": "local",
        "PUBSUB_EMULATOR_HOST": nowhere,
        "PUBSUB_EVENTS_TOPIC": "spool-events",
        "PUBSUB_DEAD_LETTER_TOPIC": "spool-dlq",
        "COLLECTOR_WRITE_KEYS": "web-key=web",
        "COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"),
        "COLLECTOR_SPOOL_MAX_MB": "0.05",
    }
    settings = Settings.from_env(env)
    with (
        LiveServer(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=WEB, timeout=30) as http,
    ):
        statuses = []
        for _ in range(40):
            body, _ = batch(10)
            response = http.post("/v1/batch", json=body)
            statuses.append(response.status_code)
            if response.status_code == 503:
                break
        assert statuses[0] == 200 and statuses[-1] == 503 and set(statuses) == {200, 503}
        assert response.headers["Retry-After"].isdigit()
        assert response.json()["code"] == "spool_full"
        spooled = statuses.count(200) * 10
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["spool_full"] is True and ready.json()["spool_events"] == spooled
        # still full: nothing is acknowledged that is not stored
        assert http.post("/v1/batch", json=batch(10)[0]).status_code == 503
        text = http.get("/metrics").text
        assert metric(text, "collector_spool_full_total") == 2
        assert metric(text, "collector_spool_disk_bytes") <= 0.05 * 1024 * 1024


def test_spool_left_by_one_process_is_replayed_by_the_next(pubsub_emulator, tmp_path):
    topics = Topics(pubsub_emulator, prefix="restart")
    spool = tmp_path / "spool"
    try:
        nowhere = f"127.0.0.1:{free_port()}"
        first = collector_settings(topics, spool, PUBSUB_EMULATOR_HOST=nowhere)
        sent: list[str] = []
        with (
            LiveServer(create_app(first)) as server,
            httpx.Client(base_url=server.url, headers=WEB, timeout=30) as http,
        ):
            for _ in range(3):
                body, ids = batch(7)
                assert http.post("/v1/batch", json=body).json()["delivery"] == "spooled"
                sent += ids
        assert list(spool.glob("segment-*.log")), "the first process left its spool"
        second = collector_settings(topics, spool)
        with LiveServer(create_app(second)):
            received = topics.events_received(len(sent), timeout=30, settle=1.0)
        got = [r.attributes["message_id"] for r in received]
        assert sorted(got) == sorted(sent)
    finally:
        topics.close()


def test_sigterm_mid_traffic_loses_nothing_acknowledged(pubsub_emulator, tmp_path):
    """`python -m collector` under load gets SIGTERM: every request it answered 200 has its
    events on the topic; requests in flight are finished, not dropped."""
    topics = Topics(pubsub_emulator, prefix="sigterm")
    port = free_port()
    env = {
        **os.environ,
        **collector_env(topics, tmp_path / "spool"),
        "COLLECTOR_HOST": "127.0.0.1",
        "COLLECTOR_PORT": str(port),
    }
    log = tmp_path / "collector.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=WEB, timeout=30) as http:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                body, ids = batch(25)
                try:
                    response = http.post("/v1/batch", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: this request was never acknowledged
                if response.status_code == 200:
                    assert response.json()["accepted"] == 25
                    with lock:
                        acknowledged.extend(ids)

    try:
        wait_for_port("127.0.0.1", port, 60, process)
        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acknowledged) >= 2000, 30, "traffic")
        os.killpg(process.pid, signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert process.wait(60) in (0, -signal.SIGTERM)
        stop.set()
        for thread in threads:
            thread.join(60)
        received = topics.events_received(len(acknowledged), timeout=60, settle=1.0)
        got = {r.attributes["message_id"] for r in received}
        missing = set(acknowledged) - got
        assert not missing, f"{len(missing)} acknowledged events lost"
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert any(line["message"] == "collector stopped" for line in lines)
        assert all("level" in line and "time" in line for line in lines)
    finally:
        stop.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        topics.close()


def test_gcp_mode_without_write_keys_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PUBSUB_"))}
    env.update(PLATFORM_ENV="gcp", COLLECTOR_SPOOL_DIR=str(tmp_path / "spool"))
    done = subprocess.run(
        [sys.executable, "-m", "collector"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    [line] = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert line["level"] == "error" and "COLLECTOR_WRITE_KEYS" in line["message"]


def test_a_stranded_spool_is_drained_by_the_drain_tool(pubsub_emulator, tmp_path, caplog):
    """A collector stopped during a Pub/Sub outage with acknowledged events in its spool
    (what a pod removed by a scale-down leaves on its volume): its metrics showed the pending
    bytes and their age while it ran, it warned when it stopped, and `python -m
    collector.drain` pointed at the directory publishes every event and exits 0."""
    topics = Topics(pubsub_emulator, prefix="stranded")
    spool = tmp_path / "spool"
    try:
        nowhere = f"127.0.0.1:{free_port()}"
        first = collector_settings(topics, spool, PUBSUB_EMULATOR_HOST=nowhere)
        sent: list[str] = []
        with (
            LiveServer(create_app(first)) as server,
            httpx.Client(base_url=server.url, headers=WEB, timeout=30) as http,
        ):
            for _ in range(4):
                body, ids = batch(5)
                assert http.post("/v1/batch", json=body).json()["delivery"] == "spooled"
                sent += ids
            text = http.get("/metrics").text
            assert metric(text, "collector_spool_depth_bytes") > 0
            oldest = metric(text, "collector_spool_oldest_pending_timestamp_seconds")
            assert time.time() - 600 < oldest <= time.time()
        warnings = [r for r in caplog.records if r.name == "collector.delivery"]
        assert any(
            r.getMessage().startswith("collector stopped with acknowledged") for r in warnings
        )
        env = {**os.environ, **collector_env(topics, tmp_path / "elsewhere")}
        done = subprocess.run(
            [sys.executable, "-m", "collector.drain", "--spool-dir", str(spool), "--timeout", "60"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
        assert any(line["message"] == "spool drained" for line in lines)
        received = topics.events_received(len(sent), timeout=30, settle=1.0)
        assert sorted(r.attributes["message_id"] for r in received) == sorted(sent)
        assert not list(spool.glob("segment-*.log"))
    finally:
        topics.close()
