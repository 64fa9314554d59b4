"""Attribution: converted journeys' steps to credit per channel or touchpoint.

Input grain: one step of a journey (``journeys.steps``) and one row per journey
(``journeys.journeys``: whether and for how much it converted).
Output grain: one row per (model, dimension, value) with the conversions and revenue credited
(``marts.attribution``). Models: ``first_touch`` (all credit to the first touch),
``last_touch`` (to the last touch before the conversion), ``linear`` (equal shares to every
touch), ``position_based`` (40% to the first touch, 40% to the last, 20% shared by those in
between; one touch takes all, two take half each) and ``markov`` (the removal effect of each
value on the first-order Markov chain of all finished journeys, converted and dropped,
computed exactly on the absorbing chain: see :func:`removal_effects`). The touches of a
journey are its steps before the conversion, without noise touchpoints (``sign_in``); a
journey with none (a purchase out of the blue) credits its conversion step. Fulfilment steps
after the conversion get no credit.
"""

from __future__ import annotations

import numpy as np
import polars as pl

MODELS = ("first_touch", "last_touch", "linear", "position_based")
START, CONVERSION, NULL = "START", "CONVERSION", "NULL"


def _shares(model: str) -> tuple[pl.Expr, pl.Expr]:
    """(numerator, denominator) of each step's share of its journey's conversion, from the
    step's place among its journey's touches (``touch``, from 0) and their number (``size``)."""
    position, size = pl.col("touch"), pl.col("size")
    if model == "first_touch":
        return (position == 0).cast(pl.Int64), pl.lit(1, dtype=pl.Int64)
    if model == "last_touch":
        return (position == size - 1).cast(pl.Int64), pl.lit(1, dtype=pl.Int64)
    if model == "position_based":
        ends = (position == 0) | (position == size - 1)
        share = (
            pl.when(size == 1)
            .then(1.0)
            .when(size == 2)  # two touches: half each
            .then(0.5)
            .when(ends)
            .then(0.4)
            .otherwise(0.2 / (size - 2))
        )
        return share, pl.lit(1, dtype=pl.Int64)
    return pl.lit(1, dtype=pl.Int64), size.cast(pl.Int64)


def _credits(touches: pl.DataFrame, dimension: str) -> dict[str, pl.DataFrame]:
    """Each model's credit of each journey per value: (steps with the value) /
    (denominator), so a journey with three web steps gives web exactly 1.0 under the linear
    model, not 3 x 1/3. ``touches``: as :func:`_numbered` gives them. One group-by for all
    the models; each frame lists the journeys in their order."""
    shares = {model: _shares(model) for model in MODELS}
    per_journey = (
        touches.with_columns(
            *(numerator.alias(f"{model}_numerator") for model, (numerator, _) in shares.items()),
            *(share.alias(f"{model}_denominator") for model, (_, share) in shares.items()),
        )
        .group_by("journey", dimension, maintain_order=True)
        .agg(
            pl.col([f"{model}_numerator" for model in MODELS]).sum(),
            pl.col([f"{model}_denominator" for model in MODELS]).first(),
            pl.col("journey_revenue").first(),
        )
    )
    return {
        model: per_journey.select(
            dimension,
            (pl.col(f"{model}_numerator") / pl.col(f"{model}_denominator")).alias("credit"),
            (
                pl.col("journey_revenue")
                * pl.col(f"{model}_numerator")
                / pl.col(f"{model}_denominator")
            ).alias("revenue_credit"),
        )
        for model in MODELS
    }


def _sum_in_order(weighted: pl.DataFrame, dimension: str) -> pl.DataFrame:
    """Credits summed per value in a fixed row order, that of the journeys (running sums:
    a group keeps the order of its rows), so that re-runs give bit-identical floats; a
    parallel sum may add in any order."""
    return weighted.group_by(pl.col(dimension).alias("value")).agg(
        pl.col("credit").cum_sum().last().alias("conversions"),
        pl.col("revenue_credit").cum_sum().last().alias("revenue"),
    )


