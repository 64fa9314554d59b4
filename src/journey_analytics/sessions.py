"""Sessions: canonical events with a customer to sessions.

Input grain: one event (``customer_key``, ``channel``, ``occurred_at``, ``event_id``,
``touchpoint``). Output grain: ``assign_sessions`` one row per event with its ``session_id``;
``summarise_sessions`` one row per session.

A session is a run of consecutive events of one customer in one channel whose gaps are at most
the channel's timeout. A gap exactly equal to the timeout stays in the session. A timeout of 0
makes every event its own session (a call). With a maximum length, a longer session is cut
into windows of that length counted from its first event (an event exactly at a window's end
starts the next one), each window with an event a session of its own.
"""

from __future__ import annotations

import polars as pl


def assign_sessions(
    events: pl.DataFrame,
    *,
    timeouts_minutes: dict[str, float],
    default_timeout_minutes: float,
    max_session_minutes: float | None = None,
) -> pl.DataFrame:
    """Adds ``session_id`` (``"s:" + the session's first event_id``) to every event."""
    timeout = pl.duration(
        microseconds=pl.col("channel")
        .replace_strict(timeouts_minutes, default=default_timeout_minutes, return_dtype=pl.Float64)
        .mul(60_000_000)
        .cast(pl.Int64)
    )
    # among events at the same instant a conversion comes last, as in journeys (EVENT_ORDER)
    ordered = events.sort("customer_key", "channel", "occurred_at", "is_conversion", "event_id")
    same_run = (pl.col("customer_key") == pl.col("customer_key").shift()) & (
        pl.col("channel") == pl.col("channel").shift()
    )
    gap = pl.col("occurred_at") - pl.col("occurred_at").shift()
    # a timeout of 0 makes every event a session, even two at the same instant
    starts = (
        ~same_run.fill_null(False)
        | (gap > timeout).fill_null(True)
        | (timeout == pl.duration(microseconds=0))
    )
    sessions = (
        ordered.with_columns(starts.alias("_starts"))
        .with_columns(
            pl.when("_starts")
            .then(pl.lit("s:") + pl.col("event_id"))
            .forward_fill()
            .alias("session_id")
        )
        .drop("_starts")
    )
    if max_session_minutes is None:
        return sessions
    window = int(max_session_minutes * 60_000_000)
    elapsed = (
        pl.col("occurred_at") - pl.col("occurred_at").first().over("session_id")
    ).dt.total_microseconds()
    return (
        sessions.with_columns((elapsed // window).alias("_window"))
        .with_columns(
            (pl.lit("s:") + pl.col("event_id").first().over("session_id", "_window")).alias(
                "session_id"
            )
        )
        .drop("_window")
    )


def summarise_sessions(events: pl.DataFrame) -> pl.DataFrame:
    """One row per session from events that carry a ``session_id``."""
    return (
        events.sort("session_id", "occurred_at", "is_conversion", "event_id")
        .group_by("session_id", maintain_order=True)
        .agg(
            pl.col("customer_key").first(),
            pl.col("channel").first(),
            pl.col("occurred_at").min().alias("started_at"),
            pl.col("occurred_at").max().alias("ended_at"),
            pl.len().cast(pl.Int64).alias("events"),
            pl.col("touchpoint").first().alias("first_touchpoint"),
            pl.col("touchpoint").last().alias("last_touchpoint"),
        )
        .with_columns(
            (pl.col("ended_at") - pl.col("started_at"))
            .dt.total_microseconds()
            .truediv(1e6)
            .alias("duration_seconds")
        )
        .sort("session_id")
    )
