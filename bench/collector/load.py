"""Load generator (its own process): `python -m bench.collector.load URL --mode ...`.

Prints one JSON line: requests, failures, events accepted, elapsed seconds, events/s and
latency percentiles. Bounded: stops after `--duration` seconds (and `--max-requests`).

- closed loop (`--concurrency C`): C connections each send the next request as soon as the
  previous one was answered: the highest throughput the server sustains.
- open loop (`--rate R`): requests start at R per second whatever the answers; latency is
  measured from the scheduled start, so a server that falls behind shows it (no
  coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import sys
import time

import aiohttp
import orjson

from bench.collector.events import batch, event
from bench.stats import percentile


def bodies(mode: str, count: int, batch_size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    if mode == "batch":
        return [orjson.dumps(batch(rng, batch_size)) for _ in range(count)]
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return [orjson.dumps(event(rng, now)) for _ in range(count)]


async def run(args: argparse.Namespace) -> dict[str, object]:
    path = "/v1/batch" if args.mode == "batch" else "/v1/track"
    url = args.url.rstrip("/") + path
    payloads = bodies(args.mode, args.bodies, args.batch_size, args.seed)
    auth = "Basic " + base64.b64encode(f"{args.key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    latencies: list[float] = []
    failures = 0
    accepted = 0
    requests = 0
    per_request_events = args.batch_size if args.mode == "batch" else 1
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, 64), force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(body: bytes, scheduled: float, measure: bool) -> None:
            nonlocal failures, accepted, requests
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    text = await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok, text = False, b""
            if not measure:
                return
            requests += 1
            latencies.append(time.perf_counter() - scheduled)
            if ok:
                answer = orjson.loads(text)
                accepted += answer.get("accepted", 1) if per_request_events > 1 else 1
            else:
                failures += 1

        async def closed(deadline: float, measure: bool) -> None:
            i = random.randrange(len(payloads))
            while time.perf_counter() < deadline and requests < args.max_requests:
                i = (i + 1) % len(payloads)
                await one(payloads[i], time.perf_counter(), measure)

        async def opened(duration: float, measure: bool) -> None:
            start = time.perf_counter()
            total = min(int(args.rate * duration), args.max_requests)
            in_flight: set[asyncio.Task[None]] = set()
            for i in range(total):
                scheduled = start + i / args.rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(in_flight) >= 512:  # the server is hopelessly behind: stop piling on
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(one(payloads[i % len(payloads)], scheduled, measure))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.wait(in_flight)

        if args.rate:
            await opened(args.warmup, False)
            started = time.perf_counter()
            cpu_started = time.process_time()
            await opened(args.duration, True)
        else:
            warm = time.perf_counter() + args.warmup
            await asyncio.gather(*(closed(warm, False) for _ in range(args.concurrency)))
            started = time.perf_counter()
            cpu_started = time.process_time()
            deadline = started + args.duration
            await asyncio.gather(*(closed(deadline, True) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    return {
        "mode": args.mode,
        "url": url,
        "requests": requests,
        "failures": failures,
        "events_accepted": accepted,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(accepted / elapsed, 1),
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        "load_cpu_s": round(cpu, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector.load")
    parser.add_argument("url")
    parser.add_argument("--mode", choices=["batch", "single"], default="batch")
    parser.add_argument("--key", default="bench-key")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--bodies", type=int, default=200, help="distinct request bodies")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.mode == "single":
        args.batch_size = 1
    result = asyncio.run(run(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
