"""Helpers for the collector tests: unique Pub/Sub topics and subscriptions, pulling what
arrived, a live uvicorn server in a thread, and a TCP proxy that can cut Pub/Sub off."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from collector.publisher import PublishError, PubSubPublisher
from collector.wire import PublishRequest
from devtools.services import free_port, stop_process_group, wait_for_port
from platform_core.settings import Settings

PROJECT = "local-project"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def basic(key: str, colon: bool = True) -> dict[str, str]:
    token = base64.b64encode(f"{key}{':' if colon else ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.contextmanager
def emulator_env(host: str) -> Iterator[None]:
    """google-cloud-pubsub clients read PUBSUB_EMULATOR_HOST when they are created."""
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


@dataclass
class Received:
    data: bytes
    attributes: dict[str, str]
    pubsub_id: str

    @property
    def json(self) -> Any:
        return orjson.loads(self.data)


class Topics:
    """An events topic and a dead-letter topic with one subscription each, on one emulator."""

    def __init__(self, host: str, prefix: str = "col") -> None:
        from google.cloud import pubsub_v1

        self.host = host
        self.events = unique(f"{prefix}-events")
        self.dead_letter = unique(f"{prefix}-dlq")
        with emulator_env(host):
            self.publisher = pubsub_v1.PublisherClient()
            self.subscriber = pubsub_v1.SubscriberClient()
        self.create()

    def path(self, topic: str) -> str:
        return f"projects/{PROJECT}/topics/{topic}"

    def subscription(self, topic: str) -> str:
        return f"projects/{PROJECT}/subscriptions/{topic}-sub"

    def create(self) -> None:
        """Create (or re-create, on a restarted emulator) both topics and subscriptions."""
        for topic in (self.events, self.dead_letter):
            with contextlib.suppress(Exception):  # AlreadyExists
                self.publisher.create_topic(name=self.path(topic))
            with contextlib.suppress(Exception):
                self.subscriber.create_subscription(
                    name=self.subscription(topic),
                    topic=self.path(topic),
                    ack_deadline_seconds=60,
                )

    def env(self) -> dict[str, str]:
        return {
            "PUBSUB_EVENTS_TOPIC": self.events,
            "PUBSUB_DEAD_LETTER_TOPIC": self.dead_letter,
            "PUBSUB_EMULATOR_HOST": self.host,
            "GCP_PROJECT": PROJECT,
        }

    def pull(
        self, topic: str, expected: int, timeout: float = 20.0, settle: float = 0.0
    ) -> list[Received]:
        """Pull and ack until `expected` messages arrived (or `timeout`); then keep pulling
        for `settle` seconds to catch anything extra (duplicates)."""
        from google.api_core import exceptions

        received: list[Received] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if len(received) >= expected and settle_until is None:
                settle_until = now + settle
            if (settle_until is not None and now >= settle_until) or now >= deadline:
                return received
            until = settle_until if settle_until is not None else deadline
            try:
                response = self.subscriber.pull(
                    subscription=self.subscription(topic),
                    max_messages=1000,
                    timeout=max(0.3, min(5.0, until - now)),
                    retry=None,
                )
            except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
                continue
            if not response.received_messages:
                time.sleep(0.1)
                continue
            ack = []
            for item in response.received_messages:
                received.append(
                    Received(
                        item.message.data, dict(item.message.attributes), item.message.message_id
                    )
                )
                ack.append(item.ack_id)
            self.subscriber.acknowledge(subscription=self.subscription(topic), ack_ids=ack)

    def events_received(self, expected: int, **kwargs: Any) -> list[Received]:
        return self.pull(self.events, expected, **kwargs)

    def dead_letters(self, expected: int, **kwargs: Any) -> list[Received]:
        return self.pull(self.dead_letter, expected, **kwargs)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.subscriber.close()


def collector_env(topics: Topics, spool: Path, **extra: str) -> dict[str, str]:
    env = {
        "PLATFORM_ENV": "local",
        "COLLECTOR_WRITE_KEYS": "web-key=web,ios-key=ios,server-key=server",
        "COLLECTOR_SPOOL_DIR": str(spool),
        **topics.env(),
    }
    env.update(extra)
    return env


def collector_settings(topics: Topics, spool: Path, **extra: str) -> Settings:
    return Settings.from_env(collector_env(topics, spool, **extra))


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=20,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when the app fails to start
            self.server.run()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the collector did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target address. `stop()` closes the listener and every
    open connection (as if the network to Pub/Sub were cut); `start()` listens again on the
    same port."""

    def __init__(self, target: str, port: int | None = None) -> None:
        host, _, port_text = target.rpartition(":")
        self.target = (host, int(port_text))
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy", daemon=True)
        self.thread.start()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def start(self) -> None:
        async def start() -> None:
            self._server = await asyncio.start_server(
                self._client, "127.0.0.1", self.port, reuse_address=True
            )

        self._run(start())

    def stop(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._run(stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


class SlowPublisher:
    """The real Pub/Sub publisher (to the emulator) behind the same interface, made slow or
    picky on demand: `delay` seconds before every Publish RPC; an RPC whose request contains
    `refuse` is refused for good (INVALID_ARGUMENT), as Pub/Sub refuses a request it can
    never take. `rpcs` counts the Publish RPCs per number of messages they carried."""

    def __init__(self, emulator_host: str) -> None:
        self.inner = PubSubPublisher(emulator_host)
        self.delay = 0.0
        self.refuse: bytes | None = None
        self.rpcs: list[int] = []

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, topic: str, request: bytes, timeout: float) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.rpcs.append(len(PublishRequest.FromString(request).messages))
        if self.refuse is not None and self.refuse in request:
            raise PublishError("INVALID_ARGUMENT", "refused by the test", False)
        await self.inner.publish(topic, request, timeout)

    async def ensure_topics(self, topics: list[str], timeout: float) -> None:
        await self.inner.ensure_topics(topics, timeout)

    async def probe(self, topic: str, timeout: float) -> bool:
        if self.delay >= timeout:
            await asyncio.sleep(timeout)
            return False
        return await self.inner.probe(topic, timeout)

    async def close(self) -> None:
        await self.inner.close()


def peak_rss_bytes(pid: int) -> int:
    """The process' peak resident set size so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


ROOT = Path(__file__).resolve().parents[2]


class CollectorProcess:
    """`python -m collector` in a process of its own (so its memory can be measured), on a
    free loopback port; stopped by process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **env,
            "COLLECTOR_HOST": "127.0.0.1",
            "COLLECTOR_PORT": str(self.port),
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> CollectorProcess:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "collector"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port("127.0.0.1", self.port, 60, self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process_group(self.process, 30)
