"""Channel leakage: journey steps to the journeys that left online and converted offline.

Input grain: one step of a journey (``journeys.steps``). Output grain: ``leaked_journeys``
one row per converted journey whose conversion is in an offline channel (a store, the call
centre) within a window after its last step in an online channel; ``leakage_summary`` one row
per (last online touchpoint, its stage, channel it left from, channel it converted in)
(``marts.leakage``).

Such a journey ended online without a purchase, but it is not lost: it is counted as leakage
to the channel it went to, not as a drop-off. Fulfilment steps (a pickup, a return) and noise
touchpoints are not online steps a journey leaves from.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

LEAKAGE_SCHEMA: dict[str, pl.DataType] = {
    "from_touchpoint": pl.String(),
    "from_stage": pl.String(),
    "from_channel": pl.String(),
    "to_channel": pl.String(),
    "journeys": pl.Int64(),
    "customers": pl.Int64(),
    "revenue": pl.Decimal(18, 2),
    "median_seconds": pl.Float64(),
}


def leaked_journeys(
    steps: pl.DataFrame,
    *,
    online_channels: tuple[str, ...],
    offline_channels: tuple[str, ...],
    window: timedelta,
    drop_touchpoints: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Converted journeys that left online for an offline conversion: journey_id,
    customer_key, the last online step before the conversion (``from_touchpoint``,
    ``from_stage``, ``from_channel``, ``from_event_id``), the conversion (``to_channel``,
    ``to_touchpoint``, ``conversion_event_id``), the seconds between them and the revenue.

    A conversion more than ``window`` after the last online step is not leakage: the online
    visit did not lead to it.
    """
    before = steps.filter(~pl.col("is_fulfilment"))
    conversions = (
        before.filter(pl.col("is_conversion") & pl.col("channel").is_in(list(offline_channels)))
        .sort("journey_id", "position")
        .select(
            "journey_id",
            "customer_key",
            "position",
            pl.col("channel").alias("to_channel"),
            pl.col("touchpoint").alias("to_touchpoint"),
            pl.col("event_id").alias("conversion_event_id"),
            pl.col("occurred_at").alias("converted_at"),
            "revenue",
        )
    )
    # the online steps of the journeys that converted offline only
    online = before.filter(
        pl.col("channel").is_in(list(online_channels))
        & ~pl.col("touchpoint").is_in(list(drop_touchpoints))
    ).join(conversions.select("journey_id"), on="journey_id", how="semi")
    last_online = online.group_by("journey_id").agg(
        pl.all().sort_by("position").last().name.prefix("online_")
    )
    joined = conversions.join(last_online, on="journey_id").filter(
        (pl.col("online_position") < pl.col("position"))
        & (pl.col("converted_at") - pl.col("online_occurred_at") <= window)
    )
    return joined.select(
        "journey_id",
        "customer_key",
        pl.col("online_touchpoint").alias("from_touchpoint"),
        pl.col("online_stage").alias("from_stage"),
        pl.col("online_channel").alias("from_channel"),
        pl.col("online_event_id").alias("from_event_id"),
        "to_channel",
        "to_touchpoint",
        "conversion_event_id",
        (pl.col("converted_at") - pl.col("online_occurred_at"))
        .dt.total_microseconds()
        .truediv(1e6)
        .alias("seconds"),
        "revenue",
    ).sort("journey_id")


def leakage_summary(leaked: pl.DataFrame) -> pl.DataFrame:
    """``marts.leakage``: leaked journeys counted per (from_touchpoint, from_stage,
    from_channel, to_channel), with distinct customers, revenue and median seconds."""
    keys = ["from_touchpoint", "from_stage", "from_channel", "to_channel"]
    return (
        leaked.group_by(keys)
        .agg(
            pl.len().cast(pl.Int64).alias("journeys"),
            pl.col("customer_key").n_unique().cast(pl.Int64).alias("customers"),
            pl.col("revenue").sum().alias("revenue"),
            pl.col("seconds").median().alias("median_seconds"),
        )
        .select(list(LEAKAGE_SCHEMA))
        .cast(LEAKAGE_SCHEMA)  # type: ignore[arg-type]
        .sort(keys)
    )
