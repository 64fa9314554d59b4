"""Channel leakage: journeys that leave online and buy offline, on hand-made steps."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from journey_analytics.journeys import assign_journeys
from journey_analytics.leakage import leakage_summary, leaked_journeys

from ._events import events

WINDOW = timedelta(days=7)


def _leaked(*rows: dict[str, object]) -> pl.DataFrame:
    steps = assign_journeys(events(*rows), timeout=timedelta(days=30))
    return leaked_journeys(
        steps,
        online_channels=("web", "app"),
        offline_channels=("store", "phone"),
        window=WINDOW,
        drop_touchpoints=("sign_in",),
    )


def _sale(event_id: str, customer: str, at: str, channel: str = "store") -> dict[str, object]:
    return {
        "event_id": event_id,
        "customer_key": customer,
        "occurred_at": at,
        "channel": channel,
        "touchpoint": "store_purchase" if channel == "store" else "phone_order",
        "stage": "purchase",
        "is_conversion": True,
        "revenue": "40.00",
    }


def test_the_last_online_step_before_an_offline_purchase_is_where_it_leaked() -> None:
    found = _leaked(
        # a: app view, web cart, a sign-in (noise, not a step it leaves from), then a store sale
        {"event_id": "app:1", "customer_key": "a", "occurred_at": "2026-03-01 10:00",
         "channel": "app", "touchpoint": "product_view"},
        {"event_id": "web:1", "customer_key": "a", "occurred_at": "2026-03-02 10:00",
         "touchpoint": "add_to_cart", "stage": "consideration"},
        {"event_id": "web:2", "customer_key": "a", "occurred_at": "2026-03-02 10:01",
         "touchpoint": "sign_in"},
        _sale("pos:1", "a", "2026-03-04 10:00"),
        # b: an online order is no leakage, even after a store visit
        {"event_id": "store:1", "customer_key": "b", "occurred_at": "2026-03-01 12:00",
         "channel": "store", "touchpoint": "store_visit"},
        {"event_id": "web:3", "customer_key": "b", "occurred_at": "2026-03-01 13:00",
         "touchpoint": "order_placed", "stage": "purchase", "is_conversion": True},
        # c: only offline steps: nothing online to leak from
        {"event_id": "call:1", "customer_key": "c", "occurred_at": "2026-03-01 09:00",
         "channel": "phone", "touchpoint": "call"},
        _sale("pos:2", "c", "2026-03-01 11:00"),
        # d: the sale exactly 7 days after the view is inside the window (at most, not before)
        {"event_id": "web:4", "customer_key": "d", "occurred_at": "2026-03-01 10:00",
         "touchpoint": "product_view"},
        _sale("call:2", "d", "2026-03-08 10:00", channel="phone"),
        # e: a second longer: the online visit did not lead to it
        {"event_id": "web:5", "customer_key": "e", "occurred_at": "2026-03-01 10:00",
         "touchpoint": "product_view"},
        _sale("pos:3", "e", "2026-03-08 10:00:01"),
    )  # fmt: skip
    assert found.select(
        "journey_id", "from_touchpoint", "from_channel", "from_event_id", "to_channel", "seconds"
    ).rows() == [
        ("j:app:1", "add_to_cart", "web", "web:1", "store", 2 * 86400.0),
        ("j:web:4", "product_view", "web", "web:4", "phone", 7 * 86400.0),
    ]
    assert found.get_column("revenue").to_list() == [Decimal("40.00"), Decimal("40.00")]


def test_leakage_is_counted_per_touchpoint_stage_and_channels() -> None:
    leaked = pl.DataFrame(
        {
            "journey_id": ["j1", "j2", "j3"],
            "customer_key": ["a", "a", "b"],
            "from_touchpoint": ["product_view", "product_view", "add_to_cart"],
            "from_stage": ["interest", "interest", "consideration"],
            "from_channel": ["web", "web", "app"],
            "to_channel": ["store", "store", "phone"],
            "seconds": [10.0, 30.0, 5.0],
            "revenue": [Decimal("1.50"), Decimal("2.00"), None],
        },
        schema_overrides={"revenue": pl.Decimal(18, 2)},
    )
    expected = pl.DataFrame(
        {
            "from_touchpoint": ["add_to_cart", "product_view"],
            "from_stage": ["consideration", "interest"],
            "from_channel": ["app", "web"],
            "to_channel": ["phone", "store"],
            "journeys": [1, 2],
            "customers": [1, 1],  # one customer leaked twice from the web to a store
            "revenue": [Decimal("0.00"), Decimal("3.50")],  # a sale without an amount adds 0
            "median_seconds": [5.0, 20.0],
        },
        schema_overrides={"revenue": pl.Decimal(18, 2)},
    )
    assert_frame_equal(leakage_summary(leaked), expected)
