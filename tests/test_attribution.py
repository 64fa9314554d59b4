from __future__ import annotations

import itertools
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_analytics.attribution import (
    CONVERSION,
    NULL,
    START,
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


# ── Reference: the Markov removal effects computed independently of attribution.py ─────────
# Transition counts in plain dicts straight from the paths, and the absorption probability by
# value iteration (no matrix, no linear solve). The removal effect follows Anderl et al.
# (2016), as ChannelAttribution does and as attribution.conversion_probability(removed=...)
# implements it: the channel's state is removed and every transition into it (START's
# included) goes to NULL instead; the effect is 1 - P(conversion without it) / P(conversion).

WeightedPath = tuple[list[str], bool, float]  # (channels, converted, weight: how many journeys)


def _reference_counts(paths: list[WeightedPath]) -> dict[str, dict[str, float]]:
    """Weighted first-order transition counts: START -> channels -> CONVERSION or NULL."""
    counts: dict[str, dict[str, float]] = {}
    for path, converted, weight in paths:
        states = [START, *path, CONVERSION if converted else NULL]
        for origin, target in itertools.pairwise(states):
            exits = counts.setdefault(origin, {})
            exits[target] = exits.get(target, 0.0) + weight
    return counts


def _reference_conversion(counts: dict[str, dict[str, float]], removed: str | None = None) -> float:
    """P(absorbed in CONVERSION | START) by value iteration x <- Q x + r from x = 0, which
    rises to the absorption probabilities; stops once no state changes by 1e-15."""
    probabilities = {
        origin: {target: n / sum(exits.values()) for target, n in exits.items()}
        for origin, exits in counts.items()
    }

    def value(target: str, x: dict[str, float]) -> float:
        if target == CONVERSION:
            return 1.0
        return 0.0 if target in {NULL, removed} else x[target]

    x = dict.fromkeys(probabilities, 0.0)
    for _ in range(1_000_000):
        new = {
            origin: sum(p * value(target, x) for target, p in exits.items())
            for origin, exits in probabilities.items()
        }
        change = max(abs(new[state] - x[state]) for state in x)
        x = new
        if change < 1e-15:
            return x[START]
    msg = "value iteration did not converge"
    raise AssertionError(msg)


def _reference_removal_effects(paths: list[WeightedPath]) -> dict[str, float]:
    counts = _reference_counts(paths)
    base = _reference_conversion(counts)
    channels = sorted({channel for path, _, _ in paths for channel in path})
    return {
        channel: 1.0 - _reference_conversion(counts, channel) / base if base else 0.0
        for channel in channels
    }


def _paths_frame(paths: list[WeightedPath]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "path": [p for p, _, _ in paths],
            "converted": [c for _, c, _ in paths],
            "weight": [w for _, _, w in paths],
        },
        schema={"path": pl.List(pl.String), "converted": pl.Boolean, "weight": pl.Float64},
    )


# Loops and repeats: A comes back after B, B and A repeat themselves, C leads back to B.
LOOPS: list[WeightedPath] = [
    (["A", "B", "A", "C"], True, 1.0),
    (["B", "B"], True, 1.0),
    (["A", "A"], False, 1.0),
    (["C", "B"], False, 1.0),
]


def test_markov_removal_effects_with_loops_match_the_hand_computation_and_the_reference() -> None:
    # Transition probabilities:  START: A 2/4, B 1/4, C 1/4
    #   A: A, B, C, NULL 1/4 each;  B: A, B, CONVERSION, NULL 1/4 each;  C: CONVERSION, B 1/2.
    # Absorption (a, b, c = P(conversion) from A, B, C):
    #   b = (a + b + 1) / 4 -> b = (a + 1) / 3;  c = 1/2 + b/2 = (a + 4) / 6;
    #   a = (a + b + c) / 4 -> 3a = b + c = (a + 2) / 2 -> a = 2/5, b = 7/15, c = 11/15;
    #   P = a/2 + b/4 + c/4 = 1/2 (the observed rate, 2 of 4).
    # Without A (a = 0): b = 1/3, c = 2/3, P = 1/4             -> removal effect 1/2.
    # Without B (b = 0): c = 1/2, 3a/4 = c/4 -> a = 1/6, P = 5/24 -> 1 - 5/12  = 7/12.
    # Without C (c = 0): 3a = b = (a + 1) / 3 -> a = 1/8, b = 3/8, P = 5/32 -> 1 - 5/16 = 11/16.
    exact = {"A": Fraction(1, 2), "B": Fraction(7, 12), "C": Fraction(11, 16)}
    frame = _paths_frame(LOOPS)
    assert conversion_probability(transitions(frame)) == pytest.approx(0.5, abs=1e-12)
    assert _reference_conversion(_reference_counts(LOOPS)) == pytest.approx(0.5, abs=1e-12)
    reference = _reference_removal_effects(LOOPS)
    computed = dict(removal_effects(frame).iter_rows())
    assert computed.keys() == reference.keys() == exact.keys()
    for channel, effect in exact.items():
        assert reference[channel] == pytest.approx(float(effect), abs=1e-9)
        assert computed[channel] == pytest.approx(reference[channel], abs=1e-9)
    # attribute() shares the 2 conversions (revenue 30 + 55) in proportion to the effects:
    # 1/2 + 7/12 + 11/16 = 85/48, so A 24/85, B 28/85, C 33/85 of each.
    revenues = (30.0, 55.0, 0.0, 0.0)
    steps, journeys = _frames(
        [
            (path, converted, revenue)
            for (path, converted, _), revenue in zip(LOOPS, revenues, strict=True)
        ]
    )
    credit = attribute(steps, journeys, dimensions=("channel",))
    markov = {v: (c, r) for m, _, v, c, r in credit.rows() if m == "markov"}
    total = sum(exact.values())
    assert markov.keys() == exact.keys()
    for channel, effect in exact.items():
        share = effect / total
        assert markov[channel] == pytest.approx((float(2 * share), float(85 * share)), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(_value, min_size=1, max_size=6), st.booleans(), st.integers(1, 5)),
        min_size=1,
        max_size=20,
    )
)
def test_markov_removal_effects_match_the_reference_on_random_paths(
    drawn: list[tuple[list[str], bool, int]],
) -> None:
    # With no conversion at all every effect is 0 in both (nothing to remove from).
    paths = [(path, converted, float(weight)) for path, converted, weight in drawn]
    computed: dict[str, float] = dict(removal_effects(_paths_frame(paths)).iter_rows())
    reference = _reference_removal_effects(paths)
    assert computed.keys() == reference.keys()
    for channel, effect in reference.items():
        assert computed[channel] == pytest.approx(effect, abs=1e-9)


