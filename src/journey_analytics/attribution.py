"""Attribution: converted journeys' steps to credit per channel or touchpoint.

Input grain: one step of a journey (``journeys.steps``) and one row per journey
(``journeys.journeys``: whether and for how much it converted).
Output grain: one row per (model, dimension, value) with the conversions and revenue credited
(``marts.attribution``). Models: ``first_touch`` (all credit to the first touch),
``last_touch`` (to the last touch before the conversion) and ``linear`` (equal shares to every
touch). The touches of a journey are its steps before the conversion, without noise
touchpoints (``sign_in``); a journey with none (a purchase out of the blue) credits its
conversion step. Fulfilment steps after the conversion get no credit.
"""

from __future__ import annotations

import polars as pl

MODELS = ("first_touch", "last_touch", "linear")


def _shares(model: str) -> tuple[pl.Expr, pl.Expr]:
    """(numerator, denominator) of each step's share of its journey's conversion."""
    position = pl.int_range(pl.len()).over("journey_id")
    size = pl.len().over("journey_id")
    if model == "first_touch":
        return (position == 0).cast(pl.Int64), pl.lit(1, dtype=pl.Int64)
    if model == "last_touch":
        return (position == size - 1).cast(pl.Int64), pl.lit(1, dtype=pl.Int64)
    return pl.lit(1, dtype=pl.Int64), size.cast(pl.Int64)


def _credit(steps: pl.DataFrame, model: str, dimension: str) -> pl.DataFrame:
    """Each journey's credit per value: (steps with the value) / (denominator), so a journey
    with three web steps gives web exactly 1.0 under the linear model, not 3 x 1/3."""
    numerator, denominator = _shares(model)
    return (
        steps.with_columns(numerator.alias("numerator"), denominator.alias("denominator"))
        .group_by("journey_id", dimension, maintain_order=True)
        .agg(pl.col("numerator").sum(), pl.col("denominator", "journey_revenue").first())
        .with_columns(
            (pl.col("numerator") / pl.col("denominator")).alias("credit"),
            (pl.col("journey_revenue") * pl.col("numerator") / pl.col("denominator")).alias(
                "revenue_credit"
            ),
        )
    )


def _sum_in_order(weighted: pl.DataFrame, dimension: str) -> pl.DataFrame:
    """Credits summed per value in a fixed row order (running sums), so that re-runs give
    bit-identical floats; a parallel group-by sum may add in any order."""
    return (
        weighted.sort(dimension, "journey_id")
        .with_columns(
            pl.col("credit").cum_sum().over(dimension).alias("conversions"),
            pl.col("revenue_credit").cum_sum().over(dimension).alias("revenue"),
        )
        .group_by(pl.col(dimension).alias("value"), maintain_order=True)
        .agg(pl.col("conversions", "revenue").last())
    )


def attribute(
    steps: pl.DataFrame,
    journeys: pl.DataFrame,
    *,
    dimensions: tuple[str, ...] = ("channel", "touchpoint"),
    drop_touchpoints: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Credit of each model for each value of each dimension; every model's credits sum to the
    number of conversions and to their revenue. Values with no credit have no row."""
    revenue = journeys.filter("converted").select(
        "journey_id", pl.col("revenue").cast(pl.Float64).fill_null(0.0).alias("journey_revenue")
    )
    before = steps.filter(~pl.col("is_fulfilment")).join(revenue, on="journey_id")
    touches = before.filter(
        ~pl.col("is_conversion") & ~pl.col("touchpoint").is_in(list(drop_touchpoints))
    )
    out_of_the_blue = before.filter("is_conversion").join(
        touches.select("journey_id").unique(), on="journey_id", how="anti"
    )
    converted = pl.concat([touches, out_of_the_blue]).sort("journey_id", "position")
    frames = []
    for model in MODELS:
        for dimension in dimensions:
            frames.append(
                _sum_in_order(_credit(converted, model, dimension), dimension)
                .select(
                    pl.lit(model).alias("model"),
                    pl.lit(dimension).alias("dimension"),
                    "value",
                    "conversions",
                    "revenue",
                )
                .filter(pl.col("conversions") > 0)
            )
    schema = {
        "model": pl.String,
        "dimension": pl.String,
        "value": pl.String,
        "conversions": pl.Float64,
        "revenue": pl.Float64,
    }
    return pl.concat([pl.DataFrame(schema=schema), *frames]).sort("model", "dimension", "value")
