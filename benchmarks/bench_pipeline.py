"""End to end: a simulated retailer's raw files to the dashboard, per stage, and a daily run.

    python benchmarks/bench_pipeline.py                          # 1M (median of 3) and 10M (1 run)
    python benchmarks/bench_pipeline.py --events 1000000 --runs 3
    python benchmarks/bench_pipeline.py --events 100000000 --memory-limit 8GB --runs 1

For each size, the simulator (``journey sample``, default config, noise on unless
``--no-noise``) writes enough customers for that many events, in one process per core, into
``--data`` (kept between runs: the same arguments give the same files). The newest ~1% of the
rows (the tail of each source's newest weekly files: the latest rows of the customers written
last, so ~3,000 of 110,000 customers at 1M; receipts and receipt lines are cut separately, so
a few receipts arrive a day before or after their lines, as the simulator's noise also does)
are held back as the next day's delivery.

Each measurement runs in child processes (each reports its own peak resident memory):

- **full run**: an empty database, then the stages in the order of ``journey run``'s flow,
  each the same ``jobs`` function its task calls -- ingest (every source), core (canonical
  events and identity stitching), journeys (sessions, journeys, steps, patterns), marts (with
  the graph exports) and the dashboard;
- **daily run**: in a second child, the same stages once the held-back day's files are in
  (ingest loads only the new files, core makes events of their rows only, journeys are
  rebuilt only for the customers they touch).

- **floor** (the baseline, in the same run): a third child does the least any pipeline must
  do with the same base files, in DuckDB alone with no checks -- read the Segment, CRM and POS
  files into tables (bad lines skipped), union them into one event table, give anonymous
  events the user of their cookie's first login (one hop, no identity graph), split sessions
  on 30-minute gaps and count the touchpoint transitions. No quarantine, duplicates, keyed
  hashes, time zones, journeys, patterns, attribution, marts or dashboard.

Prefect's own start-up (a temporary API server, ~15 s, the same for any size) is left out: the
stages are what grows with the data. Writes ``benchmarks/results/pipeline.json`` and prints a
table (medians, with the machine).
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
from typing import Any

from _measure import library_commit, peak_rss_mb  # the benchmarks folder: this script's own

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "pipeline.json"
SEED = 1
DAY_SHARE = 0.01
STAGES = ("ingest", "core", "journeys", "marts", "dashboard")
# the sources' files (DESIGN.md §4), by the config's globs; contacts are one file, kept whole
SOURCE_GLOBS = (
    "clickstream/web-*.jsonl",
    "clickstream/app-*.jsonl",
    "crm/interactions*.csv",
    "pos/receipts*.csv",
    "pos/receipt_lines*.csv",
)


def _child_stages(config: str) -> dict[str, Any]:
    """The flow's stages in order, each timed; the process's peak memory."""
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    settings = load_settings(Path(config))
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}  # the process's peak after each stage (it only grows)

    def timed(stage: str, function: Any) -> Any:
        started = time.perf_counter()
        result = function()
        seconds[stage] = time.perf_counter() - started
        peaks[stage] = peak_rss_mb()
        return result

    batches = timed("ingest", lambda: jobs.ingest_sources(settings))
    core = timed("core", lambda: jobs.build_core(settings))
    built = timed("journeys", lambda: jobs.build_journeys(settings))
    timed("marts", lambda: jobs.build_marts(settings))
    timed("dashboard", lambda: jobs.export_dashboard(settings))
    return {
        "seconds": seconds,
        "peak_rss_mb_after": peaks,
        "rows_read": sum(b.rows_read for b in batches),
        "files": len(batches),
        "events": core.events,
        "core_mode": core.mode,
        "events_written": core.events_written,
        "customers": core.customers,
        "journeys": built.journeys,
        "journey_mode": built.mode,
        "customers_rebuilt": built.customers_rebuilt,
        "peak_rss_mb": peak_rss_mb(),
    }


# The floor's steps, in order: DuckDB SQL over the base files ($data), nothing checked.
FLOOR_STEPS = (
    (
        "read",
        """create table click as select * from read_json('$data/clickstream/*.jsonl',
               format = 'newline_delimited', ignore_errors = true,
               columns = {messageId: 'VARCHAR', type: 'VARCHAR', event: 'VARCHAR',
                          anonymousId: 'VARCHAR', userId: 'VARCHAR', timestamp: 'TIMESTAMPTZ',
                          properties: 'JSON', traits: 'JSON', context: 'JSON'});
           create table interactions as select * from read_csv('$data/crm/interactions*.csv',
               all_varchar = true, header = true, ignore_errors = true, strict_mode = false);
           create table receipts as select * from read_csv('$data/pos/receipts*.csv',
               all_varchar = true, header = true, ignore_errors = true, strict_mode = false);
           create table receipt_lines as select * from read_csv('$data/pos/receipt_lines*.csv',
               all_varchar = true, header = true, ignore_errors = true, strict_mode = false)""",
    ),
    (
        "events",
        """create table events as
           select messageId as event_id, anonymousId as anonymous_id, coalesce(userId, anonymousId)
                  as person, coalesce(event, type) as touchpoint, timestamp as occurred_at
           from click
           union all
           select interaction_id, null, loyalty_id, type, try_cast(occurred_at as timestamptz)
           from interactions
           union all
           select receipt_id, null, loyalty_id, 'store_purchase',
                  try_cast(receipt_ts || 'Z' as timestamptz)
           from receipts""",
    ),
    (
        "identity",
        """create table keyed as
           select events.*, coalesce(logins.user_id, events.person) as customer
           from events left join (
               select anonymousId as anonymous_id, min(userId) as user_id from click
               where userId is not null group by all
           ) as logins using (anonymous_id)""",
    ),
    (
        "sessions",
        """create table sessions as
           with gaps as (
               select customer, occurred_at, (occurred_at - lag(occurred_at) over by_customer
                      > interval 30 minutes) is not false as is_new_session
               from keyed window by_customer as (partition by customer order by occurred_at)
           ), numbered as (
               select *, sum(is_new_session::int) over (partition by customer order by occurred_at
                      rows unbounded preceding) as session_number
               from gaps
           )
           select customer, session_number, min(occurred_at) as started_at,
                  max(occurred_at) as ended_at, count(*) as events
           from numbered group by all""",
    ),
    (
        "transitions",
        """create table transitions as
           select touchpoint, next_touchpoint, count(*) as transitions,
                  count(distinct customer) as customers
           from (select customer, touchpoint, coalesce(lead(touchpoint) over (
                     partition by customer order by occurred_at), 'END') as next_touchpoint
                 from keyed)
           group by all""",
    ),
)


def _child_floor(data: str) -> dict[str, Any]:
    """The floor's steps in a new database next to the run's; seconds per step, peak memory."""
    import duckdb  # noqa: PLC0415

    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=Path(data).parent) as tmp:
        connection = duckdb.connect(str(Path(tmp) / "floor.duckdb"))
        for step, sql in FLOOR_STEPS:
            started = time.perf_counter()
            connection.execute(sql.replace("$data", data))  # a path of ours, not user input
            seconds[step] = time.perf_counter() - started
        (events,) = connection.sql("select count(*) from events").fetchall()[0]
        connection.close()
    return {"seconds": seconds, "events": events, "peak_rss_mb": peak_rss_mb()}


def _events_per_customer() -> float:
    """Events per customer of the default config, from a 5,000-customer probe."""
    from journey_analytics.sample import generate_sample  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        return generate_sample(Path(tmp), customers=5000, seed=SEED).events / 5000


def simulated(data: Path, customers: int, *, noise: bool) -> Path:
    """The simulator's files for ``customers``, generated once into ``data`` and kept."""
    folder = data / f"sim-{customers}-seed{SEED}-{'noise' if noise else 'clean'}"
    if (folder / "complete").is_file():
        return folder
    from journey_analytics.sample import generate_sample, load_simulator_config  # noqa: PLC0415

    config = load_simulator_config()
    started = time.perf_counter()
    generate_sample(
        folder / "all",
        customers=customers,
        seed=SEED,
        config=config if noise else config.without_noise(),
        workers=len(os.sched_getaffinity(0)),
    )
    print(f"simulated {customers:,} customers in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)  # fmt: skip
    _hold_back_a_day(folder)
    (folder / "complete").write_text("", encoding="utf-8")
    return folder


def _hold_back_a_day(folder: Path) -> None:
    """Splits the files into ``base/`` (symlinks, and the cut newest weekly files) and ``day/``:
    the last ``DAY_SHARE`` of each source's rows, taken from the end of its newest weekly
    files (with the header for CSV)."""
    everything = folder / "all"
    for path in sorted(everything.rglob("*")):
        if path.is_file() and "truth" not in path.parts:
            target = folder / "base" / path.relative_to(everything)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    for pattern in SOURCE_GLOBS:
        files = sorted(everything.glob(pattern))
        lines = [f.read_bytes().splitlines(keepends=True) for f in files]
        header = 0 if pattern.endswith(".jsonl") else 1
        wanted = math.ceil(sum(len(rows) - header for rows in lines) * DAY_SHARE)
        for path, rows in reversed(list(zip(files, lines, strict=True))):  # the newest first
            if wanted <= 0:
                break
            keep = max(header, len(rows) - wanted)
            wanted -= len(rows) - keep
            relative = path.relative_to(everything)
            (folder / "base" / relative).unlink()
            if keep > header:
                (folder / "base" / relative).write_bytes(b"".join(rows[:keep]))
            day = folder / "day" / relative.with_name(f"{relative.stem}-day{relative.suffix}")
            day.parent.mkdir(parents=True, exist_ok=True)
            day.write_bytes(b"".join([*rows[:header], *rows[keep:]]))


def _config(run: Path, memory_limit: str | None) -> Path:
    """The committed config, its sources pointed at ``run/data``, its outputs in ``run``."""
    text = (ROOT / "journey.toml").read_text(encoding="utf-8")
    text = text.replace('"data/sample/', f'"{run}/data/')
    text = text.replace('"journeys.duckdb"', f'"{run}/journeys.duckdb"')
    text = text.replace('reports_dir = "reports"', f'reports_dir = "{run}/reports"')
    if memory_limit:
        text += f'\n[scale]\nmemory_limit = "{memory_limit}"\nwork_dir = "{run}/work"\n'
    path = run / "journey.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _link_files(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())


def _run_child(config: Path, *, mode: str = "--child") -> dict[str, Any]:
    command = [sys.executable, __file__, mode, str(config)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        done.check_returncode()
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def measure_once(
    folder: Path, memory_limit: str | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A full run on the base files, then a daily run with the held-back day added; and the
    floor on the same base files."""
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        run = Path(tmp)
        _link_files(folder / "base", run / "data")
        floor = _run_child(run / "data", mode="--floor")
        config = _config(run, memory_limit)
        full = _run_child(config)
        _link_files(folder / "day", run / "data")
        day = _run_child(config)
    return full, day, floor


def _summary(results: list[dict[str, Any]], *, rates: bool = True) -> dict[str, Any]:
    """Medians over the runs: per stage and end to end, with events per second (``rates``;
    not for a daily run, whose stages handle ~1% of the events, not all of them)."""
    events = results[0]["events"]
    stages = {}
    for stage in STAGES:
        seconds = statistics.median(r["seconds"][stage] for r in results)
        stages[stage] = {
            "seconds": round(seconds, 2),
            "events_per_second": round(events / seconds) if seconds and rates else None,
            "peak_rss_mb_after": round(max(r["peak_rss_mb_after"][stage] for r in results), 1),
        }
    total = statistics.median(sum(r["seconds"].values()) for r in results)
    return {
        "runs": len(results),
        "events": events,
        "rows_read": results[0]["rows_read"],
        "files": results[0]["files"],
        "customers": results[0]["customers"],
        "core_mode": results[0].get("core_mode"),
        "events_written": results[0].get("events_written"),
        "journeys": results[0]["journeys"],
        "journey_mode": results[0]["journey_mode"],
        "customers_rebuilt": results[0]["customers_rebuilt"],
        "stages": stages,
        "seconds": round(total, 2),
        "events_per_second": round(events / total) if rates else None,
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
        "all_seconds": [round(sum(r["seconds"].values()), 2) for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3, help="runs at 1M events or fewer")
    parser.add_argument("--runs-large", type=int, default=1, help="runs above 1M events")
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "bench-pipeline")
    parser.add_argument("--noise", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--memory-limit", help="[scale] memory_limit for the runs, e.g. 8GB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child_stages(args.child)))
        return
    if args.floor:
        print(json.dumps(_child_floor(args.floor)))
        return
    args.data.mkdir(parents=True, exist_ok=True)
    ratio = _events_per_customer()
    rows = []
    for size in args.events:
        customers = math.ceil(size / ratio)
        folder = simulated(args.data, customers, noise=args.noise)
        runs = args.runs if size <= 1_000_000 else args.runs_large
        measured = [measure_once(folder, args.memory_limit) for _ in range(runs)]
        full = _summary([f for f, _, _ in measured])
        day = _summary([d for _, d, _ in measured], rates=False)
        floor = _floor_summary([f for _, _, f in measured])
        rows.append(
            {
                "target_events": size,
                "customers": customers,
                "noise": args.noise,
                "memory_limit": args.memory_limit,
                "full": full,
                "day": day,
                "day_share_of_full": round(day["seconds"] / full["seconds"], 3),
                "floor": floor,
                "full_times_floor": round(full["seconds"] / floor["seconds"], 2),
            }
        )
        print(f"{size:>11,} done", file=sys.stderr)
    key = ("target_events", "noise", "memory_limit")
    commit = library_commit(ROOT)
    for row in rows:
        row["commit"] = commit
    kept: dict[str, Any] = {}  # what an earlier run recorded besides the results (profiles)
    if RESULTS.is_file():  # keep the other sizes of an earlier run: sizes one at a time
        kept = json.loads(RESULTS.read_text(encoding="utf-8"))
        earlier, before = kept.pop("results"), kept.pop("commit", None)
        for row in earlier:  # measured when one commit was recorded for all rows
            row.setdefault("commit", before)
        measured_keys = {tuple(r[k] for k in key) for r in rows}
        rows = [r for r in earlier if tuple(r[k] for k in key) not in measured_keys] + rows
        rows.sort(key=lambda r: (r["target_events"], not r["noise"], r["memory_limit"] or ""))
    report = {
        **kept,
        "machine": {
            "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)),
            "system": platform.platform(),
        },
        "seed": SEED,
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(rows)


def _floor_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the floor's runs, per step and in all."""
    return {
        "runs": len(results),
        "events": results[0]["events"],
        "steps": {
            step: round(statistics.median(r["seconds"][step] for r in results), 2)
            for step, _ in FLOOR_STEPS
        },
        "seconds": round(statistics.median(sum(r["seconds"].values()) for r in results), 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
        "all_seconds": [round(sum(r["seconds"].values()), 2) for r in results],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """The README's table: per stage seconds (events/s), end to end and peak memory; then the
    floor of each size and the full run's multiple of it."""
    head = " | ".join(f"{s} s (events/s)" for s in STAGES)
    print(f"| events | run | runs | {head} | end to end s | peak RSS MB |")
    print("|---:|---|---:|" + "---:|" * (len(STAGES) + 2))
    for row in rows:
        for run in ("full", "day"):
            r = row[run]
            cells = " | ".join(_cell(r["stages"][stage]) for stage in STAGES)
            label = "full" if run == "full" else f"day +1% ({row['day_share_of_full']:.0%} of full)"
            print(
                f"| {r['events']:,} | {label} | {r['runs']} | {cells} | {r['seconds']} | "
                f"{r['peak_rss_mb']:,.0f} |"
            )
    print()
    steps = " | ".join(f"{step} s" for step, _ in FLOOR_STEPS)
    print(f"| events | floor runs | {steps} | floor s | peak RSS MB | full run x floor |")
    print("|---:|---:|" + "---:|" * (len(FLOOR_STEPS) + 3))
    for row in rows:
        if "floor" not in row:  # recorded before the floor was measured
            continue
        f = row["floor"]
        cells = " | ".join(str(f["steps"][step]) for step, _ in FLOOR_STEPS)
        print(
            f"| {f['events']:,} | {f['runs']} | {cells} | {f['seconds']} | "
            f"{f['peak_rss_mb']:,.0f} | {row['full_times_floor']} |"
        )


def _cell(stage: dict[str, Any]) -> str:
    rate = stage["events_per_second"]
    return f"{stage['seconds']} ({rate:,})" if rate is not None else f"{stage['seconds']} (–)"  # noqa: RUF001


if __name__ == "__main__":
    main()
