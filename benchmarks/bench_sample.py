"""Speed and peak memory of the simulator (``journey sample``) against a plain json.dumps loop.

Each measurement runs in a child process, which reports its wall time and its own peak resident
memory (``VmHWM``, `_measure.peak_rss_mb`). The baseline writes the same number of
Segment-like JSON lines with a plain ``json.dumps`` loop: the floor for any Python generator
that writes JSON lines.

    python benchmarks/bench_sample.py                    # 1M (median of 3) and 10M (1 run)
    python benchmarks/bench_sample.py --events 1000000   # one size only

Writes ``benchmarks/results/sample.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import peak_rss_mb  # the benchmarks folder: this script's own

RESULTS = Path(__file__).resolve().parent / "results" / "sample.json"
SEED = 42


def _child_simulator(customers: int, out: Path) -> dict[str, float]:
    from journey_analytics.sample import generate_sample  # noqa: PLC0415

    started = time.perf_counter()
    summary = generate_sample(out, customers=customers, seed=SEED)
    seconds = time.perf_counter() - started
    rows = sum(n for name, n in summary.files.items() if not name.startswith("truth/"))
    return {"seconds": seconds, "events": summary.events, "rows": rows}


def _child_baseline(events: int, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with (out / "baseline.jsonl").open("w", encoding="utf-8") as handle:
        for number in range(events):
            message = {
                "type": "track",
                "event": "Product Viewed",
                "messageId": f"web-{number // 10:07d}-{number % 10:04d}",
                "anonymousId": f"a-{number:016x}",
                "userId": None,
                "timestamp": "2026-02-03T10:15:00.000Z",
                "sentAt": "2026-02-03T10:15:01.000Z",
                "receivedAt": "2026-02-03T10:15:01.412Z",
                "properties": {"product_id": "P012", "category": "shoes", "price": 89.9},
                "context": {"page": {"url": "https://shop.example/product/P012", "referrer": ""}},
            }
            handle.write(json.dumps(message, separators=(",", ":")) + "\n")
    return {"seconds": time.perf_counter() - started, "events": events, "rows": events}


def _run_child(kind: str, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--child", kind, str(size), tmp]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def _events_per_customer() -> float:
    probe = _run_child("simulator", 5000)
    return probe["events"] / 5000


def _measure(kind: str, size: int, runs: int) -> dict[str, float]:
    results = [_run_child(kind, size) for _ in range(runs)]
    seconds = statistics.median(r["seconds"] for r in results)
    events = results[0]["events"]
    return {
        "events": events,
        "rows": results[0]["rows"],
        "runs": runs,
        "seconds": round(seconds, 2),
        "events_per_second": round(events / seconds),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="target size (repeatable)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size, out = args.child[0], int(args.child[1]), Path(args.child[2])
        runner = _child_simulator if kind == "simulator" else _child_baseline
        result = runner(size, out / "out")
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    sizes = args.events or [1_000_000, 10_000_000]
    ratio = _events_per_customer()
    rows = []
    for size in sizes:
        runs = 3 if size <= 1_000_000 else 1
        customers = math.ceil(size / ratio)
        simulator = _measure("simulator", customers, runs)
        baseline = _measure("baseline", int(simulator["events"]), runs)
        rows.append(
            {
                "target_events": size,
                "customers": customers,
                "simulator": simulator,
                "baseline_json_dumps": baseline,
            }
        )
        print(f"{size:>11,} done", file=sys.stderr)
    # keep the other sizes of an earlier run, so sizes can be measured one at a time
    if RESULTS.is_file():
        earlier = json.loads(RESULTS.read_text(encoding="utf-8"))["results"]
        measured = {row["target_events"] for row in rows}
        rows = sorted(
            [*(r for r in earlier if r["target_events"] not in measured), *rows],
            key=lambda r: r["target_events"],
        )
    report = {
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpus(),
            "system": platform.platform(),
        },
        "seed": SEED,
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_table(rows)


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _print_table(rows: list[dict[str, object]]) -> None:
    print("| events | customers | runner | runs | seconds | events/s | peak RSS MB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        for runner in ("simulator", "baseline_json_dumps"):
            r = row[runner]
            assert isinstance(r, dict)
            print(
                f"| {r['events']:,} | {row['customers']:,} | {runner} | {r['runs']} | "
                f"{r['seconds']} | {r['events_per_second']:,} | {r['peak_rss_mb']} |"
            )


if __name__ == "__main__":
    main()
