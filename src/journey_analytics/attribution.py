"""Attribution: converted journeys' steps to credit per channel or touchpoint.

Input grain: one step of a journey (``journeys.steps`` with revenue of the conversion).
Output grain: one row per (model, dimension, value) with the conversions and revenue credited
(``marts.attribution``). Models: ``first_touch`` (all credit to the first step),
``last_touch`` (to the conversion step) and ``linear`` (equal shares to every step up to and
including the conversion). Fulfilment steps after the conversion get no credit.
"""

from __future__ import annotations

import polars as pl

MODELS = ("first_touch", "last_touch", "linear")


def _weights(model: str) -> pl.Expr:
    position = pl.int_range(pl.len()).over("journey_id")
    size = pl.len().over("journey_id")
    if model == "first_touch":
        return (position == 0).cast(pl.Float64)
    if model == "last_touch":
        return (position == size - 1).cast(pl.Float64)
    return pl.lit(1.0) / size


def attribute(steps: pl.DataFrame, *, dimensions: tuple[str, ...] = ("channel", "touchpoint")
              ) -> pl.DataFrame:
    """Credit of each model for each value of each dimension; every model's credits sum to the
    number of conversions and to their revenue. Values with no credit have no row."""
    revenue = (
        steps.filter("is_conversion")
        .select("journey_id", pl.col("revenue").cast(pl.Float64).fill_null(0.0).alias("journey_revenue"))
    )
    converted = (
        steps.filter(~pl.col("is_fulfilment"))
        .join(revenue, on="journey_id")
        .sort("journey_id", "position")
    )
    frames = []
    for model in MODELS:
        weighted = converted.with_columns(_weights(model).alias("credit"))
        for dimension in dimensions:
            frames.append(
                weighted.group_by(pl.col(dimension).alias("value"))
                .agg(
                    pl.col("credit").sum().alias("conversions"),
                    (pl.col("credit") * pl.col("journey_revenue")).sum().alias("revenue"),
                )
                .select(
                    pl.lit(model).alias("model"),
                    pl.lit(dimension).alias("dimension"),
                    "value",
                    "conversions",
                    "revenue",
                )
                .filter(pl.col("conversions") > 0)
            )
    schema = {"model": pl.String, "dimension": pl.String, "value": pl.String,
              "conversions": pl.Float64, "revenue": pl.Float64}
    return pl.concat([pl.DataFrame(schema=schema), *frames]).sort("model", "dimension", "value")
