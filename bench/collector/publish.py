"""What a Publish RPC costs the collector: `uv run python -m bench.collector.publish`.

The collector's publisher (`collector.publisher.PubSubPublisher`, grpc.aio on uvloop, as in
the collector) sends encoded PublishRequests of the benchmark's events (~0.75 KB, framed by
`collector.wire` as the collector frames them) to the Pub/Sub emulator on 127.0.0.1, for
several sizes of RPC (messages per RPC) and RPCs in flight. For each it prints events/s and
this process's CPU per event and per RPC (from /proc, gRPC's own threads included), then
fits CPU per RPC = fixed + per message x messages over the sizes: what the coalescer
(`collector.coalescer`) saves per event by merging requests into fewer, larger RPCs.

Same-run baseline: `frame only`, the CPU per event of building the same requests without
sending them. Every run is bounded by --duration; the emulator is stopped at the end. A
measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime

import orjson
import uvloop

from bench.collector.__main__ import load_average
from bench.collector.events import event
from bench.collector.serve import emulator_workspace
from bench.processes import cpu_seconds
from collector import wire
from collector.publisher import PubSubPublisher

TOPIC = "projects/local-project/topics/bench-publish"
SIZES = (100, 230, 500, 1000)  # messages per RPC: one request alone ... Pub/Sub's maximum


def messages(count: int) -> list[bytes]:
    """`count` Pub/Sub messages framed as the collector frames the benchmark's events."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    found = []
    for _ in range(count):
        payload = event(rng, now)
        attributes = wire.attributes(
            {"source": "web", "type": payload["type"], "message_id": payload["messageId"]}
        )
        found.append(wire.message(orjson.dumps(payload), attributes))
    return found


async def publish_for(
    publisher: PubSubPublisher, request: bytes, in_flight: int, seconds: float
) -> int:
    """RPCs completed by `in_flight` concurrent senders in `seconds`."""
    stop = time.perf_counter() + seconds

    async def sender() -> int:
        sent = 0
        while time.perf_counter() < stop:
            await publisher.publish(TOPIC, request, 30)
            sent += 1
        return sent

    return sum(await asyncio.gather(*(sender() for _ in range(in_flight))))


async def measure(
    address: str, size: int, in_flight: int, seconds: float, pool: list[bytes]
) -> dict[str, float]:
    publisher = PubSubPublisher(address)
    await publisher.start()
    try:
        await publisher.ensure_topics([TOPIC], 30)
        request = wire.publish_request(TOPIC, pool[:size])
        await publish_for(publisher, request, in_flight, min(3.0, seconds))  # warm-up
        cpu, started = cpu_seconds(os.getpid()), time.perf_counter()
        rpcs = await publish_for(publisher, request, in_flight, seconds)
        cpu, wall = cpu_seconds(os.getpid()) - cpu, time.perf_counter() - started
    finally:
        await publisher.close()
    return {
        "events_per_s": rpcs * size / wall,
        "us_per_event": cpu / (rpcs * size) * 1e6,
        "us_per_rpc": cpu / rpcs * 1e6,
    }


def frame_only(pool: list[bytes], size: int, seconds: float) -> float:
    """CPU µs per event of framing the same requests, nothing sent (the baseline)."""
    cpu, stop, framed = time.process_time(), time.perf_counter() + seconds, 0
    while time.perf_counter() < stop:
        wire.publish_request(TOPIC, pool[:size])
        framed += size
    return (time.process_time() - cpu) / framed * 1e6


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares of CPU per RPC against messages per RPC: (fixed µs, µs per message)."""
    slope, intercept = statistics.linear_regression(*zip(*points, strict=True))
    return intercept, slope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector.publish")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs (median)")
    parser.add_argument("--in-flight", default="1,4", help="concurrent RPCs (the collector: 4)")
    args = parser.parse_args(argv)
    in_flights = [int(n) for n in args.in_flight.split(",")]
    pool = messages(max(SIZES))
    runs: dict[tuple[int, int], list[dict[str, float]]] = {}
    with emulator_workspace("bench-publish-") as (work, emulator):
        print(f"load average {load_average()}; emulator logs in {work}", flush=True)
        for repeat in range(args.repeat):
            for in_flight in in_flights:
                for size in SIZES:
                    print(
                        f"run {repeat + 1}: {size} messages/RPC, {in_flight} in flight", flush=True
                    )
                    result = uvloop.run(
                        measure(emulator.address, size, in_flight, args.duration, pool)
                    )
                    runs.setdefault((in_flight, size), []).append(result)
    report(runs, in_flights, pool, args)
    return 0


def report(
    runs: dict[tuple[int, int], list[dict[str, float]]],
    in_flights: list[int],
    pool: list[bytes],
    args: argparse.Namespace,
) -> None:
    size = sum(map(len, pool)) / len(pool)
    print(
        f"\nPublish RPCs to the Pub/Sub emulator, messages of {size:.0f} bytes framed; medians "
        f"of {args.repeat} alternating run(s) of {args.duration:.0f} s; CPU of this process"
    )
    print(f"{'in flight':>9} {'msgs/RPC':>9} {'events/s':>10} {'us/event':>9} {'us/RPC':>8}")
    for in_flight in in_flights:
        points = []
        for size in SIZES:
            results = runs[in_flight, size]
            median = {k: statistics.median(r[k] for r in results) for k in results[0]}
            points.append((size, median["us_per_rpc"]))
            print(
                f"{in_flight:>9} {size:>9} {median['events_per_s']:>10,.0f} "
                f"{median['us_per_event']:>9.2f} {median['us_per_rpc']:>8.0f}"
            )
        fixed, per_message = fit(points)
        print(
            f"  {in_flight} in flight: CPU per RPC ~ {fixed:.0f} us + {per_message:.2f} us per "
            f"message"
        )
    print(f"baseline, frame only (no RPC): {frame_only(pool, 230, 2.0):.3f} us/event")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
