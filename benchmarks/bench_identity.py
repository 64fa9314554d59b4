"""Identity stitching speed: from scratch and incremental, against NetworkX alone.

    python benchmarks/bench_identity.py [--customers 100000 1000000] [--runs 3]

(medians of ``--runs`` runs up to 100,000 customers, one run above.)

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
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx
import polars as pl
from _measure import peak_rss_mb  # the benchmarks folder: this script's own

from journey_analytics import identity
from journey_analytics.config import IdentitySettings

HERE = Path(__file__).resolve().parent


def records(first: int, last: int) -> pl.DataFrame:
    """Identity records of customers ``first`` to ``last`` - 1 (see the module docstring)."""
    base = pl.DataFrame({"n": pl.int_range(first, last, eager=True)}).with_columns(
        pl.col("n").cast(pl.String).alias("t"),
        pl.lit(datetime(2026, 1, 1, tzinfo=UTC)).alias("seen_at"),
    )
    tablet = pl.when(pl.col("n") % 100 == 0).then(
        pl.lit("tablet-") + (pl.col("n") // 5000).cast(pl.String)
    )

    def record(source: str, **identifiers: pl.Expr) -> pl.DataFrame:
        columns = [expr.alias(name) for name, expr in identifiers.items()]
        return base.select(pl.lit(source).alias("source"), "seen_at", *columns)

    t = pl.col("t")
    return pl.concat(
        [
            record("web", user_id="u" + t, anonymous_id="a" + t),
            record("app", user_id="u" + t, anonymous_id="b" + t),
            record("web", user_id="u" + t, email_hash="e" + t),
            record("crm", loyalty_id="L" + t, email_hash="e" + t, phone_hash="p" + t),
            record("pos", loyalty_id="L" + t, payment_hash="c" + t),
            record("web", user_id="u" + t, anonymous_id=tablet).drop_nulls("anonymous_id"),
        ],
        how="diagonal_relaxed",
    )


def child(customers: int, stage: str) -> dict[str, float]:
    """One stage at one size, in this process; its seconds and this process's peak RSS."""
    settings = IdentitySettings()
    guards = identity.Guards(
        shared_limits=settings.shared_limits, customer_limits=settings.customer_limits
    )
    blocked = settings.blocked_values
    day_one = records(0, customers)
    result: dict[str, float] = {}
    if stage == "update":
        previous = identity.resolve(identity.evidence(day_one, blocked_values=blocked), guards)
        later = records(customers, customers + customers // 100)
        both = pl.concat([day_one, later], how="diagonal_relaxed")
        started = time.perf_counter()
        found = identity.evidence(both, blocked_values=blocked)
        _, result["decided"] = identity.update(previous, found, guards)
    else:
        started = time.perf_counter()
        found = identity.evidence(day_one, blocked_values=blocked)
        result["links"] = found.links.height
        if stage in {"resolve", "networkx"}:
            started = time.perf_counter()
        if stage == "resolve":
            stitched = identity.resolve(found, guards)
            result["found_customers"] = stitched.customers.get_column("customer_key").n_unique()
        elif stage == "networkx":
            graph = nx.Graph()
            graph.add_nodes_from(found.identifiers.iter_rows())
            pairs = found.links.select("left_type", "left_value", "right_type", "right_value")
            graph.add_edges_from(((lt, lv), (rt, rv)) for lt, lv, rt, rv in pairs.iter_rows())
            result["components"] = sum(1 for _ in nx.connected_components(graph))
    result["seconds"] = time.perf_counter() - started
    result["peak_mb"] = peak_rss_mb()
    return result


STAGES = ("evidence", "resolve", "update", "networkx")


def measure(customers: int, stage: str) -> dict[str, float]:
    """One child process: one stage at one size."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(customers), stage],
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
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    rows = []
    for customers in args.customers:
        for stage in STAGES:
            count = args.runs if customers <= 100_000 else 1  # as bench_ingest does
            runs = [measure(customers, stage) for _ in range(count)]
            seconds = statistics.median(run["seconds"] for run in runs)
            peak = max(run["peak_mb"] for run in runs)
            extra = {k: v for k, v in runs[0].items() if k not in {"seconds", "peak_mb"}}
            rows.append(
                {
                    "customers": customers,
                    "stage": stage,
                    "runs": count,
                    "seconds": round(seconds, 3),
                    "peak_mb": round(peak, 1),
                    **extra,
                }
            )
            print(
                f"{customers:>10,} {stage:<9} median {seconds:7.2f} s over {count} "
                f"runs, peak {peak:7.1f} MB  {extra}",
                flush=True,
            )
    out = HERE / "results" / "identity.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
