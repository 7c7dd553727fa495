"""What a request costs the collector, apart from its events:
`uv run python -m bench.collector.batch_sizes [--sizes 10,25,100,400] [--repeat 2]`.

One collector publishing to the Pub/Sub emulator, driven in a closed loop (16 connections)
with /v1/batch bodies of each size in turn (alternating, `--repeat` times). Per size it
prints events/s and the collector's CPU per request and per event, then fits CPU per request
= fixed + per event x events over the sizes' medians: the fixed part is what every request
costs (HTTP, routing, the answer, a share of a Publish RPC), the slope what each event adds
(decoding, checking, stamping, encoding, its bytes through HTTP and gRPC). With SDKs sending
100 events per request (the end-to-end benchmark's bodies), CPU per event = slope + fixed /
100: which of the two a change must shrink. Same-run baseline: the smallest size's figures.

A measurement, not a test: nothing is asserted; every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench.collector.__main__ import load_average
from bench.collector.serve import collector, emulator_workspace
from bench.processes import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector.batch_sizes")
    parser.add_argument("--sizes", default="10,25,100,400", help="events per request")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs (median)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of load first")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if len(sizes) < 2 or min(sizes) < 1 or max(sizes) > 500:
        parser.error("--sizes: at least two batch sizes of 1 to 500 events")
    print(f"load average {load_average()}", flush=True)
    per_request: dict[int, list[float]] = {size: [] for size in sizes}
    with (
        emulator_workspace("bench-collector-sizes-") as (work, emulator),
        collector(ROOT, emulator, work / "collector.log", work / "spool") as served,
    ):
        print(f"warming up ({args.warmup:.0f} s) ...", flush=True)
        served.load(args.warmup)
        for repeat in range(args.repeat):
            for size in sizes if repeat % 2 == 0 else reversed(sizes):
                result = served.load(args.duration, batch_size=size)
                us = result["collector_cpu_s"] / result["requests"] * 1e6
                per_request[size].append(us)
                print(
                    f"run {repeat + 1}, {size:>3} events/request: "
                    f"{result['events_per_s']:>9,.0f} events/s "
                    f"{result['requests_per_s']:>7,.0f} requests/s  {us:7.0f} us/request "
                    f"{us / size:6.2f} us/event",
                    flush=True,
                )
    medians = {size: statistics.median(values) for size, values in per_request.items()}
    print(f"\nmedians of {args.repeat} run(s) of {args.duration:.0f} s:")
    for size, us in medians.items():
        print(f"  {size:>3} events/request: {us:7.0f} us/request {us / size:6.2f} us/event")
    slope, fixed = statistics.linear_regression(list(medians), list(medians.values()))
    print(
        f"fit: CPU per request ~ {fixed:.0f} us + {slope:.2f} us per event; at 100 events per "
        f"request: {fixed / 100:.2f} + {slope:.2f} = {fixed / 100 + slope:.2f} us per event"
    )
    print(f"load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
