"""The collector's in-process hot path: `uv run python -m bench.collector.hotpath`.

Drives the collector's ASGI app directly (no sockets, no uvicorn) with the benchmark's
/v1/batch bodies (100 events of ~0.75 KB each) and a publisher that acknowledges at once, so
what it measures is the collector's own work per event: routing, body, authentication,
parsing, validation, stamping, encoding of the Publish requests, delivery bookkeeping and
metrics. It prints the process's CPU time per event and per request.

`--callgrind` runs the same loop twice under valgrind's callgrind (`--requests` and
3 x `--requests` requests) and prints the difference in instructions per event: start-up
and imports cancel out, and an instruction count does not move when other processes load
the machine, which CPU time does. That is the figure to compare two versions of the hot path
with (`--source DIR` runs another checkout, e.g. `git worktree add /tmp/before <commit>`).

A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

# Nothing of the project is imported at the top: `--source` decides which checkout's
# collector and platform_core are measured (sys.path is set first, in `main`).
ROOT = Path(__file__).resolve().parents[2]
KEY = "bench-key"
BODIES = 50
BATCH = 100


class InstantPublisher:
    """Acknowledges every Publish request at once (the Pub/Sub side is not measured here)."""

    async def start(self) -> None:
        return None

    async def publish(self, topic: str, request: bytes, timeout: float) -> None:
        return None

    async def ensure_topics(self, topics: list[str], timeout: float) -> None:
        return None

    async def probe(self, topic: str, timeout: float) -> bool:
        return True

    async def close(self) -> None:
        return None


def bodies(count: int = BODIES, size: int = BATCH, seed: int = 7) -> list[bytes]:
    from bench.collector.events import batch

    rng = random.Random(seed)
    return [orjson.dumps(batch(rng, size)) for _ in range(count)]


def scope(path: str, body: bytes) -> dict[str, Any]:
    auth = b"Basic " + base64.b64encode(f"{KEY}:".encode())
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", auth),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def post(app: Any, body: bytes) -> int:
    """One POST /v1/batch through the ASGI app; its status."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # a client that stays connected
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope("/v1/batch", body), receive, send)
    return status


async def run(requests: int, warmup: int, size: int = BATCH) -> tuple[float, int]:
    """(CPU seconds, events) for `requests` requests of `size` events after `warmup` ones."""
    # imported here, after --source put another checkout first on sys.path
    from collector.__main__ import GC_YOUNG_THRESHOLD
    from collector.app import create_app
    from platform_core.settings import Settings

    spool = Path(tempfile.mkdtemp(prefix="hotpath-"))
    settings = Settings.from_env(
        {
            "PLATFORM_ENV": "local",
            "COLLECTOR_WRITE_KEYS": f"{KEY}=web",
            "COLLECTOR_SPOOL_DIR": str(spool),
        }
    )
    app = create_app(settings, InstantPublisher())
    payloads = bodies(size=size)
    try:
        async with app.router.lifespan_context(app):
            for i in range(warmup):
                status = await post(app, payloads[i % len(payloads)])
                if status != 200:
                    raise SystemExit(f"the collector answered {status}")
            # as `python -m collector` does before serving
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
            started = time.process_time()
            for i in range(requests):
                await post(app, payloads[i % len(payloads)])
            return time.process_time() - started, requests * size
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def callgrind(source: Path, requests: int) -> float:
    """Instructions per event: two runs under callgrind, the difference."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs valgrind (apt-get install valgrind)")
    counts = []
    for n in (requests, 3 * requests):
        with tempfile.TemporaryDirectory() as work:
            out = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={work}/callgrind.out",
                    sys.executable,
                    "-m",
                    "bench.collector.hotpath",
                    "--requests",
                    str(n),
                    "--warmup",
                    "20",
                    "--source",
                    str(source),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (2 * requests * BATCH)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector.hotpath")
    parser.add_argument("--requests", type=int, default=500, help="measured requests")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch", type=int, default=BATCH, help="events per request")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument(
        "--callgrind", action="store_true", help="instructions per event (valgrind)"
    )
    args = parser.parse_args(argv)
    source = args.source.resolve()
    if args.callgrind:
        per_event = callgrind(source, args.requests)
        print(f"collector hot path ({source}): {per_event:,.0f} instructions per event")
        return 0
    sys.path.insert(0, str(source))
    cpu, events = asyncio.run(run(args.requests, args.warmup, args.batch))
    load = os.getloadavg()[0]
    print(
        f"collector hot path ({source}): {cpu / events * 1e6:.2f} us CPU per event, "
        f"{cpu / args.requests * 1e6:.0f} us per request of {args.batch} events "
        f"(load average {load:.1f} on {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
