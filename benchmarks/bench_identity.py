"""Identity stitching speed: from scratch and incremental, against NetworkX alone.

    python benchmarks/bench_identity.py [--customers 100000 1000000] [--runs 3]

For each size, builds identity records shaped like a retailer's (per customer: two logins from
two cookies, an order with the e-mail, a CRM contact with card, e-mail and phone, a receipt
with the card and a payment card; 1% of customers also sign in on a shared store tablet), then
measures in child processes, so each has its own peak memory:

- ``evidence``: records to links (:func:`identity.evidence`);
- ``resolve``: the guards and customers from scratch (:func:`identity.resolve`);
- ``update 1%``: a day that brings 1% more customers' records, decided incrementally
  (:func:`identity.update`) on top of the full result;
- ``networkx``: ``networkx.connected_components`` on the same links, no guards: the floor for a
  library-only stitch.

Reports median seconds and peak RSS; writes ``benchmarks/results/identity.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import json, resource, sys, time
from datetime import UTC, datetime, timedelta
import networkx as nx
import polars as pl
from journey_analytics import identity
from journey_analytics.config import IdentitySettings

customers, stage = int(sys.argv[1]), sys.argv[2]

def records(first, last):
    n = pl.int_range(first, last, eager=True)
    tag = n.cast(pl.String)
    day = pl.lit(datetime(2026, 1, 1, tzinfo=UTC))
    base = pl.DataFrame({"n": n, "t": tag})
    tablet = pl.when(pl.col("n") % 100 == 0).then(pl.lit("tablet-") + (pl.col("n") // 5000).cast(pl.String))
    frames = [
        base.select(pl.lit("web").alias("source"), day.alias("seen_at"), ("u" + pl.col("t")).alias("user_id"), ("a" + pl.col("t")).alias("anonymous_id")),
        base.select(pl.lit("app").alias("source"), day.alias("seen_at"), ("u" + pl.col("t")).alias("user_id"), ("b" + pl.col("t")).alias("anonymous_id")),
        base.select(pl.lit("web").alias("source"), day.alias("seen_at"), ("u" + pl.col("t")).alias("user_id"), ("e" + pl.col("t")).alias("email_hash")),
        base.select(pl.lit("crm").alias("source"), day.alias("seen_at"), ("L" + pl.col("t")).alias("loyalty_id"), ("e" + pl.col("t")).alias("email_hash"), ("p" + pl.col("t")).alias("phone_hash")),
        base.select(pl.lit("pos").alias("source"), day.alias("seen_at"), ("L" + pl.col("t")).alias("loyalty_id"), ("c" + pl.col("t")).alias("payment_hash")),
        base.select(pl.lit("web").alias("source"), day.alias("seen_at"), ("u" + pl.col("t")).alias("user_id"), tablet.alias("anonymous_id")).drop_nulls("anonymous_id"),
    ]
    return pl.concat(frames, how="diagonal_relaxed")

settings = IdentitySettings()
guards = identity.Guards(shared_limits=settings.shared_limits, customer_limits=settings.customer_limits)
blocked = settings.blocked_values
day_one = records(0, customers)
result = {}
if stage == "evidence":
    started = time.perf_counter()
    found = identity.evidence(day_one, blocked_values=blocked)
    result["seconds"] = time.perf_counter() - started
    result["links"] = found.links.height
elif stage == "resolve":
    found = identity.evidence(day_one, blocked_values=blocked)
    started = time.perf_counter()
    stitched = identity.resolve(found, guards)
    result["seconds"] = time.perf_counter() - started
    result["customers"] = stitched.customers.get_column("customer_key").n_unique()
elif stage == "update":
    stitched = identity.resolve(identity.evidence(day_one, blocked_values=blocked), guards)
    both = pl.concat([day_one, records(customers, customers + customers // 100)], how="diagonal_relaxed")
    started = time.perf_counter()
    found = identity.evidence(both, blocked_values=blocked)
    after, decided = identity.update(stitched, found, guards)
    result["seconds"] = time.perf_counter() - started
    result["decided"] = decided
elif stage == "networkx":
    found = identity.evidence(day_one, blocked_values=blocked)
    started = time.perf_counter()
    graph = nx.Graph()
    graph.add_nodes_from(found.identifiers.iter_rows())
    graph.add_edges_from(((lt, lv), (rt, rv)) for lt, lv, rt, rv in found.links.select(
        "left_type", "left_value", "right_type", "right_value").iter_rows())
    components = sum(1 for _ in nx.connected_components(graph))
    result["seconds"] = time.perf_counter() - started
    result["components"] = components
result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""

STAGES = ("evidence", "resolve", "update", "networkx")


def measure(customers: int, stage: str) -> dict[str, float]:
    """One child process: one stage at one size."""
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(customers), stage],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for customers in args.customers:
        for stage in STAGES:
            runs = [measure(customers, stage) for _ in range(args.runs)]
            seconds = statistics.median(run["seconds"] for run in runs)
            peak = max(run["peak_mb"] for run in runs)
            extra = {k: v for k, v in runs[0].items() if k not in {"seconds", "peak_mb"}}
            rows.append(
                {
                    "customers": customers,
                    "stage": stage,
                    "runs": args.runs,
                    "seconds": round(seconds, 3),
                    "peak_mb": round(peak, 1),
                    **extra,
                }
            )
            print(
                f"{customers:>10,} {stage:<9} median {seconds:7.2f} s over {args.runs} "
                f"runs, peak {peak:7.1f} MB  {extra}",
                flush=True,
            )
    out = HERE / "results" / "identity.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
