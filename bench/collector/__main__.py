"""Collector benchmark: `uv run python -m bench.collector [--workers 1,2] [--repeat 3]
[--duration S] [--quick]`.

Starts, all on 127.0.0.1: the Pub/Sub emulator, the collector (`python -m collector` with
COLLECTOR_WORKERS=N) and, for the floor, a bare ASGI endpoint that only parses the JSON
(`bench.collector.floor`, uvicorn with N workers too). A second process
(`bench.collector.load`, aiohttp) sends the load. For each worker count, scenarios, each
against the collector and then the floor (alternating, `--repeat` times; the figures printed
are the medians):

- batch, max: /v1/batch, 100 events per request, closed loop (16 connections)
- batch @ 50k and @ 80k events/s: /v1/batch, 500 and 800 requests/s, open loop
- batch @ 80% of max: open loop at 80% of the collector's closed-loop median (collector only)
- single @ 500 req/s: /v1/track, one event per request, open loop (one worker only)

It prints events/s accepted, p50/p99 latency, the CPU of the collector's processes (all its
workers, from /proc) per event accepted, the emulator's and the load generator's share of
the cores, the floor's figures from the same run, and the machine's load average before and
after. Nothing is asserted: this is a measurement, not a test. Everything it starts is
stopped by process group at the end; every loop is bounded by --duration.

The events topic has no subscription during the benchmark: the emulator keeps every message
of a subscription in its 512 MB heap, which 50,000 events/s fill in seconds. Delivery to
subscribers is what the tests check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.collector.serve import KEY, collector_env, emulator_workspace
from bench.processes import ROOT, cpu_seconds, descendants, start, stop
from devtools.services import free_port, wait_for_port


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def load(url: str, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.collector.load", url, "--key", KEY, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def tree_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids if Path(f"/proc/{pid}").exists())


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


BATCH_CLOSED = ["--mode", "batch", "--concurrency", "16"]


def scenarios(workers: int) -> list[tuple[str, list[str], bool]]:
    """(title, load arguments, whether the floor runs it too)."""
    found = [
        ("batch, max (closed loop, 16 connections, 100 events/request)", BATCH_CLOSED, True),
        ("batch @ 50,000 events/s (open loop, 500 requests/s)", rate(500), True),
        ("batch @ 80,000 events/s (open loop, 800 requests/s)", rate(800), True),
    ]
    if workers == 1:
        single = ["--mode", "single", "--rate", "500", "--bodies", "2000"]
        found.append(("single @ 500 requests/s (open loop, /v1/track)", single, True))
    return found


def rate(requests_per_s: float) -> list[str]:
    return ["--mode", "batch", "--rate", f"{requests_per_s:.0f}"]


class Target:
    """A server under test: its URL and the pids whose CPU is its CPU."""

    def __init__(self, name: str, process: subprocess.Popen, port: int) -> None:
        self.name = name
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.pids: list[int] = []

    def ready(self) -> None:
        wait_for_port("127.0.0.1", self.port, 90, self.process)
        time.sleep(1.0)  # every worker up
        self.pids = [self.process.pid, *descendants(self.process.pid)]


def measure(target: Target, emulator_pid: int, extra: list[str], duration: float) -> dict:
    before = tree_cpu_seconds(target.pids)
    emulator_before = cpu_seconds(emulator_pid)
    busy_before, total_before = machine_busy()
    started = time.perf_counter()
    result = load(target.url, *extra, "--duration", str(duration), "--warmup", "2")
    wall = time.perf_counter() - started
    busy_after, total_after = machine_busy()
    server_s = tree_cpu_seconds(target.pids) - before
    cpu = {
        "server": server_s / wall,
        "emulator": (cpu_seconds(emulator_pid) - emulator_before) / wall,
        "load": result["load_cpu_s"] / result["elapsed_s"],
    }
    machine = (busy_after - busy_before) / (total_after - total_before)
    cpu["others"] = max(0.0, machine * (os.cpu_count() or 1) - sum(cpu.values()))
    result["cpu"] = cpu
    # CPU per event: the server's CPU over the whole load run (warm-up included) per event
    # accepted over that run (the measured rate held over the whole wall time)
    events = result["events_per_s"] * wall
    result["us_per_event"] = server_s / events * 1e6 if events else float("nan")
    return result


def median(results: list[dict]) -> dict:
    """The median of each figure over repeated runs."""
    keys = ["events_per_s", "requests_per_s", "p50_ms", "p99_ms", "failures", "us_per_event"]
    out: dict[str, Any] = {k: statistics.median(r[k] for r in results) for k in keys}
    out["cpu"] = {k: statistics.median(r["cpu"][k] for r in results) for k in results[0]["cpu"]}
    out["runs"] = len(results)
    out["all_us_per_event"] = [round(r["us_per_event"], 2) for r in results]
    out["all_events_per_s"] = [round(r["events_per_s"]) for r in results]
    return out


def row(name: str, result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    return (
        f"  {name:<10} {result['events_per_s']:>10,.0f} {result['p50_ms']:>8.2f} "
        f"{result['p99_ms']:>8.2f} {result['failures']:>6.0f} {result['us_per_event']:>8.2f}"
        f"   {cpu['server']:.2f} / {cpu['emulator']:.2f} / {cpu['load']:.2f} / "
        f"{cpu['others']:.2f}"
    )


def start_targets(work: Path, env: dict[str, str], workers: int) -> tuple[Target, Target]:
    collector_port, floor_port = free_port(), free_port()
    collector_env = {
        **env,
        "COLLECTOR_WORKERS": str(workers),
        "COLLECTOR_SPOOL_DIR": str(work / f"spool-{workers}"),
        "COLLECTOR_PORT": str(collector_port),
    }
    collector = start(
        [sys.executable, "-m", "collector", "--log-level", "warning"],
        collector_env,
        work / f"collector-{workers}.log",
    )
    floor = start(
        [sys.executable, "-m", "uvicorn", "bench.collector.floor:app", "--host", "127.0.0.1"]
        + ["--port", str(floor_port), "--workers", str(workers), "--no-access-log"]
        + ["--log-level", "warning"],
        env,
        work / f"floor-{workers}.log",
    )
    targets = Target("collector", collector, collector_port), Target("floor", floor, floor_port)
    for target in targets:
        target.ready()
    return targets


def run_workers(
    work: Path, env: dict[str, str], emulator_pid: int, workers: int, args: argparse.Namespace
) -> dict[str, dict[str, dict]]:
    """Every scenario for one worker count: {title: {target: median result}}."""
    collector, floor = start_targets(work, env, workers)
    try:
        print(f"[{workers} worker(s)] warming up ({args.warmup:.0f} s) ...", flush=True)
        load(collector.url, *BATCH_CLOSED, "--duration", str(args.warmup), "--warmup", "0")
        load(floor.url, *BATCH_CLOSED, "--duration", "3", "--warmup", "0")
        runs: dict[str, dict[str, list[dict]]] = {}
        plan = scenarios(workers)
        for repeat in range(args.repeat):
            for title, extra, with_floor in plan:
                for target in (collector, floor) if with_floor else (collector,):
                    step = f"[{workers} worker(s)] run {repeat + 1}: {title}: {target.name}"
                    print(step, flush=True)
                    result = measure(target, emulator_pid, extra, args.duration)
                    runs.setdefault(title, {}).setdefault(target.name, []).append(result)
            # open loop at 80% of this worker count's closed-loop maximum so far
            best = statistics.median(r["events_per_s"] for r in runs[plan[0][0]]["collector"])
            title = "batch @ 80% of the collector's max (open loop)"
            extra = rate(0.8 * best / 100)
            print(f"[{workers} worker(s)] run {repeat + 1}: {title}: {extra[-1]} req/s", flush=True)
            result = measure(collector, emulator_pid, extra, args.duration)
            result["rate"] = 0.8 * best
            runs.setdefault(title, {}).setdefault("collector", []).append(result)
        return {t: {n: median(rs) for n, rs in by.items()} for t, by in runs.items()}
    finally:
        stop(collector.process)
        stop(floor.process)


def report(results: dict[int, dict[str, dict[str, dict]]], args: argparse.Namespace) -> None:
    print(
        f"\nmachine: {os.cpu_count()} cores shared by load generator, collector, emulator and "
        f"other users; {args.duration:.0f} s per run after a 2 s warm-up; medians of "
        f"{args.repeat} alternating run(s)"
    )
    for workers, by_title in results.items():
        print(f"\n=== {workers} collector worker(s), floor with {workers} uvicorn worker(s)")
        for title, pair in by_title.items():
            print(f"\n{title}")
            print(
                f"  {'target':<10} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'fails':>6} "
                f"{'us/event':>8}   cores: server / emulator / load / other processes"
            )
            for name, result in pair.items():
                print(row(name, result))
            c, f = pair["collector"], pair.get("floor")
            if f and f["events_per_s"]:
                print(
                    f"  collector/floor: {c['events_per_s'] / f['events_per_s']:.2f} of the "
                    f"floor's events/s; CPU per event {c['us_per_event']:.2f} us vs the floor's "
                    f"{f['us_per_event']:.2f} us (collector's own work: "
                    f"{c['us_per_event'] - f['us_per_event']:.2f} us)"
                )
            if c["runs"] > 1:
                print(
                    f"  collector runs: {c['all_events_per_s']} events/s, "
                    f"{c['all_us_per_event']} us/event"
                )
    print("\ntargets (collector):")
    for workers, by_title in results.items():
        titles = list(by_title)
        closed, at80 = by_title[titles[0]]["collector"], by_title[titles[-1]]["collector"]
        print(
            f"  {workers} worker(s): CPU per event (closed loop) {closed['us_per_event']:.2f} us "
            f"-> {'met' if closed['us_per_event'] <= 6 else 'NOT met'} (<= 6 us); max "
            f"{closed['events_per_s']:,.0f} events/s with the emulator on "
            f"{closed['cpu']['emulator']:.2f} cores; p99 at 80% of max "
            f"{at80['p99_ms']:.1f} ms -> {'met' if at80['p99_ms'] < 50 else 'NOT met'} (< 50 ms)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--quick", action="store_true", help="3 s per run, one repeat")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs (median)")
    parser.add_argument("--workers", default="1,2", help="collector worker counts")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="seconds of load before measuring: the emulator is a JVM whose JIT needs "
        "tens of seconds of traffic before it reaches steady speed",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeat = 3.0, 1
    results = {}
    with emulator_workspace("bench-collector-", keep=args.keep) as (work, emulator):
        print(f"benchmark work directory: {work} (logs); load average {load_average()}", flush=True)
        env = collector_env(emulator.address)
        load_before = load_average()
        for workers in (int(w) for w in args.workers.split(",")):
            results[workers] = run_workers(work, env, emulator.process.pid, workers, args)
    report(results, args)
    print(f"\nload average (1, 5, 15 min): {load_before} before, {load_average()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
