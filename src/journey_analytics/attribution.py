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
    """(numerator, denominator) of each step's share of its journey's conversion, whole
    numbers, from the step's place among its journey's touches (``touch``, from 0) and their
    number (``size``). Position-based shares are 2/5 at each end and 1/5 shared by those in
    between: (2 (size - 2)) / (5 (size - 2)) and 1 / (5 (size - 2))."""
    position, size = pl.col("touch").cast(pl.Int64), pl.col("size").cast(pl.Int64)
    one = pl.lit(1, dtype=pl.Int64)
    if model == "first_touch":
        return (position == 0).cast(pl.Int64), one
    if model == "last_touch":
        return (position == size - 1).cast(pl.Int64), one
    if model == "position_based":
        ends = (position == 0) | (position == size - 1)
        numerator = (
            pl.when(size <= 2)  # one touch takes all, two take half each
            .then(one)
            .when(ends)
            .then(2 * (size - 2))
            .otherwise(one)
        )
        denominator = pl.when(size <= 2).then(size).otherwise(5 * (size - 2))
        return numerator, denominator
    return one, size


NUMERATOR_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "dimension": pl.String(),
    "value": pl.String(),
    "denominator": pl.Int64(),
    "numerator": pl.Int64(),
    "revenue_numerator": pl.Decimal(38, 2),
}
CHAIN_SCHEMA: dict[str, pl.DataType] = {
    "dimension": pl.String(),
    "from_value": pl.String(),
    "to_value": pl.String(),
    "transitions": pl.Int64(),
}
NUMERATOR_KEYS = ("model", "dimension", "value", "denominator")
NUMERATOR_SUMS = ("numerator", "revenue_numerator")
CHAIN_KEYS = ("dimension", "from_value", "to_value")


def _numerators(touches: pl.DataFrame, dimension: str) -> pl.DataFrame:
    """Each model's credit of the converted journeys (``touches``: as :func:`_numbered`
    gives them) as exact fractions summed per (value, denominator): the journeys' whole
    numerators (steps with the value) and their revenue times those numerators, so that a
    journey with three web steps gives web 3/3 under the linear model. Sums of whole numbers
    and decimals do not depend on the order they are added in, nor on how the journeys are
    split between runs."""
    shares = {model: _shares(model) for model in MODELS}
    per_journey = (
        touches.with_columns(
            *(numerator.alias(f"{model}_numerator") for model, (numerator, _) in shares.items()),
            *(share.alias(f"{model}_denominator") for model, (_, share) in shares.items()),
        )
        .group_by("journey", dimension)
        .agg(
            pl.col([f"{model}_numerator" for model in MODELS]).sum(),
            pl.col([f"{model}_denominator" for model in MODELS]).first(),
            pl.col("journey_revenue").first(),
        )
    )
    frames = [
        per_journey.select(
            pl.lit(model).alias("model"),
            pl.lit(dimension).alias("dimension"),
            pl.col(dimension).cast(pl.String).alias("value"),
            pl.col(f"{model}_denominator").alias("denominator"),
            pl.col(f"{model}_numerator").alias("numerator"),
            (pl.col("journey_revenue") * pl.col(f"{model}_numerator")).alias("revenue_numerator"),
        )
        for model in MODELS
    ]
    return (
        pl.concat(frames)
        .filter(pl.col("numerator") > 0)
        .group_by(NUMERATOR_KEYS)
        .agg(pl.col("numerator").sum(), pl.col("revenue_numerator").sum())
        .cast(NUMERATOR_SCHEMA)  # type: ignore[arg-type]
    )


