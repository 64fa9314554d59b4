"""Incremental runs: a run rebuilds only the customers its files touch, and the result equals
a full rebuild row for row (``journey_analytics.incremental``, ``jobs.build_journeys``)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journey_analytics import incremental, jobs
from journey_analytics.config import Settings, load_settings
from journey_analytics.jobs import MARTS
from journey_analytics.patterns import load_rules
from journey_analytics.warehouse import Warehouse

from ._events import AS_OF, events
from ._project import REPO, run_all, sample_config

SAMPLE = REPO / "data" / "sample"
# every public table a run writes, compared without the columns that say when it was loaded
TABLES = (
    "core.events",
    "core.customers",
    "core.identity_links",
    "journeys.sessions",
    "journeys.journeys",
    "journeys.steps",
    *MARTS,
    # the rows the marts keep between runs, which an incremental build updates
    "marts.journey_edges",
    "marts.journey_facts",
    "marts.leaked_journeys",
    "marts.attribution_numerators",
    "marts.attribution_chain",
)
UNDECLARED_KEYS = {
    "core.events": "event_id",
    "core.customers": "identifier_type, identifier_value",
    "journeys.sessions": "session_id",
    "journeys.journeys": "journey_id",
    "journeys.steps": "journey_id, position",
    "marts.patterns": "journey_id, pattern",
    "marts.journey_segments": "journey_id, segment",
    "marts.journey_facts": "journey_id",
    "marts.touchpoint_scorecard": "touchpoint",
    "marts.audience_members": "audience, customer_key",
    "marts.personas": "persona",
    "marts.customer_personas": "customer_key",
    "marts.persona_funnel": "persona, stage",
    "marts.persona_dropoffs": "persona, touchpoint",
    "marts.persona_patterns": "persona, pattern",
    "marts.persona_transitions": "persona, from_touchpoint, to_touchpoint",
    "marts.persona_paths": "persona, rank",
}
LOAD_TIME = ("ingested_at", "batch_id", "first_seen_at", "last_seen_at")


def _fingerprints(tmp_path: Path, events: pl.DataFrame) -> pl.DataFrame:
    with Warehouse.open(tmp_path / "prints.duckdb") as wh:
        wh.execute("create schema if not exists core")
        with wh.registered(_events=events):
            wh.execute("create or replace table core.events as select * from _events")
        return jobs.customer_fingerprints(wh)


def test_fingerprints_ignore_row_order_and_see_any_change(tmp_path: Path) -> None:
    at = datetime(2026, 3, 1, 10, tzinfo=UTC)
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "customer_key": ["c1", "c1", "c2", "c3"],
            "channel": ["web", "web", "store", "phone"],
            "touchpoint": ["search", "order_placed", "store_visit", "call"],
            "stage": ["interest", "purchase", "consideration", "usage"],
            "occurred_at": [at, at, at, at],
            "ingested_at": [at, at, at, at],
            "is_conversion": [False, True, False, False],
            "order_id": [None, "O1", None, None],
            "store_id": [None, None, "S1", None],
            "product_id": ["P1", "P1", None, None],
            "category": ["shoes", "shoes", None, None],
            "fulfilment": [None, "delivery", None, None],
            "revenue": [None, Decimal("59.90"), None, None],
            "properties": ['{"url": "/a"}', None, None, None],  # not a journey column
        },
        schema_overrides={"revenue": pl.Decimal(18, 2)},
    )
    before = _fingerprints(tmp_path, events)
    assert before.get_column("events").to_list() == [2, 1, 1]
    assert_frame_equal(_fingerprints(tmp_path, events.reverse()), before)
    # a change to any one column journeys are built from changes its customer's fingerprint
    for column in jobs.JOURNEY_EVENT_COLUMNS:
        if column == "customer_key":
            continue
        kind = events.schema[column]
        changed = events.with_columns(
            pl.when(pl.col("event_id") == "e2")
            .then(pl.col(column).shift(1) if kind != pl.String else pl.lit("other"))
            .otherwise(pl.col(column))
            .alias(column)
        )
        if column in ("occurred_at", "ingested_at"):
            changed = events.with_columns(
                pl.when(pl.col("event_id") == "e2")
                .then(pl.col(column) + pl.duration(seconds=1))
                .otherwise(pl.col(column))
            )
        assert incremental.changed_customers(
            before, _fingerprints(tmp_path, changed)
        ).to_list() == ["c1"], column
    # other columns (properties, identifiers) rebuild nothing
    quiet = events.with_columns(pl.lit('{"url": "/b"}').alias("properties"))
    assert incremental.changed_customers(before, _fingerprints(tmp_path, quiet)).to_list() == []
    after = _fingerprints(
        tmp_path,
        pl.concat(
            [
                # c1: one value changed; c2: gone (erased, or merged into another key);
                # c3: the same; c4: new
                events.with_columns(
                    touchpoint=pl.when(pl.col("event_id") == "e2")
                    .then(pl.lit("store_purchase"))
                    .otherwise("touchpoint")
                ).filter(pl.col("customer_key") != "c2"),
                events.filter(pl.col("event_id") == "e4").with_columns(
                    event_id=pl.lit("e5"), customer_key=pl.lit("c4")
                ),
            ]
        ),
    )
    assert incremental.changed_customers(before, after).to_list() == ["c1", "c2", "c4"]


def test_customers_linked_by_an_order_now_or_before_are_rebuilt_together() -> None:
    events = pl.DataFrame(
        {
            # b picked up a's order O1 in a store; e and f share order O2; g is alone
            "customer_key": ["a", "b", "c", "d", "e", "f", "g"],
            "order_id": ["O1", "O1", None, None, "O2", "O2", None],
        }
    )
    # in the last build, d's events sat in c's journey (their keys have since split)
    before = pl.DataFrame({"before": ["c"], "customer_key": ["d"]})
    wanted = incremental.customers_to_rebuild(
        events,
        changed=pl.Series(["a"]),
        open_journeys=pl.Series(["d"]),
        previous_links=before,
    )
    assert wanted.to_list() == ["a", "b", "c", "d"]  # not e, f (unchanged, closed), nor g


def _pickups(pairs: int) -> pl.DataFrame:
    """Per pair: c<i> orders O<i> online and d<i> collects it; d<i> also orders and collects
    an order of their own (the same transition, by the same customer, in two journeys)."""
    rows = []
    for i in range(pairs):
        day = f"2026-03-{i + 1:02d}"
        rows += [
            {"event_id": f"web:c{i}", "customer_key": f"c{i}", "occurred_at": f"{day} 10:00",
             "touchpoint": "order_placed", "is_conversion": True, "order_id": f"O{i}"},
            {"event_id": f"pos:c{i}", "customer_key": f"d{i}", "channel": "store",
             "occurred_at": f"{day} 12:00", "touchpoint": "store_pickup", "order_id": f"O{i}"},
            {"event_id": f"web:d{i}", "customer_key": f"d{i}", "occurred_at": f"{day} 15:00",
             "touchpoint": "order_placed", "is_conversion": True, "order_id": f"P{i}"},
            {"event_id": f"pos:d{i}", "customer_key": f"d{i}", "channel": "store",
             "occurred_at": f"{day} 18:00", "touchpoint": "store_pickup", "order_id": f"P{i}"},
        ]  # fmt: skip
    return events(*rows)


def test_a_step_in_another_customer_s_journey_is_found(tmp_path: Path) -> None:
    # d0 collects c0's click-and-collect order: d0's pickup is a step of c0's journey, and
    # both are rebuilt together next time. d0's own order and its pickup stay in d0's journey.
    settings = load_settings(sample_config(SAMPLE, tmp_path))
    rows = jobs._journey_rows(_pickups(1), settings, rules=(), as_of=AS_OF, workers=1)
    with Warehouse.open(tmp_path / "crossing.duckdb") as wh:
        wh.ensure_tables()
        for table in ("journeys.steps", "journeys.journeys"):
            wh.append(table, rows[table])
        assert jobs.steps_in_others_journeys(wh).rows() == [("c0", "d0")]


def _journeys_in_shards(folder: Path, *, events_per_shard: int) -> dict[str, pl.DataFrame]:
    config = sample_config(SAMPLE, folder)
    config.write_text(config.read_text() + f"\n[scale]\nevents_per_shard = {events_per_shard}\n")
    settings = load_settings(config)
    with Warehouse.open(settings.database_path) as wh:
        wh.ensure_tables()
        wh.append("core.events", _pickups(4))
    jobs.build_journeys(settings, full=True)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        return {table: wh.read(table).sort(pl.all()) for table in jobs.JOURNEY_TABLES}


def test_a_journey_build_in_shards_keeps_a_pick_up_with_its_order(tmp_path: Path) -> None:
    # One shard per event (16): d<i>, who collects c<i>'s order, goes to c<i>'s shard (the
    # customers sharing an order are hashed by the smallest key), so the pick-up still joins
    # c<i>'s journey as in one piece.
    sharded = _journeys_in_shards(tmp_path / "sharded", events_per_shard=1)
    whole = _journeys_in_shards(tmp_path / "whole", events_per_shard=1_000_000)
    assert [table for table in whole if not sharded[table].equals(whole[table])] == []
    steps = whole["journeys.steps"].filter(pl.col("event_id") == "pos:c0")
    assert steps.select("journey_id", "customer_key", "is_fulfilment").rows() == [
        ("j:web:c0", "d0", True)
    ]


def _full_marts(folder: Path, frame: pl.DataFrame, *, events_per_shard: int) -> dict[str, Any]:
    config = sample_config(SAMPLE, folder)
    config.write_text(config.read_text() + f"\n[scale]\nevents_per_shard = {events_per_shard}\n")
    settings = load_settings(config)
    rows = jobs._journey_rows(frame, settings, rules=(), as_of=AS_OF, workers=1)
    with Warehouse.open(settings.database_path) as wh:
        wh.ensure_tables()
        for table in ("journeys.steps", "journeys.journeys"):
            wh.append(table, rows[table])
    jobs.build_marts(settings, full=True)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        return {table: wh.read(table).sort(pl.all(), nulls_last=True) for table in TABLES[6:]}


def test_a_full_marts_build_in_shards_equals_one_in_one_piece(tmp_path: Path) -> None:
    # One shard per step (16): the counts of the shards add up to those of one piece. The
    # shards go by the journey's customer: d<i>'s pick-up in c<i>'s journey counts for c<i>'s
    # journey only (a transition of d<i> in two shards would count d<i> twice).
    frame = _pickups(4)
    sharded = _full_marts(tmp_path / "sharded", frame, events_per_shard=1)
    whole = _full_marts(tmp_path / "whole", frame, events_per_shard=1_000_000)
    assert [table for table in whole if not sharded[table].equals(whole[table])] == []
    orders = whole["marts.transitions"].filter(segment="all", from_touchpoint="START")
    assert orders.select("to_touchpoint", "transitions", "customers").rows() == [
        ("order_placed", 8, 8)
    ]


def _marts_of_days(folder: Path, days: list[pl.DataFrame]) -> dict[str, Any]:
    """The marts' tables after building core.events' journeys and marts once per day."""
    settings = load_settings(sample_config(SAMPLE, folder))
    for day in days:
        with Warehouse.open(settings.database_path) as wh:
            wh.ensure_tables()
            wh.append("core.events", day)
        jobs.build_journeys(settings)
        jobs.build_marts(settings)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        tables = {table: wh.read(table).sort(pl.all(), nulls_last=True) for table in TABLES[6:]}
    return {"modes": _mart_modes(settings), **tables}


def test_an_incremental_marts_build_keeps_a_pick_up_in_another_customer_s_journey(
    tmp_path: Path,
) -> None:
    # Day 2 gives d0 a late product view: d0 is rebuilt, and with d0 c0, whose journey holds
    # d0's pick-up (in its touchpoints, its edges). The marts built on day 2 from the
    # rebuilt customers' rows equal those built in full from both days at once.
    first = _pickups(2)
    late = events(
        {"event_id": "web:late", "customer_key": "d0", "occurred_at": "2026-03-01 09:00",
         "touchpoint": "product_view"},
    )  # fmt: skip
    daily = _marts_of_days(tmp_path / "daily", [first, late])
    once = _marts_of_days(tmp_path / "once", [pl.concat([first, late])])
    assert daily.pop("modes") == ["full", "incremental"]
    assert once.pop("modes") == ["full"]
    assert [table for table in once if not daily[table].equals(once[table])] == []
    facts = once["marts.journey_facts"].filter(pl.col("journey_id") == "j:web:c0")
    # c0's order and d0's pick-up of it, a step of c0's journey
    assert facts.get_column("touchpoints").to_list() == [["order_placed", "store_pickup"]]


def _week(path: Path) -> str:
    found = re.search(r"\d{4}-\d\d-\d\d", path.name)
    return found.group(0) if found else "0000-00-00"  # the CRM contacts snapshot


def _snapshot(settings: Settings) -> dict[str, pl.DataFrame]:
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        tables = {table: wh.read(table) for table in TABLES}
    return {
        table: frame.drop(c for c in LOAD_TIME if c in frame.columns).sort(
            frame.drop(c for c in LOAD_TIME if c in frame.columns).columns, nulls_last=True
        )
        for table, frame in tables.items()
    }


@pytest.mark.slow
def test_three_daily_loads_with_late_events_equal_one_full_run(tmp_path: Path) -> None:
    # The sample's files are named after the week their rows arrived, and some rows arrive
    # weeks after their events (late data). Three runs load the files that arrived by
    # 2026-03-01, by 2026-05-01 and by the end; each rebuilds only what changed.
    folder = tmp_path / "daily" / "sample"
    folder.mkdir(parents=True)
    for name in ("stores.csv", "products.csv"):
        shutil.copy(SAMPLE / name, folder / name)
    daily = load_settings(sample_config(folder, tmp_path / "daily"))
    files = sorted(
        path
        for path in SAMPLE.rglob("*")
        if path.suffix in {".jsonl", ".csv"} and "truth" not in path.parts and path.parent != SAMPLE
    )
    seen: set[str] = set()
    late: list[int] = []
    as_of: datetime | None = None
    first_day: tuple[datetime, dict[str, pl.DataFrame]] | None = None
    for cut in ("2026-03-01", "2026-05-01", "9999-12-31"):
        for path in files:
            target = folder / path.relative_to(SAMPLE)
            if _week(path) < cut and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
        run_all(daily)
        with Warehouse.open(daily.database_path, read_only=True) as wh:
            events = wh.read("core.events").select("event_id", "occurred_at")
        new = events.filter(~pl.col("event_id").is_in(list(seen)))
        # events that happened before the end of the data the last run saw: they re-open
        # (or extend, or split) journeys that run had already built
        late.append(0 if as_of is None else new.filter(pl.col("occurred_at") < as_of).height)
        seen |= set(events.get_column("event_id"))
        with Warehouse.open(daily.database_path, read_only=True) as wh:
            as_of = wh.query("select max(as_of) from ops.journey_runs").item()
            loaded = wh.query("select max(started_at) from ops.batches").item()
        if first_day is None:
            first_day = (loaded, _snapshot(daily))
    run_all(daily)  # a day without new files

    full = load_settings(sample_config(SAMPLE, tmp_path / "full"))
    run_all(full)

    assert late == [0, 6, 10]
    # what the next run compares with, updated only for the customers that changed, came or
    # went: the fingerprints of every customer's events now (they hash the load times too,
    # so they are compared with the daily database's own events, not with the one-shot's)
    with Warehouse.open(daily.database_path, read_only=True) as wh:
        assert_frame_equal(
            wh.read("ops.customer_fingerprints").sort("customer_key"),
            jobs.customer_fingerprints(wh),
        )
    daily_tables, full_tables = _snapshot(daily), _snapshot(full)
    differ = [table for table in TABLES if not daily_tables[table].equals(full_tables[table])]
    assert differ == []
    # the keys of core.events, core.customers and the journey tables (unique by construction,
    # not declared) after either kind of run
    for settings in (daily, full):
        with Warehouse.open(settings.database_path, read_only=True) as wh:
            repeated = {
                table: wh.query(f"select count(*) - count(distinct ({key})) from {table}").item()
                for table, key in UNDECLARED_KEYS.items()
            }
        assert repeated == dict.fromkeys(UNDECLARED_KEYS, 0)
    with Warehouse.open(daily.database_path, read_only=True) as wh:
        runs = wh.query(
            "select mode, customers, customers_rebuilt from ops.journey_runs order by run_at"
        ).rows()
    with Warehouse.open(daily.database_path, read_only=True) as wh:
        core_runs = wh.query(
            "select mode, batches, events, events_written, events_rekeyed from ops.core_runs "
            "order by run_at"
        ).rows()
    # the core builds read only the batches loaded since the last one
    assert core_runs == [
        ("full-started", 41, 0, 0, 0),  # (written first: an interrupted full build is redone)
        ("full", 41, 1427, 1427, 0),
        ("incremental", 45, 3569, 2142, 0),
        ("incremental", 43, 4759, 1190, 0),
        ("incremental", 0, 4759, 0, 0),
    ]
    # the first run builds everyone; then only the customers with new or changed events,
    # open journeys, or an order in common with those; a day without files rebuilds no one
    assert runs == [
        ("full", 214, 214),
        ("incremental", 440, 330),
        ("incremental", 500, 205),
        ("incremental", 500, 0),
    ]

    # the marts of each day replace only the rebuilt customers' rows and add or subtract
    # their counts; the rows they replaced are not kept past the build
    with Warehouse.open(daily.database_path, read_only=True) as wh:
        mart_runs = wh.query(
            "select mode, journeys, customers_rebuilt from ops.mart_runs order by run_at"
        ).rows()
        replaced = [wh.query(f"select count(*) from {t}").item() for t in jobs.REPLACED_TABLES]
    assert mart_runs == [
        ("full", 247, 214),  # (journeys, customers with journeys)
        ("incremental", 610, 330),  # the customers the journey build rebuilt
        ("incremental", 791, 205),
        ("incremental", 791, 0),
    ]
    assert replaced == [0, 0, 0]

    # each run records the figures it changed in months already settled; the sample's late
    # events all land in months that were still open (their restatement is unit-tested below)
    with Warehouse.open(daily.database_path, read_only=True) as wh:
        restated = wh.query(
            "select period, figure, before, after from ops.restatements order by run_at, "
            "period, figure"
        ).rows()
    assert restated == []

    # as of the first day: the raw rows ingested by then, rebuilt on their own, give the
    # tables that day's run wrote, although everything was loaded since
    assert first_day is not None
    day, tables = first_day
    again = jobs.rebuild_as_of(daily, loaded_by=day, folder=tmp_path / "as-of")
    rebuilt = _snapshot(again)
    assert [table for table in TABLES if not rebuilt[table].equals(tables[table])] == []
    assert (tmp_path / "as-of" / "dashboard.html").exists()


def test_changed_rules_rebuild_everyone(tmp_path: Path) -> None:
    settings = load_settings(sample_config(SAMPLE, tmp_path))
    run_all(settings)
    assert jobs.build_journeys(settings).customers_rebuilt == 0
    longer = settings.model_copy(
        update={"journeys": settings.journeys.model_copy(update={"timeout_days": 45.0})}
    )
    report = jobs.build_journeys(longer)
    assert (report.mode, report.customers_rebuilt) == ("full", 500)
    assert jobs.build_journeys(longer, full=True).mode == "full"


def test_restatements_are_changes_to_periods_already_settled() -> None:
    def kpis(rows: list[tuple[str, bool, int, int, str]]) -> pl.DataFrame:
        return pl.DataFrame(
            [(*row[:4], Decimal(row[4])) for row in rows],
            schema={
                "period": pl.String,
                "is_settled": pl.Boolean,
                "journeys": pl.Int64,
                "conversions": pl.Int64,
                "revenue": pl.Decimal(18, 2),
            },
            orient="row",
        )

    before = kpis(
        [
            ("2026-01", True, 10, 4, "400.00"),
            ("2026-02", True, 12, 5, "500.00"),
            ("2026-03", False, 3, 1, "90.00"),  # not settled yet: its changes are news
        ]
    )
    after = kpis(
        [
            # January: a late store sale converted a journey that had dropped
            ("2026-01", True, 10, 5, "459.90"),
            # February: unchanged
            ("2026-02", True, 12, 5, "500.00"),
            ("2026-03", True, 9, 4, "410.00"),
        ]
    )
    run_at = datetime(2026, 4, 2, 6, tzinfo=UTC)
    assert jobs.restatements(before, after, run_at=run_at).rows() == [
        (run_at, "2026-01", "conversions", 4.0, 5.0),
        (run_at, "2026-01", "revenue", 400.0, 459.9),
    ]
    # a settled period whose journeys were all erased reads 0 afterwards
    gone = jobs.restatements(before, after.filter(pl.col("period") != "2026-02"), run_at=run_at)
    assert gone.filter(period="2026-02").select("figure", "before", "after").rows() == [
        ("conversions", 5.0, 0.0),
        ("journeys", 12.0, 0.0),
        ("revenue", 500.0, 0.0),
    ]


def test_the_rules_fingerprint_keeps_the_order_of_aliases(tmp_path: Path) -> None:
    # aliases are tried in order, first match wins: swapping two changes the paths
    settings = load_settings(sample_config(SAMPLE, tmp_path))
    rules = load_rules()  # the default pattern rules, as the sample uses

    def with_aliases(aliases: dict[str, str]) -> str:
        paths = settings.paths.model_copy(update={"aliases": aliases})
        return jobs.rules_fingerprint(settings.model_copy(update={"paths": paths}), rules)

    one = with_aliases({"search_.*": "search", "search_box": "box"})
    other = with_aliases({"search_box": "box", "search_.*": "search"})
    assert one != other
    assert one == with_aliases({"search_.*": "search", "search_box": "box"})


MART_TABLES = tuple(table for table in TABLES if table.startswith("marts."))


def _copy_files_before(folder: Path, cut: str) -> None:
    for path in SAMPLE.rglob("*"):
        if path.suffix not in {".jsonl", ".csv"} or "truth" in path.parts:
            continue
        target = folder / path.relative_to(SAMPLE)
        if (path.parent == SAMPLE or _week(path) < cut) and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def _mart_modes(settings: Settings) -> list[str]:
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        modes = wh.query("select mode from ops.mart_runs order by run_at").get_column("mode")
    return modes.to_list()


@pytest.mark.slow
def test_marts_after_journey_builds_they_missed_equal_a_full_run(tmp_path: Path) -> None:
    # Two days whose journeys are built but whose marts are not (a run stopped after the
    # journeys): the next marts build subtracts the rows the marts last saw, kept by the
    # first journey build that replaced them, not those the second replaced (which the
    # marts never saw), and equals a full build.
    folder = tmp_path / "daily" / "sample"
    folder.mkdir(parents=True)
    daily = load_settings(sample_config(folder, tmp_path / "daily"))
    _copy_files_before(folder, "2026-03-01")
    run_all(daily)
    for cut in ("2026-05-01", "9999-12-31"):
        _copy_files_before(folder, cut)
        jobs.ingest_sources(daily)
        jobs.build_core(daily)
        jobs.build_journeys(daily)
    with Warehouse.open(daily.database_path, read_only=True) as wh:
        kept = [wh.query(f"select count(*) from {t}").item() for t in jobs.REPLACED_TABLES]
    # customers, steps and journeys the marts saw replaced: each customer's rows once
    assert kept == [390, 667, 123]
    jobs.build_marts(daily)
    full = load_settings(sample_config(SAMPLE, tmp_path / "full"))
    run_all(full)
    expected = _snapshot(full)

    def differ() -> list[str]:
        found = _snapshot(daily)
        return [table for table in MART_TABLES if not found[table].equals(expected[table])]

    assert _mart_modes(daily) == ["full", "incremental"]
    assert differ() == []

    # kept rows that no longer hold the journeys the last build recorded: a full build
    with Warehouse.open(daily.database_path) as wh:
        wh.delete(
            "marts.journey_segments",
            "journey_id = (select min(journey_id) from marts.journey_segments)",
        )
    jobs.build_marts(daily)
    assert _mart_modes(daily)[-1] == "full"
    assert differ() == []

    # other segment settings: a full build (weekly periods), and back
    graphs = daily.graphs.model_copy(update={"period": "week"})
    jobs.build_marts(daily.model_copy(update={"graphs": graphs}))
    jobs.build_marts(daily)
    jobs.build_marts(daily)
    assert _mart_modes(daily)[-3:] == ["full", "full", "incremental"]
    assert differ() == []


def test_the_marts_fingerprint_sees_a_new_definition_of_a_kept_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a kept table whose definition changed is made anew, empty, by ensure_tables: the next
    # marts build must then be full, not add to counts that no longer match the rows
    settings = load_settings(sample_config(SAMPLE, tmp_path))
    before = jobs.marts_fingerprint(settings)
    copied = tmp_path / "sql"
    shutil.copytree(REPO / "sql", copied)
    ddl = copied / "tables" / "marts.journey_edges.sql"
    ddl.write_text(ddl.read_text().replace("seconds double", "seconds double, extra varchar"))
    monkeypatch.setattr(jobs, "sql_dir", lambda: copied)
    assert jobs.marts_fingerprint(settings) != before
    ddl.write_text((REPO / "sql" / "tables" / "marts.journey_edges.sql").read_text())
    assert jobs.marts_fingerprint(settings) == before
