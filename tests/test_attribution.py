from __future__ import annotations

from datetime import timedelta

import polars as pl

from journey_analytics.attribution import attribute
from journey_analytics.journeys import assign_journeys

from ._events import scenario


def test_first_last_linear_credit_by_channel() -> None:
    steps = assign_journeys(scenario(), timeout=timedelta(days=30))
    credit = attribute(steps, dimensions=("channel",))
    table = {(m, v): (c, r) for m, _, v, c, r in credit.rows()}
    # journeys: web:1 (web x3, 50), web:4 (web x3 + store, 80), crm:1 (store + web, 120),
    # crm:30 (email + web, 40), crm:40 (phone + store, 30), app:50 (app, 60)
    assert table == {
        ("first_touch", "app"): (1.0, 60.0),
        ("first_touch", "email"): (1.0, 40.0),
        ("first_touch", "phone"): (1.0, 30.0),
        ("first_touch", "store"): (1.0, 120.0),
        ("first_touch", "web"): (2.0, 130.0),
        ("last_touch", "app"): (1.0, 60.0),
        ("last_touch", "store"): (2.0, 110.0),
        ("last_touch", "web"): (3.0, 210.0),
        ("linear", "app"): (1.0, 60.0),
        ("linear", "email"): (0.5, 20.0),
        ("linear", "phone"): (0.5, 15.0),
        ("linear", "store"): (0.25 + 0.5 + 0.5, 20.0 + 60.0 + 15.0),
        ("linear", "web"): (1.0 + 0.75 + 0.5 + 0.5, 50.0 + 60.0 + 60.0 + 20.0),
    }
    totals = credit.group_by("model").agg(pl.col("conversions", "revenue").sum()).sort("model")
    assert totals.rows() == [
        ("first_touch", 6.0, 380.0),
        ("last_touch", 6.0, 380.0),
        ("linear", 6.0, 380.0),
    ]
