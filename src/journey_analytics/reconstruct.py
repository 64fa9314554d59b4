"""Reconstruct: canonical events to sessions, journey steps, journeys and transition edges in
one pass, for data of any size.

Input grain: one canonical event with its ``customer_key``. Output grain (:class:`Rebuilt`):
``sessions`` one row per session, ``steps`` one row per event with its session, journey and
position, ``journeys`` one row per journey, ``edges`` one row per (journey, transition).

The results are those of the stage functions run one after another —
``sessions.assign_sessions`` and ``summarise_sessions``, ``journeys.assign_journeys`` and
``summarise_journeys``, ``graphs.transition_edges`` — which stay the readable reference:
tests compare the two on generated data and on the sample, row for row. The difference is
how: the reference sorts by text at every stage; this sorts the events once, by integers (a
128-bit hash of the customer key, then the time with conversions last; event ids only order
the few exact ties), and finds sessions, journeys and runs of touchpoints by scanning that
order. Row order differs: ``steps`` keep the input's order; sessions, journeys and edges come
in the order of the sorted events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from journey_analytics import graphs, journeys, sessions
from journey_analytics.graphs import CONVERSION, DROP_OFF, START
from journey_analytics.journeys import ELLIPSIS, PATH_SEPARATOR, alias_touchpoints

_MICROS = 1_000_000
# the columns the reconstruction reads (the steps carry every column of the input)
_READ = (
    "event_id",
    "customer_key",
    "channel",
    "touchpoint",
    "occurred_at",
    "is_conversion",
    "order_id",
    "revenue",
)
_Ints = np.ndarray  # one-dimensional integer array


@dataclass(frozen=True)
class Rebuilt:
    sessions: pl.DataFrame  # as sessions.summarise_sessions
    steps: pl.DataFrame  # as journeys.assign_journeys (input order)
    journeys: pl.DataFrame  # as journeys.summarise_journeys
    edges: pl.DataFrame  # as graphs.transition_edges


@dataclass(frozen=True)
class _Codes:
    """A text column as integer codes into ``names`` (sorted)."""

    codes: _Ints
    names: pl.Series

    @classmethod
    def of(cls, column: pl.Series) -> _Codes:
        names = column.drop_nulls().unique().sort()
        codes = column.cast(pl.Enum(names.to_list())).to_physical().to_numpy()
        return cls(codes.astype(np.int64), names)


def _event_order(events: pl.DataFrame) -> tuple[_Ints, _Ints]:
    """Row numbers in the order (customer, occurred_at, is_conversion, event_id), customers in
    the order of their key's hash, and each sorted row's customer code.

    Two independent 64-bit hashes of the customer key must both agree for two rows to be one
    customer; should two keys share the first hash, the second tells them apart and the
    customer codes fall back to exact ones.
    """
    customers = events.get_column("customer_key").rechunk()
    micros = events.get_column("occurred_at").dt.epoch("us").to_numpy()
    key = micros * 2 + events.get_column("is_conversion").to_numpy().astype(np.int64)
    codes = customers.hash(0).to_numpy()
    order = _lexical_order(codes, key)
    check = customers.hash(1).to_numpy()[order]
    same = codes[order][1:] == codes[order][:-1]
    if np.any(same & (check[1:] != check[:-1])):  # two customers, one hash
        codes = customers.cast(pl.Categorical).to_physical().to_numpy().astype(np.uint64)
        order = _lexical_order(codes, key)
    return _break_ties(order, codes[order], key[order], events.get_column("event_id")), codes[order]


def _lexical_order(first: _Ints, second: _Ints) -> _Ints:
    """Row numbers sorted by ``first`` then ``second`` (ties in both: any order)."""
    by_second = pl.Series(second).arg_sort().to_numpy()
    then_first = (
        pl.DataFrame({"k": first[by_second]})
        .select(pl.arg_sort_by("k", maintain_order=True))
        .to_series()
        .to_numpy()
    )
    found: _Ints = by_second[then_first]
    return found


def _break_ties(order: _Ints, codes: _Ints, key: _Ints, event_ids: pl.Series) -> _Ints:
    """Rows equal in customer and key ordered by event id (a fixed order whatever the input's)."""
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (codes[1:] == codes[:-1]) & (key[1:] == key[:-1])
    if not same.any():
        return order
    tied = same.copy()
    tied[:-1] |= same[1:]
    at = np.flatnonzero(tied)
    groups = np.cumsum(~same)[at]
    rows = order[at]
    fixed = (
        pl.DataFrame({"g": groups, "id": event_ids.gather(rows), "row": rows})
        .sort("g", "id")
        .get_column("row")
        .to_numpy()
    )
    order = order.copy()
    order[at] = fixed
    return order


def _sessions(
    customers: _Ints,
    micros: _Ints,
    channels: _Codes,
    *,
    timeouts_minutes: Mapping[str, float],
    default_timeout_minutes: float,
    max_session_minutes: float | None,
) -> tuple[_Ints, _Ints, _Ints]:
    """Sessions over the sorted events: per sorted row the index of its session's first row;
    the first and last row of every session, by first row."""
    n = len(customers)
    first_of = np.empty(n, dtype=np.int64)
    starts, ends = [], []
    for code, name in enumerate(channels.names.to_list()):
        at = np.flatnonzero(channels.codes == code)
        if not len(at):
            continue
        timeout = round(timeouts_minutes.get(name, default_timeout_minutes) * 60 * _MICROS)
        who, when = customers[at], micros[at]
        new = np.ones(len(at), dtype=bool)
        if timeout > 0:  # a timeout of 0: every event is a session
            new[1:] = (who[1:] != who[:-1]) | (when[1:] - when[:-1] > timeout)
        if max_session_minutes is not None:
            new = _cut_into_windows(new, when, round(max_session_minutes * 60 * _MICROS))
        local_first = np.maximum.accumulate(np.where(new, np.arange(len(at)), 0))
        first_of[at] = at[local_first]
        last = np.ones(len(at), dtype=bool)
        last[:-1] = new[1:]
        starts.append(at[new])
        ends.append(at[last])
    first, last = np.concatenate(starts), np.concatenate(ends)
    by_start = np.argsort(first, kind="stable")
    return first_of, first[by_start], last[by_start]


def _cut_into_windows(new: _Ints, when: _Ints, window: int) -> _Ints:
    """Sessions longer than ``window`` cut into windows from their first event."""
    first = np.maximum.accumulate(np.where(new, np.arange(len(new)), 0))
    number = (when - when[first]) // window
    cut = new.copy()
    cut[1:] |= number[1:] != number[:-1]
    return cut


def _fulfilment(
    events: pl.DataFrame, order: _Ints, session_of: _Ints, noise: tuple[str, ...]
) -> tuple[_Ints, _Ints]:
    """Input rows that are fulfilment steps, with the input row of their conversion.

    The rules of ``journeys.assign_journeys``: a later non-conversion event with the order id
    of a conversion; and a noise event, not before that sale, in a session made only of such
    steps and noise.
    """
    rows = events.select(
        pl.int_range(events.height, dtype=pl.Int64).alias("row"),
        "order_id",
        "is_conversion",
        "occurred_at",
        "event_id",
        "touchpoint",
    )
    conversions = (
        rows.filter(pl.col("is_conversion") & pl.col("order_id").is_not_null())
        .sort("occurred_at", "event_id")
        .unique("order_id", keep="first", maintain_order=True)
        .select(
            "order_id",
            pl.col("row").alias("conversion_row"),
            pl.col("occurred_at").alias("converted_at"),
        )
    )
    steps = (
        rows.filter(pl.col("order_id").is_not_null() & ~pl.col("is_conversion"))
        .join(conversions, on="order_id")
        .filter(pl.col("occurred_at") >= pl.col("converted_at"))
        .select("row", "conversion_row", "converted_at")
    )
    if not noise or steps.is_empty():
        return steps.get_column("row").to_numpy(), steps.get_column("conversion_row").to_numpy()
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    session = session_of[position]  # per input row: the sorted index of its session's start
    in_session = rows.with_columns(pl.Series("session", session)).join(steps, on="row", how="left")
    with_steps = (
        in_session.filter(pl.col("conversion_row").is_not_null()).select("session").unique()
    )
    candidates = in_session.join(with_steps, on="session").with_columns(
        pl.lit(pl.Series(position)).gather(pl.col("row")).alias("sorted"),
        (~pl.col("is_conversion") & pl.col("touchpoint").is_in(list(noise))).alias("is_noise"),
    )
    sessions = (
        candidates.sort("sorted")
        .group_by("session")
        .agg(
            (pl.col("conversion_row").is_not_null() | pl.col("is_noise")).all().alias("only"),
            pl.col("conversion_row").drop_nulls().first().alias("_conversion"),
            pl.col("converted_at").drop_nulls().first().alias("_converted_at"),
        )
        .filter("only")
    )
    attached = (
        candidates.filter(pl.col("is_noise") & pl.col("conversion_row").is_null())
        .join(sessions, on="session")
        .filter(pl.col("occurred_at") >= pl.col("_converted_at"))
        .select("row", pl.col("_conversion").alias("conversion_row"))
    )
    found = pl.concat([steps.select("row", "conversion_row"), attached])
    return found.get_column("row").to_numpy(), found.get_column("conversion_row").to_numpy()


def rebuild(
    events: pl.DataFrame,
    *,
    timeouts_minutes: Mapping[str, float],
    default_timeout_minutes: float,
    max_session_minutes: float | None = None,
    timeout: timedelta,
    noise_touchpoints: tuple[str, ...] = (),
    as_of: datetime,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Rebuilt:
    """Sessions, steps, journeys and transition edges of canonical events, as the stage
    functions give them (see the module docstring); paths and edges use the touchpoints
    renamed by ``aliases``, steps keep the loaded names."""
    if events.is_empty():
        return _rebuild_by_stages(
            events,
            timeouts_minutes=timeouts_minutes,
            default_timeout_minutes=default_timeout_minutes,
            max_session_minutes=max_session_minutes,
            timeout=timeout,
            noise_touchpoints=noise_touchpoints,
            as_of=as_of,
            drop_touchpoints=drop_touchpoints,
            collapse_repeats=collapse_repeats,
            max_length=max_length,
            aliases=aliases or {},
        )
    source, events = events, events.select(_READ).rechunk()  # gathers need one chunk
    n = events.height
    order, customers = _event_order(events)
    micros = events.get_column("occurred_at").dt.epoch("us").to_numpy()[order]
    conversion = events.get_column("is_conversion").to_numpy()[order]
    channels = _Codes.of(events.get_column("channel"))
    channels = _Codes(channels.codes[order], channels.names)
    session_of, session_first, session_last = _sessions(
        customers,
        micros,
        channels,
        timeouts_minutes=timeouts_minutes,
        default_timeout_minutes=default_timeout_minutes,
        max_session_minutes=max_session_minutes,
    )
    event_ids = events.get_column("event_id")
    sorted_ids = event_ids.gather(order)
    session_ids = pl.select(
        pl.lit("s:", dtype=pl.String) + sorted_ids.gather(session_first)
    ).to_series()
    session_number = np.empty(n, dtype=np.int64)
    session_number[session_first] = np.arange(len(session_first))

    # fulfilment steps, in sorted positions, with the sorted position of their conversion
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    fulfilment_rows, conversion_rows = _fulfilment(
        events, order, session_of, tuple(noise_touchpoints)
    )
    is_fulfilment = np.zeros(n, dtype=bool)
    is_fulfilment[position[fulfilment_rows]] = True

    # journeys: the sorted events that are not fulfilment steps, cut after a conversion and
    # at a silence longer than the timeout
    main = np.flatnonzero(~is_fulfilment)
    who, when, converts = customers[main], micros[main], conversion[main]
    new = np.ones(len(main), dtype=bool)
    new[1:] = (
        (who[1:] != who[:-1])
        | converts[:-1]
        | (when[1:] - when[:-1] > timeout // timedelta(microseconds=1))
    )
    journey_of_main = np.cumsum(new) - 1
    journey_first = main[new]
    journey_of = np.full(n, -1, dtype=np.int64)
    journey_of[main] = journey_of_main

    # a fulfilment step follows its conversion's journey, in time order after its last step
    at = position[fulfilment_rows]
    extra = pl.DataFrame(
        {
            "at": at,
            "journey": journey_of[position[conversion_rows]],
            "when": micros[at],
            "id": sorted_ids.gather(at),
        }
    ).sort("journey", "when", "id")
    extra_at = extra.get_column("at").to_numpy()
    extra_journey = extra.get_column("journey").to_numpy()
    journey_of[extra_at] = extra_journey
    insert = np.searchsorted(journey_of_main, extra_journey, side="right")
    step_at = np.insert(main, insert, extra_at)  # sorted positions, in step order
    step_journey = np.insert(journey_of_main, insert, extra_journey)
    step_first = np.flatnonzero(np.r_[True, step_journey[1:] != step_journey[:-1]])
    step_position = np.arange(len(step_at)) - step_first[step_journey] + 1

    journey_ids = pl.select(
        pl.lit("j:", dtype=pl.String) + sorted_ids.gather(journey_first)
    ).to_series()

    # steps, in the input's order
    row_session = np.empty(n, dtype=np.int64)
    row_session[order] = session_number[session_of]
    row_journey = np.empty(n, dtype=np.int64)
    row_journey[order[step_at]] = step_journey
    row_position = np.empty(n, dtype=np.int64)
    row_position[order[step_at]] = step_position
    steps = source.with_columns(
        session_ids.gather(row_session).alias("session_id"),
        pl.Series("is_fulfilment", is_fulfilment[position]),
        journey_ids.gather(row_journey).alias("journey_id"),
        pl.Series("position", row_position),
    )

    sessions = _session_frame(
        events,
        order=order,
        session_ids=session_ids,
        first=session_first,
        last=session_last,
        sizes=np.bincount(session_number[session_of], minlength=len(session_first)),
        micros=micros,
    )
    touchpoints = _Codes.of(
        pl.select(
            alias_touchpoints(pl.lit(events.get_column("touchpoint")), aliases or {})
        ).to_series()
    )
    touchpoint_at = touchpoints.codes[order]
    journeys = _journey_frame(
        events,
        order,
        step_at=step_at,
        step_journey=step_journey,
        step_first=step_first,
        main=main,
        journey_of_main=journey_of_main,
        journey_ids=journey_ids,
        micros=micros,
        conversion=conversion,
        touchpoints=_Codes(touchpoint_at, touchpoints.names),
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
        max_length=max_length,
        timeout=timeout,
        as_of=as_of,
    )
    edges = _edge_frame(
        main=main,
        journey_of_main=journey_of_main,
        journey_ids=journey_ids,
        customer_of_journey=journeys.get_column("customer_key"),
        status=journeys.get_column("status").to_numpy(),
        micros=micros,
        touchpoints=_Codes(touchpoint_at, touchpoints.names),
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
    )
    return Rebuilt(sessions=sessions, steps=steps, journeys=journeys, edges=edges)


def _session_frame(
    events: pl.DataFrame,
    *,
    order: _Ints,
    session_ids: pl.Series,
    first: _Ints,
    last: _Ints,
    sizes: _Ints,
    micros: _Ints,
) -> pl.DataFrame:
    """One row per session, as ``sessions.summarise_sessions``."""
    first_row, last_row = pl.Series(order[first]), pl.Series(order[last])
    return pl.DataFrame(
        [
            session_ids.alias("session_id"),
            events.get_column("customer_key").gather(first_row),
            events.get_column("channel").gather(first_row),
            events.get_column("occurred_at").gather(first_row).alias("started_at"),
            events.get_column("occurred_at").gather(last_row).alias("ended_at"),
            pl.Series("events", sizes, dtype=pl.Int64),
            events.get_column("touchpoint").gather(first_row).alias("first_touchpoint"),
            events.get_column("touchpoint").gather(last_row).alias("last_touchpoint"),
            pl.Series("duration_seconds", (micros[last] - micros[first]) / _MICROS),
        ]
    )


def _journey_frame(
    events: pl.DataFrame,
    order: _Ints,
    *,
    step_at: _Ints,
    step_journey: _Ints,
    step_first: _Ints,
    main: _Ints,
    journey_of_main: _Ints,
    journey_ids: pl.Series,
    micros: _Ints,
    conversion: _Ints,
    touchpoints: _Codes,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None,
    timeout: timedelta,
    as_of: datetime,
) -> pl.DataFrame:
    """One row per journey, as ``journeys.summarise_journeys``."""
    step_last = np.r_[step_first[1:], len(step_at)] - 1
    main_last = main[np.flatnonzero(np.r_[journey_of_main[1:] != journey_of_main[:-1], True])]
    converted = conversion[main_last]
    first_row = pl.Series(order[step_at[step_first]])
    end_row = pl.Series(order[step_at[step_last]])
    sale_row = pl.Series(order[main_last])
    paths = _paths(
        step_journey,
        touchpoints.codes[step_at],
        touchpoints.names,
        journeys=len(step_first),
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
        max_length=max_length,
    )
    frame = pl.DataFrame(
        [
            journey_ids.alias("journey_id"),
            events.get_column("customer_key").gather(first_row),
            events.get_column("occurred_at").gather(first_row).alias("started_at"),
            events.get_column("occurred_at").gather(end_row).alias("ended_at"),
            pl.Series("converted", converted),
            events.get_column("event_id").gather(sale_row).alias("conversion_event_id"),
            events.get_column("occurred_at").gather(sale_row).alias("converted_at"),
            events.get_column("revenue").gather(sale_row),
            pl.Series("events", step_last - step_first + 1, dtype=pl.Int64),
            events.get_column("channel").gather(first_row).alias("first_channel"),
            paths.get_column("last_touchpoint"),
            paths.get_column("path"),
        ]
    )
    sale = ["conversion_event_id", "converted_at", "revenue"]
    return frame.with_columns(
        pl.when("converted").then(pl.col(sale)),
    ).select(
        "journey_id",
        "customer_key",
        "started_at",
        "ended_at",
        journeys.journey_status(as_of=as_of, timeout=timeout),
        "converted",
        *sale,
        "events",
        "first_channel",
        "last_touchpoint",
        "path",
        journeys.seconds_to_convert(),
    )


def _paths(
    journey: _Ints,
    codes: _Ints,
    names: pl.Series,
    *,
    journeys: int,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None,
) -> pl.DataFrame:
    """Per journey, in number order, the cleaned path and its last touchpoint (all the steps'
    touchpoints, uncleaned, when cleaning leaves none), as ``journeys.clean_path``."""
    dropped = np.flatnonzero(names.is_in(list(drop_touchpoints)).to_numpy())
    kept = np.flatnonzero(~np.isin(codes, dropped))
    if collapse_repeats and len(kept):
        kj, kc = journey[kept], codes[kept]
        change = np.ones(len(kept), dtype=bool)
        change[1:] = (kj[1:] != kj[:-1]) | (kc[1:] != kc[:-1])
        kept = kept[change]
    has_kept = np.zeros(journeys, dtype=bool)
    has_kept[journey[kept]] = True
    fallback = np.flatnonzero(~has_kept[journey])
    chosen = np.sort(np.concatenate([kept, fallback]))
    steps = pl.DataFrame(
        {"journey": journey[chosen], "name": names.gather(pl.Series(codes[chosen]))}
    )
    if max_length is None:
        joined = steps.group_by("journey", maintain_order=True).agg(
            pl.col("name").str.join(PATH_SEPARATOR).alias("path"),
            pl.col("name").last().alias("last_touchpoint"),
        )
    else:
        head, tail = max_length // 2, (max_length - 1) // 2
        listed = pl.col("name")
        capped = (
            pl.when(listed.list.len() > max_length)
            .then(
                pl.concat_list(listed.list.head(head), pl.lit([ELLIPSIS]), listed.list.tail(tail))
            )
            .otherwise(listed)
        )
        joined = (
            steps.group_by("journey", maintain_order=True)
            .agg("name")
            .with_columns(
                capped.list.join(PATH_SEPARATOR).alias("path"),
                capped.list.last().alias("last_touchpoint"),
            )
        )
    return joined.select("path", "last_touchpoint")


def _edge_frame(
    *,
    main: _Ints,
    journey_of_main: _Ints,
    journey_ids: pl.Series,
    customer_of_journey: pl.Series,
    status: _Ints,
    micros: _Ints,
    touchpoints: _Codes,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
) -> pl.DataFrame:
    """Every transition of every journey, as ``graphs.transition_edges``."""
    nodes = pl.Enum([*touchpoints.names.to_list(), START, CONVERSION, DROP_OFF])
    start, conversion, drop_off = len(touchpoints.names) + np.arange(3)
    dropped = np.flatnonzero(touchpoints.names.is_in(list(drop_touchpoints)).to_numpy())
    codes = touchpoints.codes[main]
    kept = np.flatnonzero(~np.isin(codes, dropped))
    if not len(kept):  # only noise: no transition
        return pl.DataFrame(
            schema={
                "journey_id": pl.String,
                "customer_key": pl.String,
                "from_touchpoint": nodes,
                "to_touchpoint": nodes,
                "seconds": pl.Float64,
            }
        )
    kj, kc, kw = journey_of_main[kept], codes[kept], micros[main[kept]]
    new = np.ones(len(kept), dtype=bool)
    if collapse_repeats:
        new[1:] = (kj[1:] != kj[:-1]) | (kc[1:] != kc[:-1])
    run_first = np.flatnonzero(new)
    run_last = np.r_[run_first[1:], len(kept)] - 1
    run_journey, run_code = kj[run_first], kc[run_first]
    first_at, last_at = kw[run_first], kw[run_last]
    same = np.r_[False, run_journey[1:] == run_journey[:-1]]
    source = np.where(same, np.r_[start, run_code[:-1]], start)
    seconds = np.where(same, (first_at - np.r_[0, last_at[:-1]]) / _MICROS, np.nan)
    # an end edge after each journey's last run: to CONVERSION or DROP_OFF (open: none)
    last_run = np.flatnonzero(np.r_[run_journey[1:] != run_journey[:-1], True])
    ending = status[run_journey[last_run]]
    closed = ending != "open"
    at = last_run[closed] + 1
    ends = np.where(ending[closed] == "converted", conversion, drop_off)
    journey = np.insert(run_journey, at, run_journey[last_run[closed]])
    frame = pl.DataFrame(
        [
            journey_ids.gather(pl.Series(journey)).alias("journey_id"),
            customer_of_journey.gather(pl.Series(journey)).alias("customer_key"),
            _enum(np.insert(source, at, run_code[last_run[closed]]), nodes, "from_touchpoint"),
            _enum(np.insert(run_code, at, ends), nodes, "to_touchpoint"),
            pl.Series("seconds", np.insert(seconds, at, np.nan)).fill_nan(None),
        ]
    )
    return frame


def _enum(codes: _Ints, dtype: pl.Enum, name: str) -> pl.Series:
    """Codes as an Enum column: the names without a string per row."""
    return pl.Series(name, codes, dtype=pl.UInt32).cat.to(dtype)


def _rebuild_by_stages(
    events: pl.DataFrame,
    *,
    timeouts_minutes: Mapping[str, float],
    default_timeout_minutes: float,
    max_session_minutes: float | None,
    timeout: timedelta,
    noise_touchpoints: tuple[str, ...],
    as_of: datetime,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None,
    aliases: Mapping[str, str],
) -> Rebuilt:
    """The stage functions one after another (for no events: their empty frames)."""
    in_sessions = sessions.assign_sessions(
        events,
        timeouts_minutes=dict(timeouts_minutes),
        default_timeout_minutes=default_timeout_minutes,
        max_session_minutes=max_session_minutes,
    )
    steps = journeys.assign_journeys(
        in_sessions, timeout=timeout, noise_touchpoints=noise_touchpoints
    )
    aliased = steps.with_columns(journeys.alias_touchpoints(pl.col("touchpoint"), aliases))
    summary = journeys.summarise_journeys(
        aliased,
        timeout=timeout,
        as_of=as_of,
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
        max_length=max_length,
    )
    edges = graphs.transition_edges(
        aliased, summary, drop_touchpoints=drop_touchpoints, collapse_repeats=collapse_repeats
    )
    return Rebuilt(sessions.summarise_sessions(in_sessions), steps, summary, edges)
