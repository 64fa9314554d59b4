"""Journeys: events with customer and session to journeys, steps and cleaned paths.

Input grain: one event (with ``customer_key`` and ``session_id``).
Output grain: ``assign_journeys`` one row per event in a journey (the steps, with position);
``summarise_journeys`` one row per journey.

A journey is the sequence of a customer's events that leads to one conversion, or that ends
without one after ``timeout`` of inactivity (a drop-off). Fulfilment steps of the same order
(a pickup, a return, a review naming the order) that come after the conversion belong to the
conversion's journey. A journey without conversion whose last event is less than ``timeout``
before ``as_of`` (the end of the data) is still ``open``: it is not counted as a drop-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import polars as pl

from journey_analytics.taxonomy import STAGES

PATH_SEPARATOR = " > "


# Among events at the same instant a conversion comes last: what happened at the moment of a
# purchase led to it, and does not open the next journey. Then the event id, for a fixed order.
EVENT_ORDER = ("occurred_at", "is_conversion", "event_id")


def assign_journeys(
    events: pl.DataFrame, *, timeout: timedelta, noise_touchpoints: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Adds ``journey_id`` (``"j:" + first event_id``), ``position`` and ``is_fulfilment``.

    A later non-conversion event that carries the ``order_id`` of a conversion (a pickup, a
    return, a review) is a fulfilment step of that conversion's journey, even when the person
    who collects the order was stitched to another customer. So are noise touchpoints (a
    ``sign_in`` to write the review) in a session whose other events are all fulfilment steps:
    they open no journey of their own. Events need a ``session_id`` for that rule.
    """
    ordered = events.sort("customer_key", *EVENT_ORDER)
    conversions = (
        events.filter(pl.col("is_conversion") & pl.col("order_id").is_not_null())
        .sort(*EVENT_ORDER)
        .select(
            "order_id",
            pl.col("event_id").alias("conversion_event_id"),
            pl.col("occurred_at").alias("converted_at"),
        )
        .unique("order_id", keep="first", maintain_order=True)
    )
    flagged = ordered.join(
        conversions, on="order_id", how="left", maintain_order="left"
    ).with_columns(
        (
            ~pl.col("is_conversion")
            & pl.col("conversion_event_id").is_not_null()
            & (pl.col("occurred_at") >= pl.col("converted_at"))
        ).alias("is_fulfilment")
    )
    if noise_touchpoints and "session_id" in flagged.columns:
        flagged = _attach_noise_to_fulfilment(flagged, noise_touchpoints)
    main = flagged.filter(~pl.col("is_fulfilment"))
    new_customer = pl.col("customer_key") != pl.col("customer_key").shift()
    after_conversion = pl.col("is_conversion").shift()
    long_gap = (pl.col("occurred_at") - pl.col("occurred_at").shift()) > timeout
    starts = (new_customer | after_conversion | long_gap).fill_null(True)
    main = main.with_columns(
        pl.when(starts).then(pl.lit("j:") + pl.col("event_id")).forward_fill().alias("journey_id")
    )
    journey_of_conversion = main.filter("is_conversion").select(
        pl.col("event_id").alias("conversion_event_id"), "journey_id"
    )
    fulfilment = flagged.filter("is_fulfilment").join(
        journey_of_conversion, on="conversion_event_id", how="left", maintain_order="left"
    )
    steps = pl.concat([main, fulfilment], how="diagonal_relaxed")
    return (
        steps.drop("conversion_event_id", "converted_at")
        # fulfilment steps after the conversion, also one at the same instant
        .sort("journey_id", "is_fulfilment", *EVENT_ORDER)
        .with_columns(
            pl.int_range(1, pl.len() + 1).over("journey_id").cast(pl.Int64).alias("position")
        )
    )


def _attach_noise_to_fulfilment(
    flagged: pl.DataFrame, noise_touchpoints: tuple[str, ...]
) -> pl.DataFrame:
    """Noise events in sessions made only of fulfilment steps and noise join those steps'
    conversion."""
    is_noise = ~pl.col("is_conversion") & pl.col("touchpoint").is_in(list(noise_touchpoints))
    sessions = (
        flagged.group_by("session_id")
        .agg(
            (pl.col("is_fulfilment") | is_noise).all().alias("only_fulfilment_and_noise"),
            pl.col("conversion_event_id").filter("is_fulfilment").first().alias("_conversion"),
            pl.col("converted_at").filter("is_fulfilment").first().alias("_converted_at"),
        )
        .filter(pl.col("only_fulfilment_and_noise") & pl.col("_conversion").is_not_null())
        .drop("only_fulfilment_and_noise")
    )
    joined = flagged.join(sessions, on="session_id", how="left", maintain_order="left")
    attach = (
        is_noise
        & ~pl.col("is_fulfilment")
        & pl.col("_conversion").is_not_null()
        & (pl.col("occurred_at") >= pl.col("_converted_at"))  # never a step before the sale
    )
    return joined.with_columns(
        pl.when(attach)
        .then("_conversion")
        .otherwise("conversion_event_id")
        .alias("conversion_event_id"),
        pl.when(attach).then("_converted_at").otherwise("converted_at").alias("converted_at"),
        (pl.col("is_fulfilment") | attach).alias("is_fulfilment"),
    ).drop("_conversion", "_converted_at")


