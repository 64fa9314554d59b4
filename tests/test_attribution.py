from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_analytics.attribution import (
    attribute,
    conversion_probability,
    removal_effects,
    transitions,
)
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
    heuristic = ("first_touch", "last_touch", "linear")
    touchpoint = {
        (m, v): cr for (m, d, v), cr in table.items() if d == "touchpoint" and m in heuristic
    }
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


def _frames(
    paths: list[tuple[list[str], bool, float]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Steps and journeys of journeys whose touches are ``paths`` (channel = touchpoint); a
    converted journey ends with its order (``order``, not a touch), revenue as given."""
    steps, journeys = [], []
    for number, (path, converted, revenue) in enumerate(paths):
        journey = f"j{number}"
        touches = [*path, "order"] if converted else path
        for position, value in enumerate(touches, start=1):
            steps.append(
                {
                    "journey_id": journey,
                    "position": position,
                    "touchpoint": value,
                    "channel": value,
                    "is_fulfilment": False,
                    "is_conversion": converted and position == len(touches),
                }
            )
        journeys.append(
            {
                "journey_id": journey,
                "converted": converted,
                "status": "converted" if converted else "dropped",
                "revenue": revenue if converted else None,
            }
        )
    return pl.DataFrame(steps), pl.DataFrame(
        journeys,
        schema={
            **dict.fromkeys(("journey_id", "status"), pl.String),
            "converted": pl.Boolean,
            "revenue": pl.Float64,
        },
    )


def _credit_of(credit: pl.DataFrame, model: str) -> dict[str, tuple[float, float]]:
    rows = credit.filter((pl.col("model") == model) & (pl.col("dimension") == "channel"))
    return {v: (round(c, 12), round(r, 12)) for _, _, v, c, r in rows.rows()}


def test_position_based_gives_forty_twenty_forty() -> None:
    steps, journeys = _frames(
        [(["a", "b", "c", "d"], True, 100.0), (["a", "b"], True, 10.0), (["c"], True, 1.0)]
    )
    credit = attribute(steps, journeys)
    # 4 touches: a 40%, b and c 10% each, d 40%; 2 touches: half each; 1 touch: all
    assert _credit_of(credit, "position_based") == {
        "a": (0.9, 45.0),
        "b": (0.6, 15.0),
        "c": (1.1, 11.0),
        "d": (0.4, 40.0),
    }


def test_markov_removal_effects_on_the_classic_three_paths() -> None:
    # Anderl et al.'s example as in ChannelAttribution's tutorial: C1 > C2 > C3 converts,
    # C1 and C2 > C3 do not. P(conversion) = 1/3; without C1 1/6 (removal effect 1/2),
    # without C2 or C3 0 (1 each): the conversion is shared 0.2 / 0.4 / 0.4.
    paths = pl.DataFrame(
        {"path": [["C1", "C2", "C3"], ["C1"], ["C2", "C3"]], "converted": [True, False, False]}
    )
    assert conversion_probability(transitions(paths)) == pytest.approx(1 / 3, rel=1e-12)
    assert removal_effects(paths).rows() == [("C1", 0.5), ("C2", 1.0), ("C3", 1.0)]
    steps, journeys = _frames(
        [(["C1", "C2", "C3"], True, 50.0), (["C1"], False, 0.0), (["C2", "C3"], False, 0.0)]
    )
    assert _credit_of(attribute(steps, journeys), "markov") == {
        "C1": (0.2, 10.0),
        "C2": (0.4, 20.0),
        "C3": (0.4, 20.0),
    }


_value = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(_value, min_size=1, max_size=6), st.booleans()), min_size=1, max_size=30
    )
)
def test_the_chain_converts_at_the_observed_rate(journeys: list[tuple[list[str], bool]]) -> None:
    # Reference check: the chain estimated from the paths conserves their flow, so a walk from
    # START converts with exactly the share of paths that converted (an identity independent
    # of the linear solve).
    paths = pl.DataFrame(
        {"path": [p for p, _ in journeys], "converted": [c for _, c in journeys]},
        schema={"path": pl.List(pl.String), "converted": pl.Boolean},
    )
    expected = sum(c for _, c in journeys) / len(journeys)
    assert conversion_probability(transitions(paths)) == pytest.approx(expected, abs=1e-12)
    effects = removal_effects(paths).get_column("removal_effect").to_list()
    assert all(-1e-12 <= effect <= 1 + 1e-12 for effect in effects)


REAL = Path(__file__).resolve().parents[2] / "shared" / "real-data" / "attribution"


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-data is not beside the project")
def test_markov_on_channelattribution_example_paths() -> None:
    # 10,000 aggregated paths (19,785 conversions, 68,602 nulls) of the ChannelAttribution
    # package: the chain converts at the observed rate, and every channel's removal effect is
    # a share between 0 and 1.
    data = pl.read_csv(REAL / "channelattribution_paths.csv", separator=";")
    paths = pl.concat(
        [
            data.select(
                pl.col("path").str.split(" > ").alias("path"),
                pl.lit(value=True).alias("converted"),
                pl.col("total_conversions").alias("weight"),
            ),
            data.select(
                pl.col("path").str.split(" > ").alias("path"),
                pl.lit(value=False).alias("converted"),
                pl.col("total_null").alias("weight"),
            ),
        ]
    ).filter(pl.col("weight") > 0)
    probability = conversion_probability(transitions(paths))
    assert probability == pytest.approx(19_785 / (19_785 + 68_602), rel=1e-12)
    effects = removal_effects(paths)
    assert effects.height == 12
    assert effects.get_column("removal_effect").is_between(0, 1).all()
