"""Ingest speed: Segment JSON lines into DuckDB, against a plain ``read_json`` as the floor.

    python benchmarks/bench_ingest.py [--events 1000000 10000000] [--runs 3]

For each size, writes that many Segment ``track`` messages (12 weekly files), then measures in
child processes, so each has its own peak memory:

- ``journey ingest``: ``jobs.ingest_sources`` for one web source (parse, validate, hash PII,
  dedupe, write ``raw.clickstream``, ``quarantine.rejects``, ``ops.batches``);
- ``read_json floor``: DuckDB's ``read_json`` of the same files into a table, no validation.

Reports the median seconds, events/s and peak RSS, and the ratio to the floor; writes
``benchmarks/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD_INGEST = """
import json, sys, time
from _measure import peak_rss_mb
from pathlib import Path
from journey_analytics import jobs
from journey_analytics.config import load_settings
settings = load_settings(Path(sys.argv[1]))
started = time.perf_counter()
reports = jobs.ingest_sources(settings)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": sum(r.rows_read for r in reports),
                  "peak_mb": peak_rss_mb()}))
"""
CHILD_FLOOR = """
import json, sys, time
from _measure import peak_rss_mb
import duckdb
folder, database, ignore = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.perf_counter()
con = duckdb.connect(database)
source = f"read_json('{folder}/*.jsonl', format='newline_delimited', ignore_errors={ignore})"
con.execute(f"create table raw as select * from {source}")
rows = con.execute("select count(*) from raw").fetchone()[0]
con.close()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": rows,
                  "peak_mb": peak_rss_mb()}))
"""


def write_events(folder: Path, events: int, seed: int = 1, malformed: float = 0.0) -> None:
    """Segment track messages, ~30 per anonymous id, spread over 12 weekly files; a share
    ``malformed`` of the lines cut short in the middle (not JSON)."""
    rng = random.Random(seed)
    cut = random.Random(seed + 1)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    names = ["Product Viewed", "Products Searched", "Product Added", "Order Completed"]
    files = [(folder / f"web-{week:02d}.jsonl").open("w") for week in range(12)]
    try:
        for n in range(events):
            at = start + timedelta(seconds=rng.randrange(84 * 86400))
            name = rng.choices(names, weights=[60, 20, 15, 5])[0]
            properties: dict[str, object] = {
                "product_id": f"P{rng.randrange(60):03d}",
                "category": "shoes",
                "price": 89.9,
            }
            if name == "Order Completed":
                properties |= {
                    "order_id": f"O-{n}",
                    "revenue": 89.9,
                    "currency": "EUR",
                    "fulfilment": "delivery",
                }
            message = {
                "type": "track",
                "event": name,
                "messageId": f"m-{n:09d}",
                "anonymousId": f"a-{n // 30:08d}",
                "userId": f"u-{n // 60:08d}" if rng.random() < 0.3 else None,
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                "properties": properties,
                "context": {"page": {"url": "https://shop.example/p", "referrer": ""}},
            }
            line = json.dumps(message)
            if malformed and cut.random() < malformed:
                line = line[: len(line) // 2]
            files[(at - start).days // 7].write(line + "\n")
    finally:
        for handle in files:
            handle.close()


def _child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        env={  # for ``_measure``
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        },
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(events: int, runs: int, malformed: float = 0.0) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clickstream"
        folder.mkdir()
        write_events(folder, events, malformed=malformed)
        (Path(tmp) / "stores.csv").write_text("store_id,name,region,timezone\n")
        results = []
        for runner, code in (("journey ingest", CHILD_INGEST), ("read_json floor", CHILD_FLOOR)):
            samples = []
            for run in range(runs):
                database = Path(tmp) / f"{runner.split()[0]}-{run}.duckdb"
                config = Path(tmp) / "journey.toml"
                config.write_text(
                    f'stores = "stores.csv"\n[sources.web]\nkind = "segment"\n'
                    f'path = "clickstream/*.jsonl"\nchannel = "web"\n[privacy]\nhash_key = "k"\n'
                    f'[output]\ndatabase = "{database}"\n'
                )
                ignore = "true" if malformed else "false"  # the floor skips bad lines
                args = (
                    (str(config),) if code is CHILD_INGEST else (str(folder), str(database), ignore)
                )
                samples.append(_child(code, *args))
                database.unlink(missing_ok=True)
            seconds = statistics.median(s["seconds"] for s in samples)
            results.append(
                {
                    "events": events,
                    "malformed": malformed,
                    "runner": runner,
                    "runs": runs,
                    "seconds": round(seconds, 2),
                    "events_per_second": round(events / seconds),
                    "peak_rss_mb": round(max(s["peak_mb"] for s in samples), 1),
                    "rows": int(samples[0]["rows"]),
                }
            )
        floor = results[1]["seconds"]
        for result in results:
            result["times_floor"] = round(float(result["seconds"]) / float(floor), 2)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--malformed",
        type=float,
        default=0.0,
        help="share of lines cut short (the floor then reads with ignore_errors)",
    )
    args = parser.parse_args()
    rows = []
    for events in args.events:
        rows += measure(events, args.runs if events <= 1_000_000 else 1, args.malformed)
    print(
        f"{'events':>12} {'runner':<16} {'runs':>4} {'seconds':>9} {'events/s':>10} "
        f"{'peak MB':>8} {'x floor':>7}"
    )
    for r in rows:
        print(
            f"{r['events']:>12,} {r['runner']:<16} {r['runs']:>4} {r['seconds']:>9} "
            f"{r['events_per_second']:>10,} {r['peak_rss_mb']:>8} {r['times_floor']:>7}"
        )
    name = f"ingest-malformed-{args.malformed:g}.json" if args.malformed else "ingest.json"
    out = HERE / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()}, 2 cores, Python {platform.python_version()}",
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