ELLIPSIS = "…"


def alias_touchpoints(touchpoints: pl.Expr, aliases: Mapping[str, str]) -> pl.Expr:
    """Touchpoints renamed by the first alias rule whose regular expression matches the whole
    name (``{"product_view_.*": "product_view"}``); others unchanged.

    Example:
        >>> frame = pl.DataFrame({"t": ["search_shoes", "search_bags", "call"]})
        >>> frame.select(alias_touchpoints(pl.col("t"), {"search_.*": "search"}))["t"].to_list()
        ['search', 'search', 'call']
    """
    renamed = touchpoints
    for pattern, name in reversed(list(aliases.items())):
        renamed = (
            pl.when(touchpoints.str.contains(f"^(?:{pattern})$"))
            .then(pl.lit(name))
            .otherwise(renamed)
        )
    return renamed.alias(touchpoints.meta.output_name())  # the column keeps its name


def clean_path(
    touchpoints: pl.Expr,
    *,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None = None,
) -> pl.Expr:
    """A list of touchpoints without noise touchpoints, with consecutive repeats collapsed,
    and longer than ``max_length`` shown as its start, ``…`` and its end (``max_length``
    items in all, the start one longer when they do not split evenly)."""
    kept = touchpoints.list.filter(~pl.element().is_in(list(drop_touchpoints)))
    if collapse_repeats:
        kept = kept.list.eval(
            pl.element().filter((pl.element() != pl.element().shift()).fill_null(True))
        )
    if max_length is not None:
        head, tail = max_length // 2, (max_length - 1) // 2
        kept = (
            pl.when(kept.list.len() > max_length)
            .then(pl.concat_list(kept.list.head(head), pl.lit([ELLIPSIS]), kept.list.tail(tail)))
            .otherwise(kept)
        )
    return kept


def journey_status(*, as_of: datetime, timeout: timedelta) -> pl.Expr:
    """``converted``; ``open`` when its last event is less than ``timeout`` before ``as_of``
    (the end of the data); else ``dropped``. Reads ``converted`` and ``ended_at``."""
    open_until = pl.lit(as_of, dtype=pl.Datetime("us", "UTC")) - timeout
    return (
        pl.when("converted")
        .then(pl.lit("converted"))
        .when(pl.col("ended_at") >= open_until)
        .then(pl.lit("open"))
        .otherwise(pl.lit("dropped"))
        .alias("status")
    )


def seconds_to_convert() -> pl.Expr:
    """Seconds from ``started_at`` to ``converted_at`` (null without a conversion)."""
    return (
        (pl.col("converted_at") - pl.col("started_at"))
        .dt.total_microseconds()
        .truediv(1e6)
        .alias("seconds_to_convert")
    )


def summarise_journeys(
    steps: pl.DataFrame,
    *,
    timeout: timedelta,
    as_of: datetime,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None = None,
) -> pl.DataFrame:
    """One row per journey: span, status, conversion, revenue and cleaned path
    (:func:`clean_path`)."""
    summary = (
        steps.sort("journey_id", "position")
        .group_by("journey_id", maintain_order=True)
        .agg(
            pl.col("customer_key").first(),
            pl.col("occurred_at").min().alias("started_at"),
            pl.col("occurred_at").max().alias("ended_at"),
            pl.col("is_conversion").any().alias("converted"),
            pl.col("event_id").filter("is_conversion").first().alias("conversion_event_id"),
            pl.col("occurred_at").filter("is_conversion").first().alias("converted_at"),
            pl.col("revenue").filter("is_conversion").first().alias("revenue"),
            pl.len().cast(pl.Int64).alias("events"),
            pl.col("channel").first().alias("first_channel"),
            pl.col("touchpoint").alias("touchpoints"),
        )
        .with_columns(
            clean_path(
                pl.col("touchpoints"),
                drop_touchpoints=drop_touchpoints,
                collapse_repeats=collapse_repeats,
                max_length=max_length,
            ).alias("cleaned")
        )
        .with_columns(
            # a journey of noise only shows it, uncleaned but capped
            pl.when(pl.col("cleaned").list.len() > 0)
            .then("cleaned")
            .otherwise(
                clean_path(
                    pl.col("touchpoints"),
                    drop_touchpoints=(),
                    collapse_repeats=False,
                    max_length=max_length,
                )
            )
            .alias("cleaned")
        )
    )
    return summary.select(
        "journey_id",
        "customer_key",
        "started_at",
        "ended_at",
        journey_status(as_of=as_of, timeout=timeout),
        "converted",
        "conversion_event_id",
        "converted_at",
        "revenue",
        "events",
        "first_channel",
        pl.col("cleaned").list.last().alias("last_touchpoint"),
        pl.col("cleaned").list.join(PATH_SEPARATOR).alias("path"),
        seconds_to_convert(),
    ).sort("journey_id")