def transitions(paths: pl.DataFrame) -> pl.DataFrame:
    """Transition counts of the first-order chain: each path (``path``: list of values,
    ``converted``: bool, optionally ``weight``: how many journeys took it) runs START -> its
    values -> CONVERSION or NULL.

    Example:
        >>> paths = pl.DataFrame({"path": [["a", "b"]], "converted": [True]})
        >>> transitions(paths).sort("from").rows()
        [('START', 'a', 1.0), ('a', 'b', 1.0), ('b', 'CONVERSION', 1.0)]
    """
    weight = pl.col("weight") if "weight" in paths.columns else pl.lit(1)
    states = paths.select(
        weight.cast(pl.Float64).alias("weight"),
        pl.concat_list(
            pl.lit([START]),
            pl.col("path"),
            pl.when("converted").then(pl.lit([CONVERSION])).otherwise(pl.lit([NULL])),
        ).alias("states"),
    ).with_row_index("journey")
    steps = states.explode("states").rename({"states": "from"})
    return (
        steps.with_columns(pl.col("from").shift(-1).over("journey").alias("to"))
        .drop_nulls("to")
        .group_by("from", "to")
        .agg(pl.col("weight").sum().alias("count"))
        .sort("from", "to")
    )


def conversion_probability(counts: pl.DataFrame, *, removed: str | None = None) -> float:
    """The probability that a walk from START is absorbed in CONVERSION, from transition
    counts, solved exactly on the absorbing chain: with Q the transitions among transient
    states and r the one-step conversion probabilities, ``x = (I - Q)^-1 r`` and the answer is
    x[START]. ``removed``: a state whose incoming transitions go to NULL instead (removal
    effect)."""
    transient = sorted(set(counts.get_column("from").to_list()) - {CONVERSION, NULL})
    index = {state: i for i, state in enumerate(transient)}
    size = len(transient)
    q = np.zeros((size, size))
    r = np.zeros(size)
    totals = dict(counts.group_by("from").agg(pl.col("count").sum()).iter_rows())
    for origin, target, count in counts.iter_rows():
        probability = count / totals[origin]
        if target == CONVERSION:
            r[index[origin]] += probability
        elif target not in {NULL, removed}:
            q[index[origin], index[target]] += probability
    solved = np.linalg.solve(np.eye(size) - q, r)
    return float(solved[index[START]])


def removal_effects(paths: pl.DataFrame) -> pl.DataFrame:
    """Each value's removal effect: 1 - P(conversion without it) / P(conversion), on the
    first-order chain of ``paths`` (``path``, ``converted``). The classic three-path example
    (Anderl et al.; ChannelAttribution's tutorial):

    Example:
        >>> paths = pl.DataFrame({"path": [["C1", "C2", "C3"], ["C1"], ["C2", "C3"]],
        ...                       "converted": [True, False, False]})
        >>> removal_effects(paths).rows()
        [('C1', 0.5), ('C2', 1.0), ('C3', 1.0)]
    """
    return _removal_effects(transitions(paths))


def _removal_effects(counts: pl.DataFrame) -> pl.DataFrame:
    """:func:`removal_effects` from the transition counts of the chain."""
    values = sorted(set(counts.get_column("from").to_list()) - {START, CONVERSION, NULL})
    base = conversion_probability(counts) if values else 0.0
    effects = [
        (value, 1.0 - conversion_probability(counts, removed=value) / base if base else 0.0)
        for value in values
    ]
    return pl.DataFrame(
        effects, schema={"value": pl.String, "removal_effect": pl.Float64}, orient="row"
    )


