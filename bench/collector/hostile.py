"""What hostile requests cost the collector: `uv run python -m bench.collector.hostile`.

Starts the Pub/Sub emulator and the collector (`python -m collector`, its own process) on
127.0.0.1 and sends each case `--repeat` times, one request at a time. Per case it prints the
answer, the collector's CPU time per request (from /proc, so the load of other processes on
this machine does not count) and how much the collector's peak RSS (VmHWM) grew. The
same-run baseline is a valid 100-event batch. `--source DIR` runs the collector from another
checkout (e.g. `git archive <commit> collector platform_core | tar -x -C DIR`) to compare.
A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import httpx
import orjson

from bench.collector.serve import KEY, collector, emulator_workspace
from bench.processes import ROOT, cpu_seconds

MB = 1024 * 1024


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def event(i: int) -> dict[str, object]:
    return {"type": "track", "event": "Signed Up", "userId": f"u-{i}", "messageId": f"m-{i}"}


def cases() -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, body, headers) per case; every case is sent with the write key in the header
    unless its headers say otherwise."""
    auth = {"Authorization": "Bearer " + KEY}
    empty_members = b"".join(gzip.compress(b"") for _ in range(25_000))
    tiny = [{"type": "track", "event": "e", "userId": "u"} for _ in range(1000)]
    return [
        (
            "baseline: 100 valid events",
            orjson.dumps({"batch": [event(i) for i in range(100)]}),
            auth,
        ),
        (
            "430 KB context x 1,000 events",
            orjson.dumps({"batch": tiny, "context": {"blob": "x" * 430_000}}),
            auth,
        ),
        ("170k empty items", b'{"batch": [' + b",".join([b"{}"] * 170_000) + b"]}", auth),
        (
            "1,001 valid events",
            orjson.dumps({"batch": [event(i) for i in range(1001)]}),
            auth,
        ),
        ("25k empty gzip members", empty_members, {**auth, "Content-Encoding": "gzip"}),
        ("same, no write key", empty_members, {"Content-Encoding": "gzip"}),
        ("100k-deep array", b"[" * 100_000 + b"]" * 100_000, auth),
    ]


def measure(
    http: httpx.Client, pid: int, body: bytes, headers: dict[str, str], repeat: int
) -> tuple[str, float, float]:
    """(answer, collector CPU ms per request, client p50 ms)."""
    walls: list[float] = []
    answer = ""
    before = cpu_seconds(pid)
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.post("/v1/batch", content=body, headers=headers)
        walls.append(time.perf_counter() - started)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        code = response.json().get("code", "") if is_json else ""
        answer = f"{response.status_code} {code}".strip()
    cpu_ms = (cpu_seconds(pid) - before) / repeat * 1000
    return answer, cpu_ms, statistics.median(walls) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector.hostile")
    parser.add_argument("--repeat", type=int, default=20, help="requests per case")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run")
    args = parser.parse_args(argv)
    with emulator_workspace("bench-hostile-", keep=True) as (work, emulator):
        print(f"work directory: {work} (logs); collector from {args.source}", flush=True)
        # an unbounded collector fills a 64 MB spool, not the disk
        with collector(
            args.source,
            emulator,
            work / "collector.log",
            work / "spool",
            topic="hostile-events",
            COLLECTOR_SPOOL_MAX_MB="64",
        ) as served:
            rows = measure_cases(served.port, served.process.pid, args.repeat)
            final = peak_rss(served.process.pid) / MB
        print(
            f"\n{'case':<32} {'answer':<32} {'CPU ms/req':>10} {'p50 ms':>8} {'peak RSS +MB':>12}"
        )
        for name, answer, cpu_ms, wall_ms, grown in rows:
            print(f"{name:<32} {answer:<32} {cpu_ms:>10.1f} {wall_ms:>8.1f} {grown:>12.1f}")
        print(f"\ncollector peak RSS at the end: {final:.0f} MB ({args.repeat} requests per case)")
    return 0


def measure_cases(port: int, pid: int, repeat: int) -> list[tuple[str, str, float, float, float]]:
    """Each case `repeat` times: (name, answer, CPU ms per request, p50 ms, peak RSS growth)."""
    rows: list[tuple[str, str, float, float, float]] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
        measure(http, pid, cases()[0][1], cases()[0][2], 3)  # warm up
        for name, body, headers in cases():
            before = peak_rss(pid)
            answer, cpu_ms, wall_ms = measure(http, pid, body, headers, repeat)
            grown = max(0, peak_rss(pid) - before) / MB  # VmHWM is updated lazily
            rows.append((name, answer, cpu_ms, wall_ms, grown))
            print(f"  done: {name}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