PERIOD_FORMATS = {"month": "%Y-%m", "week": "%G-W%V", "day": "%Y-%m-%d"}


def journey_attributes(
    steps: pl.DataFrame,
    journeys: pl.DataFrame,
    *,
    store_regions: Mapping[str, str],
    period: str = "month",
) -> pl.DataFrame:
    """One row per journey with what it can be segmented by: ``status``, ``first_channel``,
    ``store`` (the store of its conversion; else the last store it saw; else null),
    ``region`` (that store's region), ``cohort`` (the period of the customer's first
    journey) and ``period`` (the period the journey started in: ``month`` ``2026-03``,
    ``week`` ``2026-W12`` or ``day``, in UTC).

    Example:
        >>> from datetime import datetime, UTC
        >>> steps = pl.DataFrame({"journey_id": ["j1"], "position": [1], "store_id": ["S1"],
        ...                       "is_conversion": [True]})
        >>> journeys = pl.DataFrame({"journey_id": ["j1"], "customer_key": ["c1"],
        ...     "status": ["converted"], "first_channel": ["store"],
        ...     "started_at": [datetime(2026, 3, 2, tzinfo=UTC)]})
        >>> journey_attributes(steps, journeys, store_regions={"S1": "North"}).row(0)
        ('j1', 'converted', 'store', 'S1', 'North', '2026-03', '2026-03')
    """
    if period not in PERIOD_FORMATS:
        msg = f"period: expected one of {', '.join(PERIOD_FORMATS)}, found {period!r}"
        raise ValueError(msg)
    stores = (
        # only the steps that can name the store: fewer rows to sort
        steps.filter(pl.col("store_id").is_not_null() | pl.col("is_conversion"))
        .sort("journey_id", "position")
        .group_by("journey_id")
        .agg(
            pl.coalesce(
                pl.col("store_id").filter("is_conversion").first(),
                pl.col("store_id").drop_nulls().last(),
            ).alias("store")
        )
    )
    regions = pl.DataFrame(
        {"store": list(store_regions), "region": list(store_regions.values())},
        schema={"store": pl.String, "region": pl.String},
    )
    started = pl.col("started_at").dt.convert_time_zone("UTC")
    return (
        journeys.select(
            "journey_id",
            "customer_key",
            "status",
            "first_channel",
            started.dt.strftime(PERIOD_FORMATS[period]).alias("period"),
            started.min().over("customer_key").dt.strftime(PERIOD_FORMATS[period]).alias("cohort"),
        )
        .join(stores, on="journey_id", how="left", maintain_order="left")
        .join(regions, on="store", how="left", maintain_order="left")
        .select("journey_id", "status", "first_channel", "store", "region", "cohort", "period")
    )