def _credits_from_numerators(numerators: pl.DataFrame) -> pl.DataFrame:
    """Conversions and revenue credited per (model, dimension, value): the fractions
    numerator / denominator added in the order of their denominators, so that the same
    numerators always give the same floats."""
    return (
        numerators.sort(NUMERATOR_KEYS)
        .with_columns(
            (pl.col("numerator") / pl.col("denominator")).alias("credit"),
            (pl.col("revenue_numerator").cast(pl.Float64) / pl.col("denominator")).alias(
                "revenue_credit"
            ),
        )
        .group_by("model", "dimension", "value", maintain_order=True)
        .agg(
            pl.col("credit").cum_sum().last().alias("conversions"),
            pl.col("revenue_credit").cum_sum().last().alias("revenue"),
        )
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
    moves on to ``CONVERSION`` or ``NULL``. Rows of :data:`CHAIN_SCHEMA`; whole numbers, so
    the order of adding does not matter."""
    value = pl.col(dimension).cast(pl.String)
    moves = touches.select(
        pl.when(pl.col("touch") == 0).then(pl.lit(START)).otherwise(value.shift()).alias("from"),
        value.alias("to"),
    )
    ends = touches.group_by("journey").agg(
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
        .agg(pl.len().alias("transitions"))
        .select(
            pl.lit(dimension).alias("dimension"),
            pl.col("from").alias("from_value"),
            pl.col("to").alias("to_value"),
            "transitions",
        )
        .cast(CHAIN_SCHEMA)  # type: ignore[arg-type]
    )


def _markov(chain: pl.DataFrame, *, conversions: int, revenue: float) -> pl.DataFrame:
    """Conversions and revenue shared out in proportion to the removal effects on the chain
    of one dimension's values (rows of :data:`CHAIN_SCHEMA`)."""
    counts = chain.select(
        pl.col("from_value").alias("from"),
        pl.col("to_value").alias("to"),
        pl.col("transitions").cast(pl.Float64).alias("count"),
    ).sort("from", "to")
    effects = _removal_effects(counts)
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


def _finished_touches(
    steps: pl.DataFrame, journeys: pl.DataFrame, *, drop_touchpoints: tuple[str, ...]
) -> pl.DataFrame:
    """The touches of the finished journeys (:func:`_numbered`): a converted journey's steps
    before its conversion (one without any, a purchase out of the blue, credits its
    conversion step) and a dropped journey's steps to its end, with the journey's outcome."""
    outcomes = journeys.select(
        "journey_id",
        "status",
        "converted",
        pl.when("converted")
        .then(pl.col("revenue").cast(pl.Decimal(18, 2)).fill_null(0))
        .alias("journey_revenue"),
    )
    ordered = (
        steps.filter(~pl.col("is_fulfilment"))
        .sort("journey_id", "position")
        .join(outcomes, on="journey_id", how="left", maintain_order="left")
        .with_columns(pl.col("journey_id").rle_id().alias("journey"))
    )
    kept = ~pl.col("touchpoint").is_in(list(drop_touchpoints))
    touch = ~pl.col("is_conversion") & kept
    credited = pl.col("converted") & (
        touch | (pl.col("is_conversion") & ~touch.any().over("journey"))
    )
    return _numbered(ordered.filter(credited | ((pl.col("status") == "dropped") & kept)))


def attribution_state(
    steps: pl.DataFrame,
    journeys: pl.DataFrame,
    *,
    dimensions: tuple[str, ...] = ("channel", "touchpoint"),
    drop_touchpoints: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What :func:`attribute` needs of these journeys, as sums that add up across sets of
    journeys: the heuristic models' numerators per denominator (:data:`NUMERATOR_SCHEMA`) and
    the Markov chain's transition counts (:data:`CHAIN_SCHEMA`). An incremental run adds a
    day's journeys' state and subtracts that of the journeys they replace."""
    touches = _finished_touches(steps, journeys, drop_touchpoints=drop_touchpoints)
    converted = touches.filter("converted")
    numerators = pl.concat(
        [pl.DataFrame(schema=NUMERATOR_SCHEMA)]
        + [_numerators(converted, dimension) for dimension in dimensions]
    ).sort(NUMERATOR_KEYS)
    chain = pl.concat(
        [pl.DataFrame(schema=CHAIN_SCHEMA)]
        + [_chain_transitions(touches, dimension) for dimension in dimensions]
    ).sort(CHAIN_KEYS)
    return numerators, chain


def attribution_from_state(
    numerators: pl.DataFrame, chain: pl.DataFrame, *, conversions: int, revenue: float
) -> pl.DataFrame:
    """``marts.attribution`` from :func:`attribution_state` (summed over every journey) and
    the finished journeys' conversions and revenue, which the Markov model shares out."""
    frames = [
        _credits_from_numerators(numerators)
        .select("model", "dimension", "value", "conversions", "revenue")
        .filter(pl.col("conversions") > 0)
    ]
    for (dimension,), links in chain.sort(CHAIN_KEYS).group_by("dimension", maintain_order=True):
        frames.append(
            _markov(links, conversions=conversions, revenue=revenue)
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


def attribute(
    steps: pl.DataFrame,
    journeys: pl.DataFrame,
    *,
    dimensions: tuple[str, ...] = ("channel", "touchpoint"),
    drop_touchpoints: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Credit of each model for each value of each dimension; every model's credits sum to the
    number of conversions and to their revenue. Values with no credit have no row."""
    numerators, chain = attribution_state(
        steps, journeys, dimensions=dimensions, drop_touchpoints=drop_touchpoints
    )
    finished = journeys.filter((pl.col("status") != "open") & pl.col("converted"))
    # a sum of decimals (the warehouse's revenue) is exact; floats add as they come
    revenue = finished.get_column("revenue").fill_null(0).sum()
    return attribution_from_state(
        numerators, chain, conversions=finished.height, revenue=float(revenue)
    )
