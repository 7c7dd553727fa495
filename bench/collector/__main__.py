"""Collector benchmark: `uv run python -m bench.collector [--duration S] [--quick]`.

Starts, all on 127.0.0.1: the Pub/Sub emulator, the collector (`python -m collector`, one
uvicorn worker) and, for the floor, a bare ASGI endpoint that only parses the JSON
(`bench.collector.floor`, same uvicorn). A second process (`bench.collector.load`, aiohttp)
sends the load. Scenarios, each against the collector and then the floor:

- batch, max: /v1/batch, 100 events per request, closed loop (16 connections)
- batch @ 50k events/s: /v1/batch, 500 requests/s open loop (the target rate)
- single @ 500 req/s: /v1/track, one event per request, open loop

It prints events/s accepted, p50/p99 latency and the collector/floor ratio, and checks the
targets (>= 50,000 events/s with p99 < 50 ms through /v1/batch; single-event p99 < 20 ms at
500 requests/s) without asserting: this is a measurement, not a test. Everything it starts
is stopped by process group at the end; every loop is bounded by --duration.

The events topic has no subscription during the benchmark: the emulator keeps every message
of a subscription in its 512 MB heap, which 50,000 events/s fill in seconds. Delivery to
subscribers is what the tests check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.processes import ROOT, start, stop
from devtools.services import free_port, start_pubsub_emulator, wait_for_port

KEY = "bench-key"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def server_histogram(url: str, route: str) -> dict[float, float]:
    """Cumulative bucket counts of the collector's own request-duration histogram."""
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("collector_request_duration_seconds_bucket{") and (
            f'route="{route}"' in line
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """Upper bound of the q-quantile of what was observed between two scrapes."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not delta or delta[-1][1] <= 0:
        return "n/a"
    for le, count in delta:
        if count >= q * delta[-1][1]:
            return "> 10 s" if le == float("inf") else f"<= {le * 1000:g} ms"
    return "n/a"


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


def row(name: str, result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    return (
        f"  {name:<10} {result['events_per_s']:>12,.0f} {result['requests_per_s']:>9,.0f} "
        f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['failures']:>8}   "
        f"{cpu['server']:.2f} / {cpu['emulator']:.2f} / {cpu['load']:.2f} / "
        f"{cpu['others']:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--quick", action="store_true", help="3 s per scenario")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="seconds of load before measuring: the emulator is a JVM whose JIT needs "
        "tens of seconds of traffic before it reaches steady speed",
    )
    args = parser.parse_args(argv)
    duration = 3.0 if args.quick else args.duration
    work = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    print(f"benchmark work directory: {work} (logs)", flush=True)
    emulator = start_pubsub_emulator(work)
    collector_port, floor_port = free_port(), free_port()
    env = {
        **os.environ,
        "PLATFORM_ENV": "local",
        "PUBSUB_EMULATOR_HOST": emulator.address,
        "GCP_PROJECT": "local-project",
        "PUBSUB_EVENTS_TOPIC": "bench-events",
        "PUBSUB_DEAD_LETTER_TOPIC": "bench-events-dead-letter",
        "COLLECTOR_WRITE_KEYS": f"{KEY}=web",
        "COLLECTOR_SPOOL_DIR": str(work / "spool"),
        "COLLECTOR_HOST": "127.0.0.1",
        "COLLECTOR_PORT": str(collector_port),
    }
    processes = []
    try:
        collector = start(
            [sys.executable, "-m", "collector", "--log-level", "warning"],
            env,
            work / "collector.log",
        )
        processes.append(collector)
        floor = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.collector.floor:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(floor_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            work / "floor.log",
        )
        processes.append(floor)
        wait_for_port("127.0.0.1", collector_port, 60, collector)
        wait_for_port("127.0.0.1", floor_port, 60, floor)
        targets = {
            "collector": f"http://127.0.0.1:{collector_port}",
            "floor": f"http://127.0.0.1:{floor_port}",
        }
        common = ["--duration", str(duration), "--warmup", "2"]
        print(f"warming up the emulator and the collector ({args.warmup:.0f} s) ...", flush=True)
        load(
            targets["collector"],
            "--mode",
            "batch",
            "--concurrency",
            "16",
            "--duration",
            str(args.warmup),
            "--warmup",
            "0",
        )
        scenarios = [
            (
                "batch, max (closed loop, 16 connections, 100 events/request)",
                ["--mode", "batch", "--concurrency", "16", *common],
            ),
            (
                "batch @ 500 requests/s = 50,000 events/s (open loop)",
                ["--mode", "batch", "--rate", "500", *common],
            ),
            (
                "single @ 500 requests/s (open loop, /v1/track)",
                ["--mode", "single", "--rate", "500", "--bodies", "2000", *common],
            ),
        ]
        results: dict[str, dict[str, dict[str, object]]] = {}
        for title, extra in scenarios:
            results[title] = {}
            for name, url in targets.items():
                print(f"running: {title} against the {name} ...", flush=True)
                server = collector if name == "collector" else floor
                pids = {"server": server.pid, "emulator": emulator.process.pid}
                before = {k: cpu_seconds(p) for k, p in pids.items()}
                busy_before, total_before = machine_busy()
                route = "/v1/batch" if "batch" in extra else "/v1/track"
                histogram = server_histogram(url, route) if name == "collector" else {}
                started = time.perf_counter()
                result = load(url, *extra)
                if name == "collector":
                    after = server_histogram(url, route)
                    result["server_p50"] = histogram_quantile(histogram, after, 0.5)
                    result["server_p99"] = histogram_quantile(histogram, after, 0.99)
                wall = time.perf_counter() - started
                busy_after, total_after = machine_busy()
                cpu = {k: (cpu_seconds(p) - before[k]) / wall for k, p in pids.items()}
                cpu["load"] = result["load_cpu_s"] / result["elapsed_s"]
                machine = (busy_after - busy_before) / (total_after - total_before)
                cpu["others"] = max(0.0, machine * (os.cpu_count() or 1) - sum(cpu.values()))
                result["cpu"] = cpu
                results[title][name] = result
        print()
        print(
            f"machine: {os.cpu_count()} cores shared by load generator, collector and "
            f"emulator; {duration:.0f} s per scenario after a 2 s warm-up"
        )
        for title, pair in results.items():
            print(f"\n{title}")
            print(
                f"  {'target':<10} {'events/s':>12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
                f"{'failures':>8}   cores: server / emulator / load / other processes"
            )
            for name, result in pair.items():
                print(row(name, result))
            c, f = pair["collector"], pair["floor"]
            print(
                f"  inside the collector (its request-duration histogram, incl. the wait for "
                f"Pub/Sub): p50 {c['server_p50']}, p99 {c['server_p99']}"
            )
            if c["events_per_s"]:
                per_event = c["cpu"]["server"] / c["events_per_s"] * 1e6
                emulator_per_event = c["cpu"]["emulator"] / c["events_per_s"] * 1e6
                print(
                    f"  collector CPU per event: {per_event:.1f} us (one fully available core: "
                    f"~{1e6 / per_event:,.0f} events/s); emulator: {emulator_per_event:.1f} us"
                )
            ratio = c["events_per_s"] / f["events_per_s"] if f["events_per_s"] else float("nan")
            print(
                f"  collector/floor: {ratio:.2f} of the floor's events/s; p99 "
                f"{c['p99_ms']:.2f} ms vs {f['p99_ms']:.2f} ms"
            )
        batch_max = results[scenarios[0][0]]["collector"]
        batch_rate = results[scenarios[1][0]]["collector"]
        single = results[scenarios[2][0]]["collector"]
        print("\ntargets (collector):")
        print(
            f"  /v1/batch >= 50,000 events/s (max run): {batch_max['events_per_s']:,.0f} "
            f"-> {'met' if batch_max['events_per_s'] >= 50_000 else 'NOT met'}"
        )
        ok = batch_rate["events_per_s"] >= 49_000 and batch_rate["p99_ms"] < 50
        print(
            f"  /v1/batch at 50,000 events/s with p99 < 50 ms: "
            f"{batch_rate['events_per_s']:,.0f} events/s, p99 {batch_rate['p99_ms']:.2f} ms "
            f"-> {'met' if ok else 'NOT met'}"
        )
        print(
            f"  single event p99 < 20 ms at 500 requests/s: p99 {single['p99_ms']:.2f} ms -> "
            f"{'met' if single['p99_ms'] < 20 and single['failures'] == 0 else 'NOT met'}"
        )
    finally:
        for process in processes:
            stop(process)
        emulator.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
