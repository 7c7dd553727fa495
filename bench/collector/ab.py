"""Two checkouts' collectors, end to end, in alternating runs:
`uv run python -m bench.collector.ab OTHER [--pairs 4] [--duration 10] [--rate R]`.

OTHER is another checkout of the repository (e.g. `git worktree add /tmp/before <commit>`);
its `collector` package is served with this checkout's interpreter and packages. Both publish
to one Pub/Sub emulator (started once and warmed up first, so that neither side gets a colder
JIT), one collector process at a time, driven by `bench.collector.load` in a closed loop
(16 connections, /v1/batch of 100 events), or with `--rate R` an open loop of R requests/s
(each run warmed up in a closed loop first). Pairs alternate their order (AB, BA, AB, ...)
so that a drift of the machine's load falls on both sides. Per run it prints events/s, the
collector's CPU per event (from /proc) and the emulator's share of a core; then the medians.

Why: end-to-end figures move by 10-20% between runs on this shared host, more than most
changes to the hot path; one run each way decides nothing. A measurement, not a test:
nothing is asserted. Every process it starts is stopped; every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench.collector.__main__ import load_average
from bench.collector.serve import collector, emulator_workspace
from bench.processes import ROOT
from devtools.services import Service


def run(source: Path, emulator: Service, work: Path, name: str, args: argparse.Namespace) -> dict:
    """One collector from `source`: warmed up in a closed loop, then measured."""
    with collector(source, emulator, work / f"collector-{name}.log", work / name) as served:
        served.load(args.warmup)
        result = served.load(args.duration, rate=args.rate)
    events = result["events"]
    return {
        "events_per_s": result["events_per_s"],
        "us_per_event": result["collector_cpu_s"] / events * 1e6 if events else float("nan"),
        "emulator": result["emulator_cores"],
        "p99_ms": result["p99_ms"],
    }


def figures(result: dict) -> str:
    """A run's figures (or their medians) on one line."""
    return (
        f"{result['events_per_s']:>9,.0f} events/s {result['us_per_event']:6.2f} us/event  "
        f"emulator {result['emulator']:.2f} core  p99 {result['p99_ms']:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector.ab")
    parser.add_argument("other", type=Path, help="the other checkout (B); A is this one")
    parser.add_argument("--pairs", type=int, default=4, help="alternating pairs of runs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before each run")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="an open loop of this many requests/s instead"
    )
    args = parser.parse_args(argv)
    sides = {"A": ROOT, "B": args.other.resolve()}
    if not (sides["B"] / "collector" / "__main__.py").is_file():
        parser.error(f"{sides['B']} is not a checkout with a collector package")
    print(f"A = {sides['A']}\nB = {sides['B']}\nload average {load_average()}", flush=True)
    results: dict[str, list[dict]] = {"A": [], "B": []}
    with emulator_workspace("bench-collector-ab-") as (work, emulator):
        print("warming up the emulator with A ...", flush=True)
        run(sides["A"], emulator, work, "warm-up", args)
        for pair in range(args.pairs):
            for side in "AB" if pair % 2 == 0 else "BA":
                result = run(sides[side], emulator, work, f"{side}{pair}", args)
                results[side].append(result)
                print(f"pair {pair + 1} {side}: {figures(result)}", flush=True)
    loop = f"open loop, {args.rate:.0f} requests/s" if args.rate else "closed loop"
    print(f"\nmedians of {args.pairs} runs each ({args.duration:.0f} s, {loop}):")
    for side in "AB":
        runs = results[side]
        medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"  {side}: {figures(medians)}")
    print(f"load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
