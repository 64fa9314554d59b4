"""Analytics speed: sessions, journeys and the transition graph, against DuckDB SQL and pandas.

    python benchmarks/bench_analytics.py                        # 1M (median of 3) and 10M (1 run)
    python benchmarks/bench_analytics.py --events 1000000 --runs 3
    python benchmarks/bench_analytics.py --events 10000000 --profile   # + our stages, one by one
    python benchmarks/bench_analytics.py --quiet-load 1.5       # wait for a quiet machine first

For each size, writes N synthetic canonical events (``core.events`` columns that the analytics
read; seeded, so the same N gives the same file) to one Parquet file under ``--build``, then
runs in child processes, so each has its own peak memory, five implementations of the same
computation, each timed from reading the Parquet file to the finished transition graph:

- ``journey-analytics``: the library as ``jobs.build_journeys`` runs it on one shard of
  events (default config; a run splits more events than ``[scale] events_per_shard`` into
  such shards):
  ``reconstruct.rebuild`` (sessions, steps, journeys and transition edges in one pass on
  integer keys), then ``Rebuilt.graph()`` (``graphs.transition_graph`` of its edges, which
  name journeys and customers by number: the ``all`` segment, node and edge attributes);
- ``journey-parquet``: the library in bounded memory: ``reconstruct.rebuild_groups`` with each
  group's tables written to Parquet as it finishes (``jobs.write_journey_shards``), then the
  graph of all groups' edges;
- ``stage-functions``: the library's readable reference stages one after another, as runs
  did before ``rebuild``: ``sessions.assign_sessions`` + ``summarise_sessions``,
  ``journeys.assign_journeys`` + ``summarise_journeys``, ``graphs.transition_edges`` +
  ``transition_graph``;
- ``duckdb-sql``: the same rules as plain DuckDB SQL (window functions, group-bys and joins, in
  an in-memory database), the graph built from the aggregated node and edge tables;
- ``pandas``: the same rules with pandas (sort, then ``shift``/``cumsum``/``groupby``).

Each produces: the sessions table (one row per session), the steps (one row per event with
journey and position), the journeys table (status, conversion, revenue, cleaned path), and the
transition graph (per edge: transitions, customers, probability, median and p90 seconds; per
node: visits, journeys, customers, conversions, exits, exit rate). Every run's counts and graph
must be identical across the three (the run fails otherwise); at sizes up to
``--check-up-to`` (default 2M) the first run of each also writes its sessions, journeys and
steps tables (after its timing), which must be identical row by row.

Reports the median wall seconds, CPU seconds, events/s and peak RSS of each, with the load
average before each run (the machine may be shared); writes
``benchmarks/results/analytics.json`` (sizes not run this time are kept) and prints a markdown
table. ``--profile`` adds one run of our implementation with each stage timed separately (and
the process's peak RSS after it). Never used for timed assertions in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _measure import library_commit, peak_rss_mb  # the benchmarks folder: this script's own

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "analytics.json"
SEED = 20261201

# The default config (config.SessionSettings, JourneySettings, PathSettings).
TIMEOUTS_MINUTES = {"web": 30.0, "app": 30.0, "store": 120.0, "phone": 0.0}
DEFAULT_TIMEOUT_MINUTES = 30.0
JOURNEY_TIMEOUT = timedelta(days=30)
NOISE = ("sign_in",)  # journeys.noise_touchpoints and paths.drop_touchpoints
SEPARATOR = " > "
START, CONVERSION, DROP_OFF = "START", "CONVERSION", "DROP_OFF"
IMPLEMENTATIONS = (
    "journey-analytics",
    "journey-parquet",
    "stage-functions",
    "duckdb-sql",
    "pandas",
)
# What all five read from the file: the columns the rules use and those of ``journeys.steps``
# (the file also has fulfilment, product_id, category, store_id, which none of them reads).
COLUMNS = (
    "event_id",
    "customer_key",
    "channel",
    "touchpoint",
    "stage",
    "occurred_at",
    "is_conversion",
    "order_id",
    "revenue",
)


# --------------------------------------------------------------------------------------------
# Synthetic canonical events
# --------------------------------------------------------------------------------------------

PERIOD_START = datetime(2026, 1, 5, tzinfo=UTC)
PERIOD_DAYS = 180
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000

CHANNELS = ("web", "app", "email", "store", "phone", "chat")
CHANNEL_SHARE = (0.40, 0.25, 0.17, 0.11, 0.04, 0.03)
SOURCE = {"web": "web", "app": "app", "email": "crm", "store": "pos", "phone": "crm", "chat": "crm"}
# touchpoint -> stage (21 touchpoints)
STAGES = {
    "home_view": "awareness",
    "category_view": "interest",
    "search": "interest",
    "product_view": "interest",
    "add_to_cart": "consideration",
    "remove_from_cart": "consideration",
    "wishlist_add": "consideration",
    "help_view": "consideration",
    "sign_in": "consideration",
    "checkout_start": "consideration",
    "order_placed": "purchase",
    "review": "loyalty",
    "email_open": "awareness",
    "email_click": "interest",
    "store_visit": "consideration",
    "try_on": "consideration",
    "store_purchase": "purchase",
    "store_pickup": "usage",
    "return": "usage",
    "call": "consideration",
    "chat": "consideration",
}
TOUCHPOINTS = tuple(STAGES)
# what a web/app visit opens with, and what follows
FIRST_ONLINE = {
    "home_view": 0.30,
    "search": 0.15,
    "category_view": 0.10,
    "product_view": 0.35,
    "sign_in": 0.10,
}
NEXT_ONLINE = {
    "product_view": 0.34,
    "search": 0.12,
    "category_view": 0.10,
    "home_view": 0.06,
    "add_to_cart": 0.12,
    "wishlist_add": 0.05,
    "remove_from_cart": 0.03,
    "help_view": 0.03,
    "sign_in": 0.05,
    "checkout_start": 0.10,
}
WITH_PRODUCT = {"product_view", "add_to_cart", "remove_from_cart", "wishlist_add", "try_on"}


def generate_events(events: int, seed: int = SEED):  # -> pl.DataFrame
    """``events`` canonical events of ~``events / 10`` customers over 180 days (see README).

    Visits (web/app bursts of ~3.6 events with ~1.5-minute gaps, 3% of gaps over 30 minutes and
    0.5% exactly 30 minutes; an e-mail open and maybe a click; a store visit, try-ons and maybe a
    purchase, at whole minutes, so that some events share an instant; a call; a chat) cluster
    around a centre per customer (normal, sd 20 days). 13% of web/app visits of 2+ events and 30%
    of store visits end in a conversion with an ``order_id``. Of the web/app orders 30% are
    click and collect, picked up in a store 1 hour to 5 days later (1 in 10 by another customer,
    who was stitched apart); 4% of orders are returned in a store, 8% reviewed on the web after
    a ``sign_in`` (noise attached to the order's journey). Rows are in time order.
    """
    import numpy as np  # noqa: PLC0415
    import polars as pl  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    customers = max(1, events // 10)
    centres = rng.integers(0, PERIOD_DAYS * DAY_US, customers)
    visits = int(events / 2.75) + 100  # ~2.9 events per visit with the extras; trimmed below
    customer = rng.integers(0, customers, visits)
    channel = rng.choice(len(CHANNELS), visits, p=CHANNEL_SHARE)
    at = centres[customer] + (rng.normal(0, 20, visits) * DAY_US).astype(np.int64)
    at = np.clip(at, 0, PERIOD_DAYS * DAY_US - 1)
    online = channel <= 1
    store = channel == CHANNELS.index("store")
    email = channel == CHANNELS.index("email")
    length = np.ones(visits, dtype=np.int64)
    length[online] = 1 + rng.geometric(1 / 2.6, online.sum())
    length[email] = 1 + (rng.random(email.sum()) < 0.35)
    length[store] = rng.geometric(1 / 1.8, store.sum())
    converts = np.zeros(visits, dtype=bool)
    converts[online] = (rng.random(online.sum()) < 0.13) & (length[online] >= 2)
    converts[store] = rng.random(store.sum()) < 0.30

    # one row per event of a visit
    visit = np.repeat(np.arange(visits), length)
    first_row = np.cumsum(length) - length
    position = np.arange(visit.size) - first_row[visit]
    last = position == length[visit] - 1
    ch = channel[visit]
    rows = visit.size
    gap = rng.exponential(90e6, rows).astype(np.int64)  # 1.5 minutes
    long_gap = rng.random(rows)
    gap = np.where(long_gap < 0.03, rng.integers(31, 240, rows) * MINUTE_US, gap)
    gap = np.where(long_gap > 0.995, 30 * MINUTE_US, gap)  # exactly the web/app timeout
    gap = np.where(ch == CHANNELS.index("store"), rng.integers(0, 25, rows) * MINUTE_US, gap)
    gap[position == 0] = 0
    starts = at[visit]
    starts = np.where(ch == CHANNELS.index("store"), starts // MINUTE_US * MINUTE_US, starts)
    # cumulative gap within the visit
    total = np.cumsum(gap)
    occurred = starts + total - total[first_row][visit]  # gap at a visit's first row is 0
    touch = np.empty(rows, dtype=object)
    names_first, p_first = list(FIRST_ONLINE), list(FIRST_ONLINE.values())
    names_next, p_next = list(NEXT_ONLINE), list(NEXT_ONLINE.values())
    is_online = ch <= 1
    touch[:] = np.where(
        position == 0,
        np.array(names_first)[rng.choice(len(names_first), rows, p=p_first)],
        np.array(names_next)[rng.choice(len(names_next), rows, p=p_next)],
    )
    touch[ch == CHANNELS.index("email")] = np.where(
        position[ch == CHANNELS.index("email")] == 0, "email_open", "email_click"
    )
    is_store = ch == CHANNELS.index("store")
    touch[is_store] = np.where(position[is_store] == 0, "store_visit", "try_on")
    touch[ch == CHANNELS.index("phone")] = "call"
    touch[ch == CHANNELS.index("chat")] = "chat"
    conversion = converts[visit] & last
    touch[conversion & is_online] = "order_placed"
    touch[conversion & is_store] = "store_purchase"
    order = np.full(rows, -1, dtype=np.int64)
    order[conversion] = np.arange(conversion.sum())
    base = {
        "visit": visit,
        "customer": customer[visit],
        "channel": ch,
        "touchpoint": touch.astype(str),
        "occurred": occurred,
        "order": order,
    }

    # after the orders: pickups, returns, reviews (each row keeps its order's visit)
    orders = np.flatnonzero(conversion)
    online_order = is_online[orders]
    collect = online_order & (rng.random(orders.size) < 0.30)
    returned = rng.random(orders.size) < 0.04
    reviewed = rng.random(orders.size) < 0.08
    extra: list[dict[str, np.ndarray]] = []

    def follow(
        chosen: np.ndarray,
        channel_name: str,
        touchpoint: str,
        delay: np.ndarray,
        *,
        who: np.ndarray | None = None,
        with_order: bool = True,
    ) -> None:
        rows_of = orders[chosen]
        extra.append(
            {
                "visit": visit[rows_of],
                "customer": customer[visit[rows_of]] if who is None else who,
                "channel": np.full(rows_of.size, CHANNELS.index(channel_name)),
                "touchpoint": np.full(rows_of.size, touchpoint),
                "occurred": occurred[rows_of] + delay,
                "order": order[rows_of] if with_order else np.full(rows_of.size, -1),
            }
        )

    n = collect.sum()
    other = np.where(
        rng.random(n) < 0.10,
        rng.integers(0, customers, n),
        customer[visit[orders[collect]]],
    )
    follow(collect, "store", "store_pickup", rng.integers(60, 5 * 1440, n) * MINUTE_US, who=other)
    follow(
        returned, "store", "return", rng.integers(3 * 1440, 25 * 1440, returned.sum()) * MINUTE_US
    )
    review_delay = rng.integers(3 * DAY_US, 15 * DAY_US, reviewed.sum())
    follow(reviewed, "web", "sign_in", review_delay, with_order=False)
    follow(reviewed, "web", "review", review_delay + 40_000_000)

    columns = {k: np.concatenate([base[k], *(e[k] for e in extra)]) for k in base}
    by_visit = np.argsort(columns["visit"], kind="stable")
    keep = by_visit[:events]  # the first ``events`` rows in visit order: whole visits, but one
    frame = pl.DataFrame({k: v[keep] for k, v in columns.items()})
    count = frame.height
    ids = rng.permutation(count)  # event ids not in time order
    store_of = rng.integers(0, 20, count)
    product = rng.integers(0, 200, count)
    revenue = np.round(rng.lognormal(4.2, 0.6, count), 2)
    channel_names = pl.Series(CHANNELS)
    stage = pl.col("touchpoint").replace_strict(STAGES, return_dtype=pl.String)
    has_order = pl.col("order") >= 0
    is_conversion = pl.col("touchpoint").is_in(["order_placed", "store_purchase"])
    frame = frame.with_columns(
        pl.Series("ids", ids),
        pl.Series("store_of", store_of),
        pl.Series("product", product),
        pl.Series("revenue_", revenue),
        pl.col("channel").map_batches(channel_names.gather, return_dtype=pl.String),
    )
    # a click-and-collect order is the one whose pickup exists: fix the draw to agree
    collected = set(order[orders[collect]].tolist())
    frame = frame.with_columns(
        pl.concat_str(
            pl.col("channel").replace_strict(SOURCE, return_dtype=pl.String),
            pl.lit(":"),
            pl.col("ids").cast(pl.String).str.zfill(10),
        ).alias("event_id"),
        ("c_" + pl.col("customer").cast(pl.String).str.zfill(9)).alias("customer_key"),
        stage.alias("stage"),
        (pl.lit(PERIOD_START) + pl.duration(microseconds=pl.col("occurred")))
        .dt.cast_time_unit("us")
        .dt.convert_time_zone("UTC")
        .alias("occurred_at"),
        is_conversion.alias("is_conversion"),
        pl.when(has_order)
        .then("O" + pl.col("order").cast(pl.String).str.zfill(9))
        .alias("order_id"),
        pl.when(pl.col("channel") == "store")
        .then("S" + pl.col("store_of").cast(pl.String).str.zfill(2))
        .alias("store_id"),
        pl.when(pl.col("touchpoint").is_in(list(WITH_PRODUCT)))
        .then("P" + pl.col("product").cast(pl.String).str.zfill(3))
        .alias("product_id"),
        pl.when(pl.col("touchpoint").is_in(list(WITH_PRODUCT)))
        .then("cat" + (pl.col("product") // 20).cast(pl.String))
        .alias("category"),
        pl.when(is_conversion).then(pl.col("revenue_")).alias("revenue"),
        pl.when(is_conversion & (pl.col("touchpoint") == "store_purchase"))
        .then(pl.lit("in_store"))
        .when(is_conversion)
        .then(
            pl.when(pl.col("order").is_in(list(collected)))
            .then(pl.lit("click_and_collect"))
            .otherwise(pl.lit("delivery"))
        )
        .alias("fulfilment"),
    )
    return frame.select(
        *COLUMNS,
        "fulfilment",
        "product_id",
        "category",
        "store_id",
    ).sort("occurred_at", "event_id")


# --------------------------------------------------------------------------------------------
# The three implementations. Each returns {"sessions": frame, "journeys": frame, "graph":
# DiGraph, "steps": row count}; the graph is the finished product (timing stops after it).
# --------------------------------------------------------------------------------------------


def _laps(stages: dict[str, float] | None):  # -> Callable[[str], None]
    """A function that records, under a stage's name, the seconds since the last call and
    the peak RSS so far (nothing when ``stages`` is None)."""
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        if stages is not None:
            now = time.perf_counter()
            stages[name] = now - clock[0]
            stages[f"{name} peak_mb"] = _peak_mb()
            clock[0] = now

    return lap


# read by the library's two runners as Categorical: a code of 4 bytes a row instead of a
# 16-byte string view (``reconstruct.rebuild`` then keeps the sessions' and journeys' channel
# and touchpoint columns Categorical too)
CODED = ("channel", "touchpoint", "stage")


def read_coded(path: Path, columns: tuple[str, ...] = COLUMNS):  # -> pl.DataFrame
    """The events of ``path`` with the ``CODED`` columns as Categorical, converted as the
    file is read (streamed): the strings are never all in memory at once."""
    import polars as pl  # noqa: PLC0415

    return (
        pl.scan_parquet(path)
        .select(columns)
        .with_columns(pl.col(CODED).cast(pl.Categorical))
        .collect(engine="streaming")
    )


def run_ours(
    path: Path, stages: dict[str, float] | None = None, columns: tuple[str, ...] = COLUMNS
) -> dict[str, object]:
    """The library as ``jobs.build_journeys`` runs it on one shard: ``reconstruct.rebuild``,
    then the graph, on the events read with ``read_coded``. With ``stages``, records each
    stage's seconds and the peak RSS after it."""

    from journey_analytics import reconstruct  # noqa: PLC0415

    lap = _laps(stages)

    events = read_coded(path, columns)
    lap("read_parquet")
    built = reconstruct.rebuild(
        events,
        timeouts_minutes=TIMEOUTS_MINUTES,
        default_timeout_minutes=DEFAULT_TIMEOUT_MINUTES,
        timeout=JOURNEY_TIMEOUT,
        noise_touchpoints=NOISE,
        as_of=events.get_column("occurred_at").max(),  # jobs.end_of_data without ingested_at
        drop_touchpoints=NOISE,
        collapse_repeats=True,
        shards=reconstruct.shards_for(events.height),  # as jobs.build_journey_shard
        workers=os.cpu_count() or 1,
    )
    lap("rebuild")
    graph = built.graph()
    lap("transition_graph")
    return {
        "sessions": built.sessions,
        "journeys": built.journeys,
        "graph": graph,
        "steps": built.steps.height,
        "steps_frame": built.steps,
    }


def run_parquet(path: Path, folder: Path, stages: dict[str, float] | None = None) -> dict:
    """The library in bounded memory: ``reconstruct.rebuild_groups`` with each group's
    sessions, steps and journeys written to Parquet under ``folder`` as it finishes
    (``jobs.write_journey_shards``), then the graph of all the groups' edges."""

    from journey_analytics import jobs, reconstruct  # noqa: PLC0415

    lap = _laps(stages)
    events = read_coded(path)
    lap("read_parquet")
    rules = reconstruct.Rules(
        timeouts_minutes=TIMEOUTS_MINUTES,
        default_timeout_minutes=DEFAULT_TIMEOUT_MINUTES,
        max_session_minutes=None,
        timeout=JOURNEY_TIMEOUT,
        noise_touchpoints=NOISE,
        as_of=events.get_column("occurred_at").max(),  # type: ignore[arg-type]
        drop_touchpoints=NOISE,
        collapse_repeats=True,
        max_length=None,
        aliases={},
    )
    groups = reconstruct.rebuild_groups(
        events, rules, shards=reconstruct.shards_for(events.height), workers=os.cpu_count() or 1
    )
    written = jobs.write_journey_shards(groups, folder)
    lap("rebuild_and_write")
    graph = written.graph()
    lap("transition_graph")
    return {"graph": graph, "steps": written.rows["steps"], "folder": folder}


def run_stages(
    path: Path, stages: dict[str, float] | None = None, columns: tuple[str, ...] = COLUMNS
) -> dict[str, object]:
    """The reference stage functions one after another. With ``stages``, records each
    stage's seconds and the peak RSS after it."""
    import polars as pl  # noqa: PLC0415

    from journey_analytics import graphs, journeys, sessions  # noqa: PLC0415

    lap = _laps(stages)

    events = pl.read_parquet(path, columns=list(columns))
    lap("read_parquet")
    in_sessions = sessions.assign_sessions(
        events, timeouts_minutes=TIMEOUTS_MINUTES, default_timeout_minutes=DEFAULT_TIMEOUT_MINUTES
    )
    lap("assign_sessions")
    session_table = sessions.summarise_sessions(in_sessions)
    lap("summarise_sessions")
    steps = journeys.assign_journeys(in_sessions, timeout=JOURNEY_TIMEOUT, noise_touchpoints=NOISE)
    lap("assign_journeys")
    as_of = events.get_column("occurred_at").max()  # jobs.end_of_data without ingested_at
    summary = journeys.summarise_journeys(
        steps,
        timeout=JOURNEY_TIMEOUT,
        as_of=as_of,
        drop_touchpoints=NOISE,
        collapse_repeats=True,
    )
    lap("summarise_journeys")
    edges = graphs.transition_edges(steps, summary, drop_touchpoints=NOISE, collapse_repeats=True)
    lap("transition_edges")
    graph = graphs.transition_graph(edges)
    lap("transition_graph")
    return {
        "sessions": session_table,
        "journeys": summary,
        "graph": graph,
        "steps": steps.height,
        "steps_frame": steps,
    }


def _timeout_case(column: str) -> str:
    cases = " ".join(
        f"when '{name}' then {int(minutes * 60_000_000)}"
        for name, minutes in TIMEOUTS_MINUTES.items()
    )
    return f"case {column} {cases} else {int(DEFAULT_TIMEOUT_MINUTES * 60_000_000)} end"


def duckdb_statements(path: Path) -> list[str]:
    """The computation as DuckDB SQL: one ``create table`` per intermediate result."""
    noise = ", ".join(f"'{name}'" for name in NOISE)
    journey_timeout_us = int(JOURNEY_TIMEOUT.total_seconds() * 1_000_000)
    event_order = "occurred_at, is_conversion, event_id"
    return [
        # sessions: a gap over the channel's timeout (or a new customer/channel) starts one
        f"""
        create table in_sessions as
        with timed as (
            select {", ".join(COLUMNS)}, epoch_us(occurred_at) as us,
                {_timeout_case("channel")} as timeout_us
            from read_parquet('{path}')
        ), marked as (
            select *,
                coalesce(us - lag(us) over w > timeout_us, true) or timeout_us = 0 as starts
            from timed
            window w as (
                partition by customer_key, channel order by occurred_at, is_conversion, event_id
            )
        )
        select * exclude (starts, timeout_us),
            's:' || last_value(case when starts then event_id end ignore nulls) over (
                partition by customer_key, channel order by occurred_at, is_conversion, event_id
                rows between unbounded preceding and current row
            ) as session_id
        from marked
        """,
        """
        create table sessions as
        select session_id,
            any_value(customer_key) as customer_key,
            any_value(channel) as channel,
            min(occurred_at) as started_at,
            max(occurred_at) as ended_at,
            count(*) as events,
            arg_min(touchpoint, (occurred_at, is_conversion, event_id)) as first_touchpoint,
            arg_max(touchpoint, (occurred_at, is_conversion, event_id)) as last_touchpoint,
            (max(us) - min(us)) / 1e6 as duration_seconds
        from in_sessions
        group by session_id
        """,
        # journeys: fulfilment steps of an order (its first conversion) follow that order
        f"""
        create table flagged as
        with conversions as (
            select order_id,
                arg_min(event_id, (occurred_at, event_id)) as conversion_event_id,
                min(occurred_at) as converted_at
            from in_sessions
            where is_conversion and order_id is not null
            group by order_id
        ), flagged as (
            select e.*, c.conversion_event_id, c.converted_at,
                not e.is_conversion and c.conversion_event_id is not null
                    and e.occurred_at >= c.converted_at as is_fulfilment,
                not e.is_conversion and e.touchpoint in ({noise}) as is_noise
            from in_sessions e left join conversions c using (order_id)
        ), noise_sessions as (
            -- a session of only fulfilment steps and noise: its noise joins the first step's order
            select session_id,
                arg_min(conversion_event_id, ({event_order}))
                    filter (where is_fulfilment) as noise_conversion,
                arg_min(converted_at, ({event_order}))
                    filter (where is_fulfilment) as noise_converted_at
            from flagged
            group by session_id
            having bool_and(is_fulfilment or is_noise) and noise_conversion is not null
        ), attached as (
            select f.*, n.noise_conversion,
                n.noise_conversion is not null and f.is_noise and not f.is_fulfilment
                    and f.occurred_at >= n.noise_converted_at as attach  -- never before the sale
            from flagged f left join noise_sessions n using (session_id)
        )
        select * exclude (conversion_event_id, converted_at, is_fulfilment, is_noise,
                          noise_conversion, attach),
            case when attach then noise_conversion else conversion_event_id end
                as conversion_event_id,
            is_fulfilment or attach as is_fulfilment
        from attached
        """,
        # a journey starts at a customer's first event, after a conversion, after a long gap
        f"""
        create table main_steps as
        with marked as (
            select *,
                coalesce(lag(is_conversion) over w or us - lag(us) over w > {journey_timeout_us},
                         true) as starts
            from flagged
            where not is_fulfilment
            window w as (partition by customer_key order by {event_order})
        )
        select * exclude (starts),
            'j:' || last_value(case when starts then event_id end ignore nulls) over (
                partition by customer_key order by {event_order}
                rows between unbounded preceding and current row
            ) as journey_id
        from marked
        """,
        f"""
        create table steps as
        with all_steps as (
            select * from main_steps
            union all by name
            select f.*, m.journey_id
            from flagged f left join main_steps m on f.conversion_event_id = m.event_id
            where f.is_fulfilment
        )
        select * exclude (conversion_event_id),
            row_number() over (
                partition by journey_id order by is_fulfilment, {event_order}
            ) as position  -- fulfilment steps after the conversion, also at the same instant
        from all_steps
        """,
        # one row per journey: status and the path without noise, repeats collapsed
        f"""
        create table journeys as
        with kept as (
            select journey_id, position, touchpoint,
                lag(touchpoint) over (partition by journey_id order by position) as previous
            from steps
            where touchpoint not in ({noise})
        ), cleaned as (
            select journey_id,
                string_agg(touchpoint, '{SEPARATOR}' order by position) as path,
                arg_max(touchpoint, position) as last_touchpoint
            from kept
            where previous is null or previous <> touchpoint
            group by journey_id
        ), summary as (
            select journey_id,
                arg_min(customer_key, position) as customer_key,
                min(occurred_at) as started_at,
                max(occurred_at) as ended_at,
                bool_or(is_conversion) as converted,
                arg_min(event_id, position) filter (where is_conversion) as conversion_event_id,
                arg_min(occurred_at, position) filter (where is_conversion) as converted_at,
                arg_min(revenue, position) filter (where is_conversion) as revenue,
                count(*) as events,
                arg_min(channel, position) as first_channel,
                string_agg(touchpoint, '{SEPARATOR}' order by position) as all_path,
                arg_max(touchpoint, position) as all_last
            from steps
            group by journey_id
        )
        select s.journey_id, s.customer_key, s.started_at, s.ended_at,
            case when s.converted then 'converted'
                 when s.ended_at >= (select max(occurred_at) from in_sessions)
                     - to_microseconds({journey_timeout_us}) then 'open'
                 else 'dropped' end as status,
            s.converted, s.conversion_event_id, s.converted_at, s.revenue, s.events,
            s.first_channel,
            coalesce(c.last_touchpoint, s.all_last) as last_touchpoint,
            coalesce(c.path, s.all_path) as path,
            (epoch_us(s.converted_at) - epoch_us(s.started_at)) / 1e6 as seconds_to_convert
        from summary s left join cleaned c using (journey_id)
        """,
        # transitions between runs of one touchpoint, up to the conversion; end edges
        f"""
        create table edges as
        with kept as (
            select journey_id, position, customer_key, touchpoint, occurred_at,
                lag(touchpoint) over w is distinct from touchpoint as changed
            from steps
            where not is_fulfilment and touchpoint not in ({noise})
            window w as (partition by journey_id order by position)
        ), numbered as (
            select *, sum(changed::int) over (
                partition by journey_id order by position
                rows between unbounded preceding and current row
            ) as run
            from kept
        ), runs as (
            select journey_id, run,
                arg_min(customer_key, position) as customer_key,
                arg_min(touchpoint, position) as touchpoint,
                min(occurred_at) as first_at,
                max(occurred_at) as last_at
            from numbered
            group by journey_id, run
        )
        select journey_id, customer_key,
            coalesce(lag(touchpoint) over w, '{START}') as from_touchpoint,
            touchpoint as to_touchpoint,
            (epoch_us(first_at) - epoch_us(lag(last_at) over w)) / 1e6 as seconds
        from runs
        window w as (partition by journey_id order by run)
        union all
        select r.journey_id, arg_max(r.customer_key, r.run), arg_max(r.touchpoint, r.run),
            case any_value(j.status) when 'converted' then '{CONVERSION}'
                 when 'dropped' then '{DROP_OFF}' end as to_touchpoint,
            null
        from runs r join journeys j using (journey_id)
        where j.status <> 'open'
        group by r.journey_id
        """,
    ]


GRAPH_SQL = """
select from_touchpoint, to_touchpoint,
    count(*) as transitions,
    count(distinct customer_key) as customers,
    count(*) / sum(count(*)) over (partition by from_touchpoint) as probability,
    median(seconds) as median_seconds,
    quantile_cont(seconds, 0.9) as p90_seconds
from edges
group by from_touchpoint, to_touchpoint
order by from_touchpoint, to_touchpoint
"""


NODES_SQL = f"""
with entered as (
    select journey_id, customer_key, to_touchpoint as touchpoint from edges
    union all
    select journey_id, customer_key, '{START}' from edges where from_touchpoint = '{START}'
), visits as (
    select touchpoint, count(*) as visits, count(distinct journey_id) as journeys,
        count(distinct customer_key) as customers
    from entered
    group by touchpoint
), ends as (
    select from_touchpoint as touchpoint,
        count(*) filter (where to_touchpoint = '{CONVERSION}') as conversions,
        count(*) filter (where to_touchpoint = '{DROP_OFF}') as exits
    from edges
    group by from_touchpoint
)
select v.touchpoint, v.visits, v.journeys, v.customers,
    coalesce(e.conversions, 0) as conversions, coalesce(e.exits, 0) as exits,
    coalesce(e.exits, 0) / v.visits as exit_rate
from visits v left join ends e using (touchpoint)
order by v.touchpoint
"""


def _graph_from_rows(edge_rows, node_rows) -> object:
    """The DiGraph ``graphs.transition_graph`` builds: nodes with visits, journeys,
    customers, conversions, exits, exit rate; edges with transitions, customers, probability,
    median and p90 seconds."""
    import networkx as nx  # noqa: PLC0415

    graph = nx.DiGraph()
    for node, visits, journeys, customers, conversions, exits, exit_rate in node_rows:
        graph.add_node(
            node,
            visits=int(visits),
            journeys=int(journeys),
            customers=int(customers),
            conversions=int(conversions),
            exits=int(exits),
            exit_rate=float(exit_rate),
        )
    for source, target, transitions, customers, probability, median, p90 in edge_rows:
        graph.add_edge(
            source,
            target,
            transitions=int(transitions),
            customers=int(customers),
            probability=float(probability),
            median_seconds=None if median is None or math.isnan(median) else float(median),
            p90_seconds=None if p90 is None or math.isnan(p90) else float(p90),
        )
    return graph


def run_duckdb(path: Path) -> dict[str, object]:
    """Plain DuckDB SQL in an in-memory database (all cores)."""
    import duckdb  # noqa: PLC0415

    con = duckdb.connect()
    for statement in duckdb_statements(path):
        con.execute(statement)
    graph = _graph_from_rows(con.execute(GRAPH_SQL).fetchall(), con.execute(NODES_SQL).fetchall())
    return {
        "con": con,
        "graph": graph,
        "steps": con.execute("select count(*) from steps").fetchone()[0],
    }


def run_pandas(path: Path) -> dict[str, object]:
    """The same rules with pandas: sort, compare with the previous row (``shift``), number runs
    with ``cumsum``, then ``groupby`` on those integer numbers."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    timeouts_us = {k: int(v * 60_000_000) for k, v in TIMEOUTS_MINUTES.items()}
    journey_timeout_us = int(JOURNEY_TIMEOUT.total_seconds() * 1_000_000)

    events = pd.read_parquet(path, columns=list(COLUMNS))
    events["us"] = events["occurred_at"].astype("int64")
    open_until = events["occurred_at"].max() - JOURNEY_TIMEOUT
    # sessions
    e = events.sort_values(
        ["customer_key", "channel", "occurred_at", "is_conversion", "event_id"], ignore_index=True
    )
    del events  # each copy of 10M events is ~1 GB: drop them when done
    timeout = (
        e["channel"].map(timeouts_us).fillna(DEFAULT_TIMEOUT_MINUTES * 60_000_000).astype("int64")
    )
    ck, channel = e["customer_key"], e["channel"]
    starts = (
        ck.ne(ck.shift())
        | channel.ne(channel.shift())
        | (e["us"].diff() > timeout)
        | (timeout == 0)  # a zero timeout: every event a session, even at one instant
    )
    e["session_no"] = starts.cumsum()
    session_ids = ("s:" + e.loc[starts, "event_id"]).reset_index(drop=True)
    e["session_id"] = session_ids.iloc[e["session_no"].to_numpy() - 1].array
    by_session = e.groupby("session_no", sort=False)
    sessions = by_session.agg(
        customer_key=("customer_key", "first"),
        channel=("channel", "first"),
        started_at=("occurred_at", "min"),
        ended_at=("occurred_at", "max"),
        events=("event_id", "size"),
        first_touchpoint=("touchpoint", "first"),
        last_touchpoint=("touchpoint", "last"),
    )
    sessions.insert(0, "session_id", session_ids.array)
    sessions["duration_seconds"] = (
        sessions["ended_at"] - sessions["started_at"]
    ).dt.total_seconds()

    # journeys: first conversion per order, fulfilment steps, noise in fulfilment-only sessions
    j = e.sort_values(
        ["customer_key", "occurred_at", "is_conversion", "event_id"], ignore_index=True
    )
    del e, by_session
    conversions = (
        j.loc[j["is_conversion"] & j["order_id"].notna(), ["order_id", "event_id", "occurred_at"]]
        .sort_values(["occurred_at", "event_id"])
        .drop_duplicates("order_id")
        .set_index("order_id")
    )
    conversion_id = j["order_id"].map(conversions["event_id"])
    converted_at = j["order_id"].map(conversions["occurred_at"])
    fulfilment = ~j["is_conversion"] & conversion_id.notna() & (j["occurred_at"] >= converted_at)
    noise = ~j["is_conversion"] & j["touchpoint"].isin(NOISE)
    only = (fulfilment | noise).groupby(j["session_no"]).all()
    first_order = (
        pd.DataFrame({"order": conversion_id, "at": converted_at})[fulfilment]
        .groupby(j.loc[fulfilment, "session_no"])
        .first()
    )
    first_order = first_order[only.reindex(first_order.index)]
    noise_order = j["session_no"].map(first_order["order"])
    noise_at = j["session_no"].map(first_order["at"])
    attach = noise & ~fulfilment & noise_order.notna() & (j["occurred_at"] >= noise_at)
    j["conversion_event_id"] = conversion_id.where(~attach, noise_order)
    j["is_fulfilment"] = fulfilment | attach

    main = j[~j["is_fulfilment"]].reset_index(drop=True)
    ck = main["customer_key"]
    starts = (
        ck.ne(ck.shift())
        | main["is_conversion"].shift(fill_value=False)
        | (main["us"].diff() > journey_timeout_us)
    )
    main["journey_no"] = starts.cumsum()
    journey_ids = ("j:" + main.loc[starts, "event_id"]).reset_index(drop=True)
    of_conversion = main.loc[main["is_conversion"], ["event_id", "journey_no"]].set_index(
        "event_id"
    )["journey_no"]
    rest = j[j["is_fulfilment"]].copy()
    rest["journey_no"] = rest["conversion_event_id"].map(of_conversion).astype("int64")
    steps = pd.concat([main, rest], ignore_index=True).sort_values(
        ["journey_no", "is_fulfilment", "occurred_at", "is_conversion", "event_id"],
        ignore_index=True,
    )
    del j, main, rest
    steps["journey_id"] = journey_ids.iloc[steps["journey_no"].to_numpy() - 1].array
    steps["position"] = steps.groupby("journey_no", sort=False).cumcount() + 1

    by_journey = steps.groupby("journey_no", sort=False)
    journeys = by_journey.agg(
        customer_key=("customer_key", "first"),
        started_at=("occurred_at", "min"),
        ended_at=("occurred_at", "max"),
        converted=("is_conversion", "any"),
        events=("event_id", "size"),
        first_channel=("channel", "first"),
    )
    journeys.insert(0, "journey_id", journey_ids.iloc[journeys.index.to_numpy() - 1].array)
    sales = (
        steps.loc[steps["is_conversion"], ["journey_no", "event_id", "occurred_at", "revenue"]]
        .groupby("journey_no", sort=False)
        .first()
        .rename(columns={"event_id": "conversion_event_id", "occurred_at": "converted_at"})
    )
    journeys = journeys.join(sales)
    kept = steps.loc[~steps["touchpoint"].isin(NOISE), ["journey_no", "touchpoint"]]
    kept = kept[
        kept["journey_no"].ne(kept["journey_no"].shift())
        | kept["touchpoint"].ne(kept["touchpoint"].shift())
    ]
    paths = kept.groupby("journey_no", sort=False)["touchpoint"].agg(
        path=SEPARATOR.join, last_touchpoint="last"
    )
    empty = journeys.index.difference(paths.index)  # only noise: the raw touchpoints
    if len(empty):
        raw = steps.loc[steps["journey_no"].isin(empty), ["journey_no", "touchpoint"]]
        paths = pd.concat(
            [
                paths,
                raw.groupby("journey_no", sort=False)["touchpoint"].agg(
                    path=SEPARATOR.join, last_touchpoint="last"
                ),
            ]
        )
    journeys = journeys.join(paths)
    journeys["status"] = np.where(
        journeys["converted"],
        "converted",
        np.where(journeys["ended_at"] >= open_until, "open", "dropped"),
    )
    journeys["seconds_to_convert"] = (
        journeys["converted_at"] - journeys["started_at"]
    ).dt.total_seconds()

    # transitions between runs of one touchpoint, up to the conversion; end edges
    kept = steps.loc[
        ~steps["is_fulfilment"] & ~steps["touchpoint"].isin(NOISE),
        ["journey_no", "customer_key", "touchpoint", "us"],
    ]
    changed = kept["journey_no"].ne(kept["journey_no"].shift()) | kept["touchpoint"].ne(
        kept["touchpoint"].shift()
    )
    runs = kept.groupby(changed.cumsum(), sort=False).agg(
        journey_no=("journey_no", "first"),
        customer_key=("customer_key", "first"),
        touchpoint=("touchpoint", "first"),
        first_at=("us", "min"),
        last_at=("us", "max"),
    )
    same = runs["journey_no"].eq(runs["journey_no"].shift())
    inner = pd.DataFrame(
        {
            "journey_no": runs["journey_no"],
            "customer_key": runs["customer_key"],
            "from_touchpoint": runs["touchpoint"].shift().where(same, START),
            "to_touchpoint": runs["touchpoint"],
            "seconds": ((runs["first_at"] - runs["last_at"].shift()) / 1e6).where(same),
        }
    )
    last_runs = runs[runs["journey_no"].ne(runs["journey_no"].shift(-1))]
    end = last_runs["journey_no"].map(
        journeys["status"].map({"converted": CONVERSION, "dropped": DROP_OFF})
    )
    ends = pd.DataFrame(
        {
            "journey_no": last_runs["journey_no"],
            "customer_key": last_runs["customer_key"],
            "from_touchpoint": last_runs["touchpoint"],
            "to_touchpoint": end,
            "seconds": np.nan,
        }
    )[end.notna()]
    edges = pd.concat([inner, ends], ignore_index=True)
    by_edge = edges.groupby(["from_touchpoint", "to_touchpoint"])
    aggregated = by_edge.agg(
        transitions=("customer_key", "size"),
        customers=("customer_key", "nunique"),
    )
    aggregated["probability"] = aggregated["transitions"] / aggregated.groupby(level=0)[
        "transitions"
    ].transform("sum")
    aggregated["median_seconds"] = by_edge["seconds"].median()
    aggregated["p90_seconds"] = by_edge["seconds"].quantile(0.9)
    starts = edges[edges["from_touchpoint"] == START]
    entered = pd.concat(
        [
            edges[["journey_no", "customer_key", "to_touchpoint"]].rename(
                columns={"to_touchpoint": "touchpoint"}
            ),
            starts[["journey_no", "customer_key"]].assign(touchpoint=START),
        ],
        ignore_index=True,
    )
    nodes = entered.groupby("touchpoint").agg(
        visits=("journey_no", "size"),
        journeys=("journey_no", "nunique"),
        customers=("customer_key", "nunique"),
    )
    ends = (
        edges.assign(
            conversions=edges["to_touchpoint"] == CONVERSION,
            exits=edges["to_touchpoint"] == DROP_OFF,
        )
        .groupby("from_touchpoint")[["conversions", "exits"]]
        .sum()
    )
    nodes = nodes.join(ends).fillna({"conversions": 0, "exits": 0})
    nodes["exit_rate"] = nodes["exits"] / nodes["visits"]
    graph = _graph_from_rows(
        aggregated.reset_index().itertuples(index=False, name=None),
        nodes.reset_index().itertuples(index=False, name=None),
    )
    return {
        "sessions": sessions,
        "journeys": journeys.reset_index(drop=True),
        "graph": graph,
        "steps": len(steps),
        "steps_frame": steps,
    }


# --------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------

SESSION_COLUMNS = (
    "session_id",
    "customer_key",
    "channel",
    "started_at",
    "ended_at",
    "events",
    "first_touchpoint",
    "last_touchpoint",
    "duration_seconds",
)
STEP_COLUMNS = ("journey_id", "position", "event_id", "session_id", "is_fulfilment")
JOURNEY_COLUMNS = (
    "journey_id",
    "customer_key",
    "started_at",
    "ended_at",
    "status",
    "converted",
    "conversion_event_id",
    "converted_at",
    "revenue",
    "events",
    "first_channel",
    "last_touchpoint",
    "path",
    "seconds_to_convert",
)


TABLES = (("sessions", SESSION_COLUMNS), ("journeys", JOURNEY_COLUMNS), ("steps", STEP_COLUMNS))


def _peak_mb() -> float:
    return peak_rss_mb()


def _nodes_of(graph) -> list[list[object]]:
    names = ("visits", "journeys", "customers", "conversions", "exits", "exit_rate")
    return sorted(
        [node, *(data.get(name) for name in names)] for node, data in graph.nodes(data=True)
    )


def _edges_of(graph) -> list[list[object]]:
    names = ("transitions", "customers", "probability", "median_seconds", "p90_seconds")
    return sorted(
        [source, target, *(data[name] for name in names)]
        for source, target, data in graph.edges(data=True)
    )


def child(implementation: str, path: Path, out: Path | None, profile: bool) -> dict[str, object]:
    """One implementation on one file, in this process: seconds, peak RSS, counts, graph."""
    # imports before the clock, for all three
    if implementation == "duckdb-sql":
        import duckdb  # noqa: F401, PLC0415
    elif implementation == "pandas":
        import pandas  # noqa: F401, PLC0415
    else:
        # the library first, as the CLI imports it: it sets Polars' allocator (see its
        # __init__) before Polars is loaded
        from journey_analytics import graphs, jobs, journeys, reconstruct, sessions  # noqa: F401, I001, PLC0415
        import polars  # noqa: PLC0415
    import networkx  # noqa: F401, PLC0415

    stages: dict[str, float] | None = {} if profile else None
    shards = Path(tempfile.mkdtemp(dir=path.parent))  # journey-parquet's files
    load = os.getloadavg()[0]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if implementation == "journey-analytics":
        result = run_ours(path, stages)
    elif implementation == "journey-parquet":
        result = run_parquet(path, shards, stages)
    elif implementation == "stage-functions":
        result = run_stages(path, stages)
    elif implementation == "duckdb-sql":
        result = run_duckdb(path)
    else:
        result = run_pandas(path)
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    # after the clock: counts and, when asked, the tables for the row-by-row check
    if implementation == "duckdb-sql":
        con = result["con"]
        sessions_count = con.execute("select count(*) from sessions").fetchone()[0]
        statuses = dict(
            con.execute("select status, count(*) from journeys group by all").fetchall()
        )
        if out is not None:
            for table, columns in TABLES:
                con.execute(
                    f"copy (select {', '.join(columns)} from {table}) "
                    f"to '{out / table}.parquet' (format parquet)"
                )
    else:
        if implementation == "journey-parquet":  # the files, read back
            for table, _ in TABLES:
                key = "steps_frame" if table == "steps" else table
                result[key] = polars.read_parquet(shards / table)
        frames = {
            "sessions": result["sessions"],
            "journeys": result["journeys"],
            "steps": result["steps_frame"],
        }
        sessions_count = len(frames["sessions"])
        if implementation == "pandas":
            statuses = frames["journeys"]["status"].value_counts().to_dict()
            if out is not None:
                for table, columns in TABLES:
                    frames[table][list(columns)].to_parquet(out / f"{table}.parquet", index=False)
        else:
            statuses = dict(frames["journeys"].get_column("status").value_counts().iter_rows())
            if out is not None:
                for table, columns in TABLES:
                    frames[table].select(columns).write_parquet(out / f"{table}.parquet")
    shutil.rmtree(shards)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "load_before": load,
        "peak_mb": peak,
        "steps": int(result["steps"]),
        "sessions": int(sessions_count),
        "journeys": int(sum(statuses.values())),
        "statuses": {str(k): int(v) for k, v in sorted(statuses.items())},
        "edges": _edges_of(result["graph"]),
        "nodes": _nodes_of(result["graph"]),
        **({"stages": stages} if stages is not None else {}),
    }


QUIET = {"load": None}  # --quiet-load: wait for a 1-minute load average below this


def _wait_quiet() -> None:
    limit = QUIET["load"]
    waited = 0
    while limit is not None and os.getloadavg()[0] > limit and waited < 600:
        time.sleep(10)
        waited += 10


def measure(implementation: str, path: Path, out: Path | None, profile: bool = False) -> dict:
    """One child process: one implementation on one file."""
    _wait_quiet()
    command = [sys.executable, __file__, "--child", implementation, str(path), str(out or "")]
    output = subprocess.run(
        [*command, *(["--profile"] if profile else [])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict = json.loads(output.strip().splitlines()[-1])
    return result


class Mismatch(AssertionError):
    """The implementations did not compute the same thing."""


def _same_rows(first: list, second: list, *, exact: int) -> bool:
    """The first ``exact`` fields equal, the rest (floats or None) within 1e-9."""
    if len(first) != len(second):
        return False
    for a, b in zip(first, second, strict=True):
        if a[:exact] != b[:exact]:
            return False
        for x, y in zip(a[exact:], b[exact:], strict=True):
            if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-9 * max(1, abs(x))):
                return False
    return True


def check_counts(results: dict[str, dict]) -> None:
    """Same steps, sessions, journeys per status, and the same graph, or ``Mismatch``."""
    ours = results[IMPLEMENTATIONS[0]]
    for name, other in results.items():
        for key in ("steps", "sessions", "journeys", "statuses"):
            if other[key] != ours[key]:
                msg = f"{name}: {key} {other[key]} but {IMPLEMENTATIONS[0]} {ours[key]}"
                raise Mismatch(msg)
        if not _same_rows(other["nodes"], ours["nodes"], exact=6):
            msg = f"{name}: graph nodes {other['nodes']} but {IMPLEMENTATIONS[0]} {ours['nodes']}"
            raise Mismatch(msg)
        if not _same_rows(other["edges"], ours["edges"], exact=4):
            diff = [e for e in other["edges"] if e not in ours["edges"]][:5]
            msg = f"{name}: the transition graph differs from {IMPLEMENTATIONS[0]}'s, e.g. {diff}"
            raise Mismatch(msg)


KEYS = {"sessions": "session_id", "journeys": "journey_id", "steps": ["journey_id", "position"]}


def check_tables(folders: dict[str, Path]) -> None:
    """The sessions, journeys and steps tables the three wrote, row by row (sorted by id)."""
    import polars as pl  # noqa: PLC0415
    from polars.testing import assert_frame_equal  # noqa: PLC0415

    def read(folder: Path, table: str) -> pl.DataFrame:
        frame = pl.read_parquet(folder / f"{table}.parquet")
        return frame.with_columns(
            pl.col(pl.Datetime).dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
            pl.col(pl.Int32, pl.Int64, pl.UInt32, pl.UInt64).cast(pl.Int64),
            pl.col(pl.Float32, pl.Float64, pl.Decimal).cast(pl.Float64),
            pl.col(pl.Categorical).cast(pl.String),  # ours read text as codes (``CODED``)
        ).sort(KEYS[table])

    for table, _ in TABLES:
        ours = read(folders[IMPLEMENTATIONS[0]], table)
        for name, folder in folders.items():
            other = read(folder, table)
            try:
                assert_frame_equal(other, ours, check_dtypes=False, rel_tol=1e-9)
            except AssertionError as error:
                msg = f"{name}: {table} differ from {IMPLEMENTATIONS[0]}'s: {error}"
                raise Mismatch(msg) from None


OURS = ("journey-analytics", "journey-parquet")


def bench_size(
    events: int,
    runs: int,
    check_rows: bool,
    profile: bool,
    build: Path,
    *,
    baseline_runs: int | None = None,
) -> list:
    """Every implementation ``runs`` times on one file of ``events`` events."""
    path = build / f"events-{events}.parquet"
    if not path.exists():
        started = time.perf_counter()
        generate_events(events).write_parquet(path)
        print(f"wrote {path} in {time.perf_counter() - started:.1f} s", flush=True)
    samples: dict[str, list[dict]] = {name: [] for name in IMPLEMENTATIONS}
    with tempfile.TemporaryDirectory(dir=build) as tmp:
        folders = {name: Path(tmp) / name for name in IMPLEMENTATIONS}
        for run in range(runs):
            for name in IMPLEMENTATIONS:  # interleaved, so that drift hits all alike
                if name not in OURS and baseline_runs is not None and run >= baseline_runs:
                    continue  # the baselines' first runs only (``--baseline-runs-large``)
                out = folders[name] if check_rows and run == 0 else None
                if out is not None:
                    out.mkdir()
                sample = measure(name, path, out)
                samples[name].append(sample)
                print(
                    f"{events:>12,} {name:<18} run {run + 1}: {sample['seconds']:8.2f} s "
                    f"(CPU {sample['cpu_seconds']:7.2f} s), peak {sample['peak_mb']:8.1f} MB, "
                    f"load before {sample['load_before']:.1f}",
                    flush=True,
                )
            check_counts({name: runs_[-1] for name, runs_ in samples.items()})
        if check_rows:
            check_tables(folders)
            print(f"{events:>12,} sessions, journeys and steps identical row by row", flush=True)
    first = samples[IMPLEMENTATIONS[0]][0]
    rows = []
    for name in IMPLEMENTATIONS:
        seconds = statistics.median(s["seconds"] for s in samples[name])
        rows.append(
            {
                "events": events,
                "implementation": name,
                "runs": len(samples[name]),
                "seconds": round(seconds, 2),
                "all_seconds": [round(s["seconds"], 2) for s in samples[name]],
                "cpu_seconds": round(statistics.median(s["cpu_seconds"] for s in samples[name]), 2),
                "load_before": [round(s["load_before"], 1) for s in samples[name]],
                "events_per_second": round(events / seconds),
                "peak_rss_mb": round(max(s["peak_mb"] for s in samples[name]), 1),
            }
        )
    ours = rows[0]["seconds"]
    for row in rows:
        row["times_ours"] = round(row["seconds"] / ours, 2)
    counts = {
        "events": events,
        "sessions": first["sessions"],
        "journeys": first["journeys"],
        "statuses": first["statuses"],
        "nodes": len(first["nodes"]),
        "edges": len(first["edges"]),
        "transitions": sum(edge[2] for edge in first["edges"]),
        "rows_checked": check_rows,
    }
    profiled = None
    if profile:
        sample = measure(IMPLEMENTATIONS[0], path, None, profile=True)
        profiled = {
            "events": events,
            "seconds": round(sample["seconds"], 2),
            **{k: round(v, 3) for k, v in sample["stages"].items()},
        }
        print(f"{events:>12,} profile: {json.dumps(profiled)}", flush=True)
    return [rows, counts, profiled]


def markdown(rows: list[dict]) -> str:
    lines = [
        "| events | implementation | runs | seconds | CPU seconds | events/s | peak RSS MB "
        "| × ours |",  # noqa: RUF001 - as in the other tables
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        runs = f"{r['runs']} (median)" if r["runs"] > 1 else "1"
        lines.append(
            f"| {r['events']:,} | {r['implementation']} | {runs} | {r['seconds']:.2f} | "
            f"{r['cpu_seconds']:.2f} | {r['events_per_second']:,} | {r['peak_rss_mb']:,.0f} | "
            f"{r['times_ours']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3, help="runs at 1M events and below")
    parser.add_argument(
        "--runs-large", type=int, default=1, help="runs above 1M events (default 1)"
    )
    parser.add_argument(
        "--baseline-runs-large",
        type=int,
        help="above 1M events, run the baselines (stage functions, DuckDB, pandas) only this "
        "many times, in the first runs (default: as many as ours)",
    )
    parser.add_argument("--check-up-to", type=int, default=2_000_000)
    parser.add_argument("--profile", action="store_true", help="also our stages one by one")
    parser.add_argument(
        "--build", type=Path, default=Path(tempfile.gettempdir()) / "bench-analytics"
    )
    parser.add_argument(
        "--quiet-load",
        type=float,
        help="before each run wait (up to 10 minutes) for a 1-minute load average below this",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    QUIET["load"] = args.quiet_load
    if args.child:
        name, path, out = args.child
        print(json.dumps(child(name, Path(path), Path(out) if out else None, args.profile)))
        return
    args.build.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept = {r["events"]: r for r in previous.get("counts", [])}
    rows = [r for r in previous.get("results", []) if r["events"] not in args.events]
    profiles = [p for p in previous.get("profiles", []) if p["events"] not in args.events]
    for events in args.events:
        runs = args.runs if events <= 1_000_000 else args.runs_large
        found, counts, profiled = bench_size(
            events,
            runs,
            events <= args.check_up_to,
            args.profile,
            args.build,
            baseline_runs=args.baseline_runs_large if events > 1_000_000 else None,
        )
        rows += found
        kept[events] = counts
        if profiled:
            profiles.append(profiled)
    rows.sort(key=lambda r: (r["events"], IMPLEMENTATIONS.index(r["implementation"])))
    machine = {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    versions = {}
    for module in ("polars", "duckdb", "pandas", "networkx", "numpy", "pyarrow"):
        versions[module] = __import__(module).__version__
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine,
                "versions": versions,
                "library_commit": library_commit(HERE.parent),
                "counts": [kept[k] for k in sorted(kept)],
                "results": rows,
                "profiles": sorted(profiles, key=lambda p: p["events"]),
            },
            indent=2,
        )
        + "\n"
    )
    print()
    print(
        f"{machine['cpus']} cores, {machine['memory_gb']} GB, Python {machine['python']}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