def _chain_transitions(touches: pl.DataFrame, dimension: str) -> pl.DataFrame:
    """:func:`transitions` of the journeys' paths of ``dimension`` values, counted from the
    touches themselves (:func:`_numbered`, with ``converted``) rather than from lists: each
    touch is a move from the one before it (or ``START``) and each journey's last touch
    moves on to ``CONVERSION`` or ``NULL``. Every count is a whole number, so the order of
    adding does not matter."""
    value = pl.col(dimension).cast(pl.String)
    moves = touches.select(
        pl.when(pl.col("touch") == 0).then(pl.lit(START)).otherwise(value.shift()).alias("from"),
        value.alias("to"),
    )
    ends = touches.group_by("journey", maintain_order=True).agg(
        value.last().alias("from"),
        pl.when(pl.col("converted").first())
        .then(pl.lit(CONVERSION))
        .otherwise(pl.lit(NULL))
        .alias("to"),
    )
    return (
        pl.concat([moves, ends.drop("journey")])
        .drop_nulls("to")
        .group_by("from", "to")
        .agg(pl.len().cast(pl.Float64).alias("count"))
        .sort("from", "to")
    )


def _markov(touches: pl.DataFrame, journeys: pl.DataFrame, dimension: str) -> pl.DataFrame:
    """Conversions and revenue shared out in proportion to the removal effects over the
    finished journeys' paths of ``dimension`` values (``touches``: as for
    :func:`_chain_transitions`)."""
    converted = journeys.filter(pl.col("status") != "open").filter("converted")
    conversions = float(converted.height)
    revenue = float(converted.get_column("revenue").cast(pl.Float64).fill_null(0.0).sum())
    effects = _removal_effects(_chain_transitions(touches, dimension))
    total = effects.get_column("removal_effect").sum()
    if not total:
        return pl.DataFrame(
            schema={"value": pl.String, "conversions": pl.Float64, "revenue": pl.Float64}
        )
    share = pl.col("removal_effect") / total
    return effects.select(
        "value", (share * conversions).alias("conversions"), (share * revenue).alias("revenue")
    )


def _numbered(touches: pl.DataFrame) -> pl.DataFrame:
    """Touches (in journey order, with ``journey``: a number per journey) with ``touch``
    (its place in the journey, from 0) and ``size`` (the journey's touches)."""
    return touches.with_columns(
        pl.int_range(pl.len()).over("journey").alias("touch"),
        pl.len().over("journey").alias("size"),
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
    outcomes = journeys.select(
        "journey_id",
        "status",
        "converted",
        pl.when("converted")
        .then(pl.col("revenue").cast(pl.Float64).fill_null(0.0))
        .alias("journey_revenue"),
    )
    # steps in journey order (the order every sum below adds in), with their journey's outcome
    ordered = (
        steps.filter(~pl.col("is_fulfilment"))
        .sort("journey_id", "position")
        .join(outcomes, on="journey_id", how="left", maintain_order="left")
        .with_columns(pl.col("journey_id").rle_id().alias("journey"))
    )
    kept = ~pl.col("touchpoint").is_in(list(drop_touchpoints))
    touch = ~pl.col("is_conversion") & kept
    # a converted journey's touches; one without any (a purchase out of the blue) credits its
    # conversion step. For the Markov chain, also every dropped journey's touches to its end
    credited = pl.col("converted") & (
        touch | (pl.col("is_conversion") & ~touch.any().over("journey"))
    )
    finished_touches = _numbered(
        ordered.filter(credited | ((pl.col("status") == "dropped") & kept))
    )
    converted = finished_touches.filter("converted")
    frames = []
    for dimension in dimensions:
        credits = _credits(converted, dimension)
        for model in MODELS:
            frames.append(
                _sum_in_order(credits[model], dimension)
                .select(
                    pl.lit(model).alias("model"),
                    pl.lit(dimension).alias("dimension"),
                    "value",
                    "conversions",
                    "revenue",
                )
                .filter(pl.col("conversions") > 0)
            )
    for dimension in dimensions:
        frames.append(
            _markov(finished_touches, journeys, dimension)
            .select(
                pl.lit("markov").alias("model"),
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
