"""The touchpoint scorecard (``sql/marts/touchpoint_scorecard.sql``) on hand-made rows: every
number and every SWOT rule checked against values computed by hand below."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from journey_analytics.config import ScorecardSettings
from journey_analytics.graphs import SEGMENT_DIMENSIONS
from journey_analytics.warehouse import Warehouse

# Six closed journeys and an open one. Month periods: j1, j2 end in March, j3-j6 in April; the
# open j7's last event (May 10) is after April, so March and April are both settled.
#   j1 converted  product_view, order_placed        (March)
#   j2 dropped    product_view, add_to_cart         (March; ends at add_to_cart)
#   j3 converted  product_view, store_purchase      (April; left online for a store: leakage)
#   j4 converted  review, order_placed              (April)
#   j5 dropped    review                            (April; ends at review)
#   j6 dropped    product_view                      (April; ends at product_view)
#   j7 open       product_view                      (May)
JOURNEYS = (
    ("j1", "converted", "2026-03-10", ["order_placed", "product_view"], "order_placed"),
    ("j2", "dropped", "2026-03-20", ["add_to_cart", "product_view"], "add_to_cart"),
    ("j3", "converted", "2026-04-05", ["product_view", "store_purchase"], "store_purchase"),
    ("j4", "converted", "2026-04-12", ["order_placed", "review"], "order_placed"),
    ("j5", "dropped", "2026-04-15", ["review"], "review"),
    ("j6", "dropped", "2026-04-20", ["product_view"], "product_view"),
    ("j7", "open", "2026-05-10", ["product_view"], "product_view"),
)


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def _journey_rows() -> list[dict[str, Any]]:
    return [
        {
            "journey_id": journey_id,
            "customer_key": f"c-{journey_id}",
            "started_at": _at(day),
            "ended_at": _at(day),
            "status": status,
            "converted": status == "converted",
            "conversion_event_id": f"e-{journey_id}" if status == "converted" else None,
            "converted_at": _at(day) if status == "converted" else None,
            "revenue": Decimal("10.00") if status == "converted" else None,
            "events": len(touchpoints),
            "first_channel": "web",
            "last_touchpoint": last,
            "path": " > ".join(touchpoints),
            "seconds_to_convert": 0.0 if status == "converted" else None,
            "patterns": [],
        }
        for journey_id, status, day, touchpoints, last in JOURNEYS
    ]


def _fact_rows() -> list[dict[str, Any]]:
    return [
        {
            "journey_id": journey_id,
            "status": status,
            "converted": status == "converted",
            "revenue": Decimal("10.00") if status == "converted" else None,
            "last_touchpoint": last,
            "is_omnichannel": False,
            "furthest_stage_order": 4,
            "touchpoints": touchpoints,
            "entry_touchpoint": touchpoints[0],
            "exit_touchpoint": last,
            "own_steps": len(touchpoints),
            "online_steps": len(touchpoints),
            "offline_steps": 0,
            **{f"{dimension}_segment": None for dimension in SEGMENT_DIMENSIONS},
        }
        for journey_id, status, _, touchpoints, last in JOURNEYS
    ]


def _edge(journey_id: str, source: str, target: str, seconds: float) -> dict[str, Any]:
    return {
        "journey_id": journey_id,
        "from_touchpoint": source,
        "to_touchpoint": target,
        "seconds": seconds,
        **{f"{dimension}_segment": None for dimension in SEGMENT_DIMENSIONS},
    }


def _event(event_id: str, touchpoint: str, *, managed: bool) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "web",
        "channel": "web",
        "touchpoint": touchpoint,
        "stage": "interest",
        "is_managed": managed,
        "is_conversion": False,
        "occurred_at": _at("2026-03-01"),
        "ingested_at": _at("2026-03-01"),
        "batch_id": "b1",
        "customer_key": "c",
    }


@pytest.fixture
def wh() -> Iterator[Warehouse]:
    with Warehouse.open(":memory:") as warehouse:
        warehouse.ensure_tables()
        journeys = pl.DataFrame(_journey_rows())
        warehouse.append("journeys.journeys", journeys)
        warehouse.append("marts.journey_facts", pl.DataFrame(_fact_rows()))
        warehouse.append(
            "marts.journey_edges",
            pl.DataFrame(
                [
                    _edge("j1", "product_view", "order_placed", 300.0),
                    _edge("j2", "product_view", "add_to_cart", 100.0),
                    _edge("j3", "product_view", "store_purchase", 500.0),
                    _edge("j4", "review", "order_placed", 60.0),
                ]
            ),
        )
        # review: two of its three events unmanaged (a review site), so unmanaged
        events = [
            _event(f"e{n}", touchpoint, managed=True)
            for n, touchpoint in enumerate(
                ["product_view", "order_placed", "add_to_cart", "store_purchase", "review"]
            )
        ]
        events += [_event("r1", "review", managed=False), _event("r2", "review", managed=False)]
        warehouse.append("core.events", pl.DataFrame(events))
        warehouse.append(
            "marts.leakage",
            pl.DataFrame(
                {
                    "from_touchpoint": ["product_view"],
                    "from_stage": ["interest"],
                    "from_channel": ["web"],
                    "to_channel": ["store"],
                    "journeys": [1],
                    "customers": [1],
                    "revenue": [Decimal("10.00")],
                    "median_seconds": [500.0],
                }
            ),
        )
        # Markov credit 1.5 + 1.0 + 0.5 = 3: shares 1/2, 1/3, 1/6; other models are not read
        warehouse.append(
            "marts.attribution",
            pl.DataFrame(
                {
                    "model": ["markov", "markov", "markov", "linear", "markov"],
                    "dimension": [
                        "touchpoint",
                        "touchpoint",
                        "touchpoint",
                        "touchpoint",
                        "channel",
                    ],
                    "value": ["product_view", "order_placed", "review", "add_to_cart", "web"],
                    "conversions": [1.5, 1.0, 0.5, 3.0, 3.0],
                    "revenue": [15.0, 10.0, 5.0, 30.0, 30.0],
                }
            ),
        )
        warehouse.build_mart("marts.dropoffs")
        warehouse.build_mart("marts.period_kpis", {"period": "month", "omnichannel": ["ropo"]})
        yield warehouse


def _scorecard(wh: Warehouse, **settings: float) -> dict[str, dict[str, Any]]:
    # a trend from a single journey in the period before: only here, to check the arithmetic
    params = {
        "period": "month",
        **ScorecardSettings(**{"min_trend_journeys": 1, **settings}).model_dump(),
    }
    wh.build_mart("marts.touchpoint_scorecard", params)
    return {row["touchpoint"]: row for row in wh.read("marts.touchpoint_scorecard").to_dicts()}


def test_the_numbers_of_each_touchpoint(wh: Warehouse) -> None:
    card = _scorecard(wh)
    # 6 closed journeys: 3 converted (j1, j3, j4), 3 dropped (j2, j5, j6); j7 is open
    columns = (
        "is_managed", "journeys_through", "reach", "converted_share", "dropped_share", "lift",
        "dropoff_rate", "leakage_rate", "removal_effect", "median_seconds_to_next",
    )  # fmt: skip
    assert {t: tuple(row[c] for c in columns) for t, row in card.items()} == {
        # j1 j2 j3 j6; exits: j6; leaks: j3; edges 100, 300, 500 s
        "product_view": (True, 4, 4 / 6, 2 / 3, 2 / 3, 1.0, 1 / 4, 1 / 4, 0.5, 300.0),
        # only converted journeys pass it: no lift
        "order_placed": (True, 2, 2 / 6, 2 / 3, 0.0, None, 0.0, 0.0, 1 / 3, None),
        "add_to_cart": (True, 1, 1 / 6, 0.0, 1 / 3, 0.0, 1.0, 0.0, None, None),
        "store_purchase": (True, 1, 1 / 6, 1 / 3, 0.0, None, 0.0, 0.0, None, None),
        "review": (False, 2, 2 / 6, 1 / 3, 1 / 3, 1.0, 1 / 2, 0.0, 1 / 6, 60.0),
    }
    # reach in April (4 closed journeys) against March (2)
    trend = ("reach_latest", "reach_previous", "reach_trend")
    assert {t: tuple(row[c] for c in trend) for t, row in card.items()} == {
        "product_view": (2 / 4, 2 / 2, -0.5),
        "order_placed": (1 / 4, 1 / 2, -0.5),
        "add_to_cart": (0.0, 1 / 2, -1.0),
        "store_purchase": (1 / 4, 0.0, None),  # not reached before: no trend
        "review": (2 / 4, 0.0, None),
    }


def test_the_swot_rules(wh: Warehouse) -> None:
    card = _scorecard(wh)
    flags = ("is_strength", "is_weakness", "is_opportunity", "is_threat")
    assert {t: tuple(row[f] for f in flags) for t, row in card.items()} == {
        "product_view": (False, True, True, True),
        # no dropped journey passes them: no lift, so no strength by lift
        "order_placed": (False, False, False, True),
        "add_to_cart": (False, True, False, True),
        "store_purchase": (False, False, False, False),
        "review": (False, True, False, True),
    }
    assert {t: row["swot"] for t, row in card.items()} == {
        "product_view": (
            # lift 1.0 is not > 1.2: no strength; a quarter end there, a quarter leak
            "weakness: 25% of the journeys through it end there; "
            "opportunity: 25% of the journeys through it leave to buy offline; "
            "threat: its reach fell 50% since the period before"
        ),
        "order_placed": "threat: its reach fell 50% since the period before",
        "add_to_cart": (
            "weakness: 100% of the journeys through it end there; "
            "weakness: lift 0.00, drop-offs pass it more often than buyers; "
            "threat: its reach fell 100% since the period before"
        ),
        "store_purchase": "",
        # managed touchpoints are not threatened by their drop-offs, unmanaged ones are
        "review": (
            "weakness: 50% of the journeys through it end there; "
            "threat: unmanaged, and 50% of the journeys through it end there"
        ),
    }


def test_the_thresholds_come_from_the_config(wh: Warehouse) -> None:
    # a lift of 0.9 now works: review (lift 1.0, reach 33%) is a strength; at a reach of 40%
    # needed for one, an opportunity
    card = _scorecard(wh, strong_lift=0.9)
    assert card["review"]["swot"].startswith(
        "strength: 33% of journeys pass it, buyers 1.00x as often as drop-offs; "
    )
    card = _scorecard(wh, strong_lift=0.9, min_reach=0.4)
    assert card["review"]["swot"].startswith(
        "weakness: 50% of the journeys through it end there; "
        "opportunity: lift 1.00, but only 33% of journeys reach it; "
    )
    # a lift of 1.0 now counts as working; product_view's 67% reach makes it a strength
    card = _scorecard(wh, strong_lift=1.0, weak_dropoff_rate=0.3, falling_reach=-0.6)
    assert card["product_view"]["swot"] == (
        "strength: 67% of journeys pass it, buyers 1.00x as often as drop-offs; "
        "opportunity: 25% of the journeys through it leave to buy offline"
    )


def test_a_trend_needs_enough_journeys_in_the_period_before(wh: Warehouse) -> None:
    # product_view had 2 journeys in March: with 3 needed its trend (and threat) are gone
    card = _scorecard(wh, min_trend_journeys=3)
    assert (card["product_view"]["reach_latest"], card["product_view"]["reach_trend"]) == (
        0.5,
        None,
    )
    assert not card["product_view"]["is_threat"]
    assert card["product_view"]["swot"] == (
        "weakness: 25% of the journeys through it end there; "
        "opportunity: 25% of the journeys through it leave to buy offline"
    )


def test_one_settled_period_gives_no_trend(wh: Warehouse) -> None:
    # without the open journey April is not over (the data end on April 20): March alone
    wh.execute("delete from journeys.journeys where journey_id = 'j7'")
    wh.execute("delete from marts.journey_facts where journey_id = 'j7'")
    wh.build_mart("marts.period_kpis", {"period": "month", "omnichannel": ["ropo"]})
    card = _scorecard(wh)
    assert {
        (row["reach_latest"], row["reach_previous"], row["reach_trend"]) for row in card.values()
    } == {(None, None, None)}


def test_without_a_conversion_no_touchpoint_has_a_lift(wh: Warehouse) -> None:
    for table in ("journeys.journeys", "marts.journey_facts"):
        wh.execute(
            f"update {table} set status = 'dropped', converted = false where status <> 'open'"
        )
    wh.build_mart("marts.dropoffs")
    card = _scorecard(wh)
    assert {row["lift"] for row in card.values()} == {None}
    assert not any(row["is_strength"] for row in card.values())
    # the rules without a lift are left (drop-offs, the fixture's leak, trends): no "lift 0.00"
    assert not any("lift" in row["swot"] for row in card.values())
    assert card["product_view"]["swot"] == (
        "weakness: 25% of the journeys through it end there; "  # only j6 ends there
        "opportunity: 25% of the journeys through it leave to buy offline; "
        "threat: its reach fell 50% since the period before"
    )