def journey_facts(
    steps: pl.DataFrame,
    journeys: pl.DataFrame,
    *,
    drop_touchpoints: tuple[str, ...] = (),
    omnichannel: tuple[str, ...] = (),
    online_channels: tuple[str, ...] = (),
    offline_channels: tuple[str, ...] = (),
) -> pl.DataFrame:
    """One row per journey with what the funnel, drop-off, segment and persona marts count of
    it: ``status``, ``converted``, ``revenue``, ``last_touchpoint``, ``is_omnichannel`` (one of
    its ``patterns`` is in ``omnichannel``), ``furthest_stage_order`` (1 awareness to 6
    loyalty: the furthest stage of its steps; null if none has a stage), ``touchpoints``
    (the distinct touchpoints of its steps, sorted, without ``drop_touchpoints``), and
    ``own_steps``, ``online_steps``, ``offline_steps`` (its steps that are not fulfilment
    steps, and of those the ones in ``online_channels`` and ``offline_channels``). ``steps``
    must hold every step of the journeys, another customer's pick-up too.

    Example:
        >>> steps = pl.DataFrame({"journey_id": ["j1", "j1", "j1"],
        ...     "touchpoint": ["sign_in", "product_view", "store_purchase"],
        ...     "stage": ["interest", "consideration", "purchase"],
        ...     "channel": ["web", "web", "store"], "is_fulfilment": [False, False, False]})
        >>> journeys = pl.DataFrame({"journey_id": ["j1"], "customer_key": ["c1"],
        ...     "status": ["converted"], "converted": [True], "revenue": [20.0],
        ...     "last_touchpoint": ["store_purchase"], "patterns": [["ropo"]]})
        >>> journey_facts(steps, journeys, drop_touchpoints=("sign_in",),
        ...     omnichannel=("ropo",), online_channels=("web",)).row(0)[4:]
        ('store_purchase', True, 4, ['product_view', 'store_purchase'], 3, 2, 0)
    """
    stage_order = pl.col("stage").replace_strict(
        STAGES, range(1, len(STAGES) + 1), default=None, return_dtype=pl.Int32
    )
    counted = pl.col("touchpoint").is_not_null() & ~pl.col("touchpoint").is_in(
        pl.lit(list(drop_touchpoints), pl.List(pl.String))
    )
    # both in one pass over the steps (a join and two group-bys took a third longer)
    own = ~pl.col("is_fulfilment")
    per_journey = steps.group_by("journey_id").agg(
        stage_order.max().alias("furthest_stage_order"),
        pl.col("touchpoint").filter(counted).unique().sort().alias("touchpoints"),
        own.sum().cast(pl.Int32).alias("own_steps"),
        (own & pl.col("channel").is_in(list(online_channels)))
        .sum()
        .cast(pl.Int32)
        .alias("online_steps"),
        (own & pl.col("channel").is_in(list(offline_channels)))
        .sum()
        .cast(pl.Int32)
        .alias("offline_steps"),
    )
    return (
        journeys.select(
            "journey_id",
            "status",
            "converted",
            "revenue",
            "last_touchpoint",
            pl.col("patterns")
            .list.eval(pl.element().is_in(pl.lit(list(omnichannel), pl.List(pl.String))))
            .list.any()
            .fill_null(False)
            .alias("is_omnichannel"),
        )
        .join(per_journey, on="journey_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("touchpoints").fill_null(pl.lit([], pl.List(pl.String))),
            pl.col("own_steps", "online_steps", "offline_steps").fill_null(0),
        )
    )


def paths_around(
    journeys: pl.DataFrame, touchpoint: str, *, before: int = 2, after: int = 2
) -> pl.DataFrame:
    """What comes before and after a touchpoint (a flow view): for every closed journey whose
    cleaned path visits ``touchpoint``, up to ``before`` steps before its first visit and
    ``after`` steps after it, with ``START`` at the beginning and ``CONVERSION`` or
    ``DROP_OFF`` at the end. One row per distinct (before, after), with journeys,
    conversions and conversion rate, most journeys first.

    Example:
        >>> journeys = pl.DataFrame({"status": ["converted", "dropped", "open"],
        ...     "path": ["search > product_view > order_placed", "product_view", "product_view"]})
        >>> for row in paths_around(journeys, "product_view", before=1, after=1).rows():
        ...     print(row)
        ('START', 'product_view', 'DROP_OFF', 1, 0, 0.0)
        ('search', 'product_view', 'order_placed', 1, 1, 1.0)
    """
    closed = journeys.filter(pl.col("status") != "open")
    end = pl.when(pl.col("status") == "converted").then(pl.lit("CONVERSION"))
    full = pl.concat_list(
        pl.lit(["START"]),
        pl.col("path").str.split(PATH_SEPARATOR),
        pl.concat_list(end.otherwise(pl.lit("DROP_OFF"))),
    )
    at = pl.col("steps").list.eval(pl.element() == touchpoint).list.arg_max()
    start = pl.max_horizontal(pl.col("at") - before, 0)
    return (
        closed.select("status", full.alias("steps"))
        .filter(
            pl.col("steps").list.slice(1, pl.col("steps").list.len() - 2).list.contains(touchpoint)
        )
        .with_columns(at.alias("at"))
        .select(
            pl.col("steps")
            .list.slice(start, pl.col("at") - start)
            .list.join(PATH_SEPARATOR)
            .alias("before"),
            pl.lit(touchpoint).alias("touchpoint"),
            pl.col("steps")
            .list.slice(pl.col("at") + 1, after)
            .list.join(PATH_SEPARATOR)
            .alias("after"),
            (pl.col("status") == "converted").alias("converted"),
        )
        .group_by("before", "touchpoint", "after")
        .agg(
            pl.len().cast(pl.Int64).alias("journeys"),
            pl.col("converted").sum().cast(pl.Int64).alias("conversions"),
        )
        .with_columns((pl.col("conversions") / pl.col("journeys")).alias("conversion_rate"))
        .sort(["journeys", "before", "after"], descending=[True, False, False])
    )
