"""The SQL marts (funnel, drop-offs, paths, KPIs) on hand-made rows, in an in-memory DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from journey_analytics.dashboards import OMNICHANNEL_PATTERNS
from journey_analytics.graphs import SEGMENT_DIMENSIONS
from journey_analytics.jobs import STEP_COLUMNS
from journey_analytics.journeys import assign_journeys, journey_facts, summarise_journeys
from journey_analytics.leakage import leakage_summary, leaked_journeys
from journey_analytics.warehouse import Warehouse, sql_dir

from ._events import AS_OF, scenario


@pytest.fixture
def wh() -> Warehouse:  # type: ignore[misc]
    timeout = timedelta(days=30)
    steps = assign_journeys(scenario(), timeout=timeout)
    journeys = summarise_journeys(
        steps, timeout=timeout, as_of=AS_OF, drop_touchpoints=("sign_in",), collapse_repeats=True
    )
    with Warehouse.open(":memory:") as warehouse:
        warehouse.ensure_tables()
        warehouse.replace("journeys.steps", steps.select(STEP_COLUMNS))
        journeys = journeys.with_columns(patterns=[])
        warehouse.replace("journeys.journeys", journeys)
        # what the marts build keeps per journey, here in no segment but all
        facts = journey_facts(
            steps, journeys, drop_touchpoints=("sign_in",), omnichannel=OMNICHANNEL_PATTERNS
        ).with_columns(
            pl.lit(None, pl.String).alias(f"{dimension}_segment")
            for dimension in SEGMENT_DIMENSIONS
        )
        warehouse.replace("marts.journey_facts", facts)
        leaked = leaked_journeys(
            steps,
            online_channels=("web", "app"),
            offline_channels=("store", "phone"),
            window=timeout,
            drop_touchpoints=("sign_in",),
        )
        warehouse.replace("marts.leakage", leakage_summary(leaked))
        warehouse.build_mart("marts.funnel")
        warehouse.build_mart("marts.dropoffs")
        warehouse.build_mart("marts.paths")
        yield warehouse


def test_funnel(wh: Warehouse) -> None:
    # 7 closed journeys (the open one is left out). Furthest stages: web:1 usage (pickup),
    # web:4/crm:1/crm:30/crm:40/app:50 purchase, web:7 consideration (dropped there).
    assert wh.read("marts.funnel").rows() == [
        (1, "awareness", 7, 1.0, 0, 0.0),
        (2, "interest", 7, 1.0, 0, 0.0),
        (3, "consideration", 7, 1.0, 1, 1 / 7),
        (4, "purchase", 6, 6 / 7, 0, 0.0),
        (5, "usage", 1, 1 / 7, 0, 0.0),
        (6, "loyalty", 0, 0.0, 0, 0.0),
    ]


def test_dropoffs(wh: Warehouse) -> None:
    # exits: dropped journeys ending there; leaks: converted journeys whose last online step
    # it was before a purchase offline (j:web:4's product view, then a store sale 2 days later)
    assert wh.query("select * from marts.dropoffs order by touchpoint").rows() == [
        ("add_to_cart", 2, 1, 0.5, 0, 0.0),
        ("call", 1, 0, 0.0, 0, 0.0),
        ("email_click", 1, 0, 0.0, 0, 0.0),
        ("order_placed", 4, 0, 0.0, 0, 0.0),
        # the open journey's view is not counted; sign_in is noise and has no row
        ("product_view", 3, 0, 0.0, 1, 1 / 3),
        ("store_pickup", 1, 0, 0.0, 0, 0.0),
        ("store_purchase", 2, 0, 0.0, 0, 0.0),
        ("try_on", 1, 0, 0.0, 0, 0.0),
    ]


def test_paths(wh: Warehouse) -> None:
    rows = wh.query(
        "select path, steps, journeys, conversions, conversion_rate, "
        "median_duration_seconds from marts.paths order by path"
    ).rows()
    assert rows == [
        ("call > store_purchase", 2, 1, 1, 1.0, 2 * 86400.0),
        ("email_click > order_placed", 2, 1, 1, 1.0, 60.0),
        ("order_placed", 1, 1, 1, 1.0, 0.0),
        ("product_view > add_to_cart", 2, 1, 0, 0.0, 86400.0),
        (
            "product_view > add_to_cart > order_placed > store_pickup",
            4,
            1,
            1,
            1.0,
            2 * 86400 + 2 * 3600 - 0.0,
        ),
        ("product_view > store_purchase", 2, 1, 1, 1.0, 2 * 86400 + 6 * 3600.0),
        ("try_on > order_placed", 2, 1, 1, 1.0, 2 * 86400 + 4 * 3600.0),
    ]


def _journey(
    journey_id: str, status: str, ended: str, revenue: float | None, seconds: float | None
) -> dict[str, object]:
    at = datetime.fromisoformat(ended).replace(tzinfo=UTC)
    converted = status == "converted"
    return {
        "journey_id": journey_id,
        "customer_key": f"c-{journey_id}",
        "started_at": at - timedelta(days=1),
        "ended_at": at,
        "status": status,
        "converted": converted,
        "conversion_event_id": f"e-{journey_id}" if converted else None,
        "converted_at": at if converted else None,
        "revenue": revenue,
        "events": 2,
        "first_channel": "web",
        "last_touchpoint": "order_placed" if converted else "product_view",
        "path": "product_view > order_placed",
        "seconds_to_convert": seconds,
        "patterns": [],
    }


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (
            "month",
            [
                # (period, settled, journeys, conversions, rate, revenue, omni, share, median s)
                ("2025-12", True, 1, 1, 1.0, 5, 0, 0.0, 50.0),
                ("2026-01", True, 2, 1, 0.5, 10, 1, 1.0, 100.0),
                # j4 is still open with its last event on 10 Feb: February may yet lose one
                ("2026-02", False, 1, 1, 1.0, 20, 0, 0.0, 300.0),
            ],
        ),
        (
            "week",
            [
                # 31 Dec 2025 is in ISO week 1 of 2026 (weeks start on Monday, 29 Dec)
                ("2026-W01", True, 1, 1, 1.0, 5, 0, 0.0, 50.0),
                ("2026-W02", True, 1, 1, 1.0, 10, 1, 1.0, 100.0),
                ("2026-W04", True, 1, 0, 0.0, 0, 0, None, None),  # j2 dropped: no conversion
                ("2026-W06", True, 1, 1, 1.0, 20, 0, 0.0, 300.0),  # ends Mon 9 Feb <= 10 Feb
            ],
        ),
    ],
)
def test_period_kpis(period: str, expected: list[tuple[object, ...]]) -> None:
    assert _period_kpis(period, last_status="open") == expected


def test_a_period_not_over_is_not_settled() -> None:
    # j4 dropped: no journey is open, but the data ends on 10 Feb, before February does
    assert [row[:3] for row in _period_kpis("month", last_status="dropped")] == [
        ("2025-12", True, 1),
        ("2026-01", True, 2),
        ("2026-02", False, 2),
    ]


def _period_kpis(period: str, *, last_status: str) -> list[tuple[object, ...]]:
    journeys = pl.DataFrame(
        [
            _journey("j5", "converted", "2025-12-31 10:00", 5.0, 50.0),
            _journey("j1", "converted", "2026-01-10 10:00", 10.0, 100.0),
            _journey("j2", "dropped", "2026-01-20 10:00", None, None),
            _journey("j3", "converted", "2026-02-05 10:00", 20.0, 300.0),
            _journey("j4", last_status, "2026-02-10 10:00", None, None),
        ]
    )
    patterns = journeys.filter(pl.col("journey_id") == "j1").select(
        "journey_id",
        "customer_key",
        pattern=pl.lit("ropo"),
        variant=pl.lit(None, pl.String),
        evidence_event_ids=pl.lit(["e1"]),
        converted_at="converted_at",
        revenue="revenue",
    )
    with Warehouse.open(":memory:") as wh:
        wh.ensure_tables()
        wh.replace("journeys.journeys", journeys)
        wh.replace("marts.patterns", patterns)
        wh.build_mart(
            "marts.period_kpis", {"period": period, "omnichannel": list(OMNICHANNEL_PATTERNS)}
        )
        found = wh.query(
            "select period, is_settled, journeys, conversions, conversion_rate, "
            "revenue::double, omnichannel_conversions, omnichannel_share, "
            "median_seconds_to_convert from marts.period_kpis order by period_start"
        ).rows()
    return found


def test_segment_kpis_count_each_closed_journey_once_per_dimension() -> None:
    # j1 and j4 converted (j1 through an omnichannel pattern), j2 dropped, j3 is open and
    # counted nowhere; j4 saw no store (in no store segment); only status and store are asked
    # for (the other dimensions' columns are null)
    def facts(
        journey_id: str, status: str, revenue: float | None, *, omni: bool, store: str | None
    ) -> dict[str, object]:
        return {
            "journey_id": journey_id,
            "status": status,
            "converted": status == "converted",
            "revenue": revenue,
            "last_touchpoint": "order_placed",
            "is_omnichannel": omni,
            "furthest_stage_order": 4,
            "touchpoints": ["order_placed"],
            "own_steps": 1,
            "online_steps": 1,
            "offline_steps": 0,
            "status_segment": None if status == "open" else status,
            "store_segment": store,
        }

    rows = [
        facts("j1", "converted", 10.5, omni=True, store="store=S1"),
        facts("j2", "dropped", None, omni=False, store="store=S1"),
        facts("j3", "open", None, omni=True, store="store=S1"),
        facts("j4", "converted", 4.0, omni=False, store=None),
    ]
    with Warehouse.open(":memory:") as wh:
        wh.ensure_tables()
        wh.append("marts.journey_facts", pl.DataFrame(rows))
        wh.build_mart("marts.segment_kpis")
        found = wh.query("select * from marts.segment_kpis order by dimension, segment").rows()
    assert found == [
        # (dimension, segment, journeys, conversions, rate, revenue, omni conversions, share)
        ("all", "all", 3, 2, 2 / 3, Decimal("14.50"), 1, 0.5),
        ("status", "converted", 2, 2, 1.0, Decimal("14.50"), 1, 0.5),
        ("status", "dropped", 1, 0, 0.0, Decimal("0.00"), 0, None),
        ("store", "store=S1", 2, 1, 0.5, Decimal("10.50"), 1, 1.0),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "tables/marts.journey_edges.sql",
        "tables/marts.journey_facts.sql",
        "queries/transition_seconds.sql",
        "marts/segment_kpis.sql",
    ],
)
def test_every_segment_dimension_has_its_column_in_the_sql(path: str) -> None:
    # the SQL names each dimension's column (a dimension added to graphs.SegmentDimension
    # without its column would drop out of the medians and the KPIs unseen)
    text = (sql_dir() / path).read_text(encoding="utf-8")
    missing = [d for d in SEGMENT_DIMENSIONS if f"{d}_segment" not in text]
    assert missing == []
