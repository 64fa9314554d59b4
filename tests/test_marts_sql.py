"""The SQL marts (funnel, drop-offs, paths) on the hand-made scenario, in an in-memory DuckDB."""

from __future__ import annotations

from datetime import timedelta

import pytest

from journey_analytics.jobs import STEP_COLUMNS
from journey_analytics.journeys import assign_journeys, summarise_journeys
from journey_analytics.leakage import leakage_summary, leaked_journeys
from journey_analytics.warehouse import Warehouse

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
        warehouse.replace("journeys.journeys", journeys.with_columns(patterns=[]))
        leaked = leaked_journeys(
            steps,
            online_channels=("web", "app"),
            offline_channels=("store", "phone"),
            window=timeout,
            drop_touchpoints=("sign_in",),
        )
        warehouse.replace("marts.leakage", leakage_summary(leaked))
        warehouse.build_mart("marts.funnel")
        warehouse.build_mart("marts.dropoffs", {"drop_touchpoints": ["sign_in"]})
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