def _real_paths() -> list[WeightedPath]:
    """The ChannelAttribution paths, each as a converted path weighted by total_conversions
    and a null one weighted by total_null; weights of 0 left out (they add no transition)."""
    data = pl.read_csv(REAL / "channelattribution_paths.csv", separator=";")
    paths: list[WeightedPath] = []
    for path, conversions, nulls in data.select(
        "path", "total_conversions", "total_null"
    ).iter_rows():
        channels = path.split(" > ")
        paths.extend(
            (channels, converted, float(weight))
            for converted, weight in ((True, conversions), (False, nulls))
            if weight > 0
        )
    return paths


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-data is not beside the project")
def test_markov_removal_effects_on_channelattribution_paths_match_the_reference() -> None:
    paths = _real_paths()
    reference = _reference_removal_effects(paths)
    computed: dict[str, float] = dict(removal_effects(_paths_frame(paths)).iter_rows())
    assert sorted(computed) == sorted(reference)
    assert len(reference) == 12
    for channel, effect in reference.items():
        assert computed[channel] == pytest.approx(effect, abs=1e-9), channel


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real-data is not beside the project")
def test_markov_credit_on_channelattribution_paths_follows_the_reference_shares() -> None:
    # The 88,387 journeys themselves (19,785 converted, each with the row's mean conversion
    # value as revenue) through attribute(): each channel's Markov credit is its removal
    # effect's share of the sum, times the conversions and times the revenue.
    data = pl.read_csv(REAL / "channelattribution_paths.csv", separator=";").with_row_index()
    copies = pl.concat(
        data.filter(pl.col(weight) > 0).select(
            pl.format("j{}:{}", "index", pl.lit(weight)).alias("row"),
            pl.lit(converted).alias("converted"),
            pl.int_ranges(pl.col(weight).cast(pl.Int64)).alias("copy"),
            pl.col("path").str.split(" > "),
            (pl.col("total_conversion_value") / pl.col("total_conversions")).alias("revenue"),
        )
        for converted, weight in ((True, "total_conversions"), (False, "total_null"))
    ).explode("copy")
    journeys = copies.select(
        pl.format("{}:{}", "row", "copy").alias("journey_id"),
        "converted",
        pl.when("converted").then(pl.lit("converted")).otherwise(pl.lit("dropped")).alias("status"),
        pl.when("converted").then("revenue").alias("revenue"),
        # a converted journey ends with its order, which is no touch
        pl.when("converted")
        .then(pl.concat_list("path", pl.lit(["order"])))
        .otherwise("path")
        .alias("touchpoint"),
    )
    steps = (
        journeys.select("journey_id", "converted", "touchpoint")
        .explode("touchpoint")
        .with_columns(pl.int_range(1, pl.len() + 1).over("journey_id").alias("position"))
        .select(
            "journey_id",
            "position",
            "touchpoint",
            pl.col("touchpoint").alias("channel"),
            pl.lit(value=False).alias("is_fulfilment"),
            (pl.col("converted") & (pl.col("touchpoint") == "order")).alias("is_conversion"),
        )
    )
    assert journeys.filter("converted").height == 19_785
    assert journeys.height == 19_785 + 68_602
    credit = attribute(steps, journeys.drop("touchpoint"), dimensions=("channel",))
    markov = {v: (c, r) for m, _, v, c, r in credit.rows() if m == "markov"}
    reference = _reference_removal_effects(_real_paths())
    total_effect = sum(reference.values())
    total_revenue = float(journeys.get_column("revenue").sum())
    assert markov.keys() == reference.keys()
    for channel, effect in reference.items():
        share = effect / total_effect
        expected = (19_785 * share, total_revenue * share)
        assert markov[channel] == pytest.approx(expected, rel=1e-9), channel
