from __future__ import annotations

from datetime import timedelta

import polars as pl

from journey_analytics.attribution import attribute
from journey_analytics.journeys import assign_journeys, summarise_journeys

from ._events import AS_OF, scenario


def test_first_last_linear_credit_over_the_touches_before_each_conversion() -> None:
    timeout = timedelta(days=30)
    steps = assign_journeys(scenario(), timeout=timeout)
    journeys = summarise_journeys(
        steps, timeout=timeout, as_of=AS_OF, drop_touchpoints=(), collapse_repeats=True
    )
    credit = attribute(steps, journeys, drop_touchpoints=("sign_in",))
    table = {(m, d, v): (c, r) for m, d, v, c, r in credit.rows()}
    # Touches before each conversion (sign_in is noise, the conversion step is not a touch):
    #   web:1  product_view, add_to_cart (web, web)  50   | web:4  product_view x2 (web)  80
    #   crm:1  try_on (store)                       120   | crm:30 email_click (email)     40
    #   crm:40 call (phone)                          30   | app:50 none: the order itself (app) 60
    by_channel = {
        ("web",): (2.0, 130.0),
        ("store",): (1.0, 120.0),
        ("email",): (1.0, 40.0),
        ("phone",): (1.0, 30.0),
        ("app",): (1.0, 60.0),
    }
    for model in ("first_touch", "last_touch", "linear"):
        assert {v: table[(m, d, v)] for m, d, v in table if m == model and d == "channel"} == {
            k[0]: value for k, value in by_channel.items()
        }
    touchpoint = {(m, v): cr for (m, d, v), cr in table.items() if d == "touchpoint"}
    assert touchpoint == {
        ("first_touch", "product_view"): (2.0, 130.0),
        ("first_touch", "try_on"): (1.0, 120.0),
        ("first_touch", "email_click"): (1.0, 40.0),
        ("first_touch", "call"): (1.0, 30.0),
        ("first_touch", "order_placed"): (1.0, 60.0),
        ("last_touch", "add_to_cart"): (1.0, 50.0),
        ("last_touch", "product_view"): (1.0, 80.0),
        ("last_touch", "try_on"): (1.0, 120.0),
        ("last_touch", "email_click"): (1.0, 40.0),
        ("last_touch", "call"): (1.0, 30.0),
        ("last_touch", "order_placed"): (1.0, 60.0),
        # web:1 splits its 50 between its two touches; web:4's two views are one value
        ("linear", "product_view"): (1.5, 105.0),
        ("linear", "add_to_cart"): (0.5, 25.0),
        ("linear", "try_on"): (1.0, 120.0),
        ("linear", "email_click"): (1.0, 40.0),
        ("linear", "call"): (1.0, 30.0),
        ("linear", "order_placed"): (1.0, 60.0),
    }
    totals = credit.group_by("model", "dimension").agg(pl.col("conversions", "revenue").sum())
    assert set(totals.select("conversions", "revenue").rows()) == {(6.0, 380.0)}
