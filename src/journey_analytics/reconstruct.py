"""Reconstruct: canonical events to sessions, journey steps, journeys and transition edges in
one pass, for data of any size.

Input grain: one canonical event with its ``customer_key``. Output grain (:class:`Rebuilt`):
``sessions`` one row per session, ``steps`` one row per event with its session, journey and
position, ``journeys`` one row per journey, ``edges`` one row per (journey, transition).

The results are those of the stage functions run one after another —
``sessions.assign_sessions`` and ``summarise_sessions``, ``journeys.assign_journeys`` and
``summarise_journeys``, ``graphs.transition_edges`` — which stay the readable reference:
tests compare the two on generated data and on the sample, row for row. The difference is
how. The reference sorts by text at every stage. This sorts the events once, by one 128-bit
integer (a 63-bit hash of the customer key, then the time with conversions last; event ids
only order the few exact ties), and finds sessions, journeys and runs of touchpoints by
scanning that order with NumPy. Text is touched only where a result holds it: channels and
touchpoints become small integer codes, a path is spelled once per distinct path, and the
edges name journeys and customers by number (:meth:`Rebuilt.labelled_edges` gives them their
ids). Row order differs: ``steps`` keep the input's order; sessions, journeys and edges come
in the order of the sorted events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import networkx as nx
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
_Ints = np.ndarray  # one-dimensional integer (or boolean) array


@dataclass(frozen=True)
class Rebuilt:
    """What :func:`rebuild` makes. ``edges`` are those of ``graphs.transition_edges`` with
    the journey as its row number in ``journeys`` (``journey``, UInt32) and the customer as a
    number (``customer``, UInt32) instead of their ids."""

    sessions: pl.DataFrame  # as sessions.summarise_sessions
    steps: pl.DataFrame  # as journeys.assign_journeys (input order)
    journeys: pl.DataFrame  # as journeys.summarise_journeys
    edges: pl.DataFrame  # as graphs.transition_edges, ids as numbers

    def labelled_edges(self) -> pl.DataFrame:
        """The edges with ``journey_id`` and ``customer_key``, as ``graphs.transition_edges``."""
        journey = self.edges.get_column("journey")
        return self.edges.select(
            self.journeys.get_column("journey_id").gather(journey),
            self.journeys.get_column("customer_key").gather(journey),
            "from_touchpoint",
            "to_touchpoint",
            "seconds",
        )

    def graph(self) -> nx.DiGraph:
        """``graphs.transition_graph`` of the edges (journeys and customers counted by number,
        which is faster than by id and gives the same counts)."""
        return graphs.transition_graph(
            self.edges.rename({"journey": "journey_id", "customer": "customer_key"})
        )


@dataclass(frozen=True)
class _Codes:
    """A text column as small integer codes into ``names`` (sorted, distinct)."""

    codes: _Ints
    names: pl.Series

    @classmethod
    def of(cls, column: pl.Series) -> _Codes:
        """The codes of a column without nulls (categorical codes, renumbered by name)."""
        categorical = column.cast(pl.Categorical)
        present = categorical.unique()
        physical = present.to_physical().to_numpy()
        text = present.cast(pl.String)
        small = np.uint16 if len(text) < 2**16 else np.uint32
        renumber = np.zeros(int(physical.max()) + 1 if len(physical) else 1, dtype=small)
        renumber[physical] = text.rank("ordinal").to_numpy() - 1
        return cls(renumber[categorical.to_physical().to_numpy()], text.sort())

    def sorted(self, order: _Ints) -> _Codes:
        """The codes of the rows ``order``."""
        return _Codes(self.codes[order], self.names)

    def renamed(self, names: pl.Series) -> _Codes:
        """The codes of the same rows after renaming each of ``names`` (same order) to the
        value at its position in ``names``."""
        renamed = _Codes.of(names)
        return _Codes(renamed.codes[self.codes], renamed.names)

    def among(self, wanted: tuple[str, ...]) -> _Ints:
        """Per row: its name is one of ``wanted``."""
        is_wanted: _Ints = self.names.is_in(list(wanted)).to_numpy()
        return is_wanted[self.codes]

    def at(self, rows: _Ints) -> pl.Series:
        """The names of ``rows``."""
        return self.names.gather(pl.Series(self.codes[rows]))


def _index_type(n: int) -> type[np.signedinteger]:
    """The integer type that numbers ``n`` rows: 32 bits while they fit (half the memory)."""
    return np.int32 if n < 2**31 else np.int64


def _customer_hash(customers: pl.Series, seed: int) -> pl.Series:
    """A 63-bit hash of each customer key (it fits a signed integer)."""
    return customers.hash(seed) // 2


@dataclass(frozen=True)
class _Sorted:
    """The events in the order (customer, occurred_at, is_conversion, event_id)."""

    order: _Ints  # per sorted row: its input row
    customer: _Ints  # per sorted row: its customer's number (0, 1, … in that order)
    micros: _Ints  # per sorted row: occurred_at in microseconds
    conversion: _Ints  # per sorted row: is_conversion
    time_type: pl.DataType  # the type of occurred_at

    def times(self, at: _Ints) -> pl.Series:
        """The occurred_at of sorted rows ``at``."""
        return pl.Series(self.micros[at]).cast(pl.Datetime("us")).cast(self.time_type)


def _sort_events(events: pl.DataFrame) -> _Sorted:
    """The events sorted by customer, then time with conversions last, then event id;
    customers in the order of their key's hash.

    Two independent hashes of the customer key must both agree for two rows to be one
    customer; should two keys share the first hash, the second tells them apart and the
    customers fall back to exact codes.
    """
    customers = events.get_column("customer_key")
    occurred_at = events.get_column("occurred_at")
    key = occurred_at.dt.epoch("us") * 2 + events.get_column("is_conversion").cast(pl.Int64)
    first = _customer_hash(customers, 0)
    order = _order_by(first, key)
    same = _same_as_previous(first.gather(order))
    check = _customer_hash(customers, 1).gather(order).to_numpy()
    collides = np.any(same & (check[1:] != check[:-1]))  # two customers, one hash
    del first, check
    if collides:
        exact = customers.cast(pl.Categorical).to_physical().cast(pl.Int64)
        order = _order_by(exact, key)
        same = _same_as_previous(exact.gather(order))
    index = _index_type(len(key))
    customer = np.zeros(len(key), dtype=index)
    np.cumsum(~same, out=customer[1:])
    del same
    key_sorted = key.gather(order).to_numpy()
    del key
    order_rows = _break_ties(
        order.to_numpy().astype(index), customer, key_sorted, events.get_column("event_id")
    )
    micros, conversion = key_sorted >> 1, (key_sorted & 1).astype(bool)
    return _Sorted(order_rows, customer, micros, conversion, occurred_at.dtype)


def _same_as_previous(values: pl.Series) -> _Ints:
    """Per row after the first: equal to the row before."""
    array = values.to_numpy()
    same: _Ints = array[1:] == array[:-1]
    return same


def _order_by(customer: pl.Series, key: pl.Series) -> pl.Series:
    """Row numbers sorted by customer (non-negative, < 2**63) then key, as one 128-bit sort."""
    return pl.select(
        (
            pl.lit(customer).cast(pl.Int128) * pl.lit(2**64, dtype=pl.Int128)
            + pl.lit(key).cast(pl.Int128)
        ).arg_sort()
    ).to_series()


def _break_ties(order: _Ints, customer: _Ints, key: _Ints, event_ids: pl.Series) -> _Ints:
    """Rows equal in customer and key ordered by event id (a fixed order whatever the input's)."""
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (customer[1:] == customer[:-1]) & (key[1:] == key[:-1])
    if not same.any():
        return order
    tied = same.copy()
    tied[:-1] |= same[1:]
    at = np.flatnonzero(tied)
    groups = np.cumsum(~same)[at]
    rows = order[at]
    fixed = (
        pl.DataFrame({"g": groups, "id": _gather(event_ids, rows), "row": rows})
        .sort("g", "id")
        .get_column("row")
        .to_numpy()
    )
    order[at] = fixed
    return order


def _gather(column: pl.Series, rows: _Ints) -> pl.Series:
    """``column.gather(rows)``, fast also on a column of many chunks: the rows are read in
    ascending order, then put in the order asked for."""
    ascending = np.argsort(rows, kind="stable")
    found = column.gather(pl.Series(rows[ascending])).rechunk()
    back = np.empty(len(rows), dtype=_index_type(len(rows)))
    back[ascending] = np.arange(len(rows), dtype=back.dtype)
    return found.gather(pl.Series(back))


@dataclass(frozen=True)
class _Sessions:
    number: _Ints  # per sorted row: its session's number (sessions in the order of their start)
    first: _Ints  # per session: its first sorted row
    last: _Ints  # per session: its last sorted row


def _sessions(
    customer: _Ints,
    micros: _Ints,
    channels: _Codes,
    *,
    timeouts_minutes: Mapping[str, float],
    default_timeout_minutes: float,
    max_session_minutes: float | None,
) -> _Sessions:
    """Sessions over the sorted events: a customer's events in one channel, cut where the
    silence exceeds that channel's timeout (and into windows of the maximum length)."""
    n = len(customer)
    index = _index_type(n)
    by_channel = np.argsort(channels.codes, kind="stable").astype(index)  # a radix sort
    channel = channels.codes[by_channel]
    timeouts = np.array(
        [
            round(timeouts_minutes.get(name, default_timeout_minutes) * 60 * _MICROS)
            for name in channels.names.to_list()
        ],
        dtype=np.int64,
    )
    limit = timeouts[channel]
    new = limit == 0  # a timeout of 0: every event is a session
    new[0] = True
    when = micros[by_channel]
    gap = np.diff(when)
    new[1:] |= gap > limit[1:]
    del gap, limit
    who = customer[by_channel]
    new[1:] |= (who[1:] != who[:-1]) | (channel[1:] != channel[:-1])
    del who, channel
    if max_session_minutes is not None:
        new = _cut_into_windows(new, when, round(max_session_minutes * 60 * _MICROS))
    del when
    is_first = np.zeros(n, dtype=bool)
    is_first[by_channel[new]] = True
    first = np.flatnonzero(is_first).astype(index)
    number_of_first = np.cumsum(is_first, dtype=index) - 1
    del is_first
    starts_at = np.arange(n, dtype=index)
    starts_at[~new] = 0
    np.maximum.accumulate(starts_at, out=starts_at)
    number = np.empty(n, dtype=index)
    number[by_channel] = number_of_first[by_channel[starts_at]]
    del starts_at, number_of_first
    new[:-1] = new[1:]  # now: the last event of its session
    new[-1] = True
    ends = by_channel[new]
    last = np.empty(len(first), dtype=index)
    last[number[ends]] = ends
    return _Sessions(number, first, last)


def _cut_into_windows(new: _Ints, when: _Ints, window: int) -> _Ints:
    """Sessions longer than ``window`` cut into windows from their first event."""
    first = np.maximum.accumulate(np.where(new, np.arange(len(new)), 0))
    number = (when - when[first]) // window
    cut = new.copy()
    cut[1:] |= number[1:] != number[:-1]
    return cut


def _fulfilment(
    events: pl.DataFrame, ordered: _Sorted, *, position: _Ints, session: _Sessions, is_noise: _Ints
) -> tuple[_Ints, _Ints]:
    """Sorted rows that are fulfilment steps, with the sorted row of their conversion.

    The rules of ``journeys.assign_journeys``: a later non-conversion event with the order id
    of a conversion (its first by time, then event id); and a noise event, not before that
    sale, in a session made only of such steps and noise.
    """
    order_ids = events.get_column("order_id")
    rows = np.flatnonzero(order_ids.is_not_null().to_numpy())
    at = position[rows]
    with_order = pl.DataFrame(
        {
            "at": at,
            "order_id": order_ids.gather(pl.Series(rows)),
            "conversion": ordered.conversion[at],
            "when": ordered.micros[at],
            "event_id": events.get_column("event_id").gather(pl.Series(rows)),
        }
    )
    conversions = (
        with_order.filter("conversion")
        .sort("when", "event_id")
        .unique("order_id", keep="first", maintain_order=True)
        .select("order_id", pl.col("at").alias("sale"), pl.col("when").alias("sold"))
    )
    found = (
        with_order.filter(~pl.col("conversion"))
        .join(conversions, on="order_id")
        .filter(pl.col("when") >= pl.col("sold"))
    )
    steps, sales = found.get_column("at").to_numpy(), found.get_column("sale").to_numpy()
    if not len(steps) or not is_noise.any():
        return steps, sales
    # sessions made only of fulfilment steps and noise take the noise along
    sessions = len(session.first)
    is_step = np.zeros(len(ordered.micros), dtype=bool)
    is_step[steps] = True
    sizes = np.bincount(session.number, minlength=sessions)
    covered = np.bincount(session.number[is_step | is_noise], minlength=sessions)
    by_row = np.argsort(steps)
    with_steps, first_step = np.unique(session.number[steps[by_row]], return_index=True)
    sale_of = np.full(sessions, -1, dtype=np.int64)
    sale_of[with_steps] = sales[by_row][first_step]  # the sale of each one's first step
    only = (covered == sizes) & (sale_of >= 0)
    noise = np.flatnonzero(is_noise & ~is_step & only[session.number])
    noise_sale = sale_of[session.number[noise]]
    later = ordered.micros[noise] >= ordered.micros[noise_sale]  # never a step before the sale
    return np.r_[steps, noise[later]], np.r_[sales, noise_sale[later]]


@dataclass(frozen=True)
class _Journeys:
    main: _Ints  # the sorted rows that are not fulfilment steps, ascending
    of_main: _Ints  # per main row: its journey's number (journeys in the order of their start)
    first: _Ints  # per journey: its first sorted row
    step_at: _Ints  # the sorted rows in step order (journey, then position)
    step_journey: _Ints  # per step: its journey's number
    step_first: _Ints  # per journey: the index of its first step


def _journeys(
    events: pl.DataFrame,
    ordered: _Sorted,
    *,
    fulfilment_at: _Ints,
    sale_at: _Ints,
    timeout: timedelta,
) -> _Journeys:
    """Journeys over the sorted events that are not fulfilment steps: cut after a conversion
    and at a silence longer than the timeout; each fulfilment step then follows its
    conversion's journey, in time order after its last step."""
    n = len(ordered.micros)
    index = _index_type(n)
    is_main = np.ones(n, dtype=bool)
    is_main[fulfilment_at] = False
    main = np.flatnonzero(is_main).astype(index)
    del is_main
    new = np.ones(len(main), dtype=bool)
    when = ordered.micros[main]
    new[1:] = np.diff(when) > timeout // timedelta(microseconds=1)
    del when
    new[1:] |= ordered.conversion[main[:-1]]
    who = ordered.customer[main]
    new[1:] |= who[1:] != who[:-1]
    del who
    of_main = np.cumsum(new, dtype=index) - 1
    first = main[new]
    del new

    journey_of = np.full(n, -1, dtype=index)
    journey_of[main] = of_main
    extra = pl.DataFrame(
        {
            "at": fulfilment_at,
            "journey": journey_of[sale_at],
            "when": ordered.micros[fulfilment_at],
            "id": _gather(events.get_column("event_id"), ordered.order[fulfilment_at]),
        }
    ).sort("journey", "when", "id")
    del journey_of
    extra_at = extra.get_column("at").to_numpy().astype(index)
    extra_journey = extra.get_column("journey").to_numpy().astype(index)
    insert = np.searchsorted(of_main, extra_journey, side="right")
    step_at = np.insert(main, insert, extra_at)
    step_journey = np.insert(of_main, insert, extra_journey)
    step_first = np.flatnonzero(np.r_[True, step_journey[1:] != step_journey[:-1]]).astype(index)
    return _Journeys(main, of_main, first, step_at, step_journey, step_first)


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
    source = events
    # the text read row by row in sorted order, in one chunk (gathers from many are slow)
    events = events.select(_READ)
    events = events.with_columns(
        events.get_column("event_id").rechunk(), events.get_column("customer_key").rechunk()
    )
    n = events.height
    ordered = _sort_events(events)
    channels = _Codes.of(events.get_column("channel")).sorted(ordered.order)
    session = _sessions(
        ordered.customer,
        ordered.micros,
        channels,
        timeouts_minutes=timeouts_minutes,
        default_timeout_minutes=default_timeout_minutes,
        max_session_minutes=max_session_minutes,
    )
    loaded = _Codes.of(events.get_column("touchpoint")).sorted(ordered.order)
    touchpoints = loaded.renamed(
        pl.select(alias_touchpoints(pl.lit(loaded.names), aliases or {})).to_series()
    )

    position = np.empty(n, dtype=_index_type(n))  # per input row: its sorted row
    position[ordered.order] = np.arange(n, dtype=position.dtype)
    fulfilment_at, sale_at = _fulfilment(
        events,
        ordered,
        position=position,
        session=session,
        is_noise=~ordered.conversion & loaded.among(tuple(noise_touchpoints)),
    )
    journey = _journeys(
        events, ordered, fulfilment_at=fulfilment_at, sale_at=sale_at, timeout=timeout
    )
    event_ids = events.get_column("event_id")
    session_ids = pl.select(
        pl.lit("s:", dtype=pl.String) + event_ids.gather(pl.Series(ordered.order[session.first]))
    ).to_series()
    journey_ids = pl.select(
        pl.lit("j:", dtype=pl.String) + event_ids.gather(pl.Series(ordered.order[journey.first]))
    ).to_series()
    steps = source.with_columns(
        _steps_in_input_order(
            session, journey, position, session_ids=session_ids, journey_ids=journey_ids
        )
    )
    del position
    session_frame = _session_frame(
        events, ordered, session, session_ids=session_ids, channels=channels, touchpoints=loaded
    )
    journey_frame = _journey_frame(
        events,
        ordered,
        journey,
        journey_ids=journey_ids,
        channels=channels,
        touchpoints=touchpoints,
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
        max_length=max_length,
        timeout=timeout,
        as_of=as_of,
    )
    edges = _edge_frame(
        journey,
        customer_of_journey=ordered.customer[journey.first],
        converted=journey_frame.get_column("converted").to_numpy(),
        closed=(journey_frame.get_column("status") != "open").to_numpy(),
        micros=ordered.micros,
        touchpoints=touchpoints,
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
    )
    return Rebuilt(sessions=session_frame, steps=steps, journeys=journey_frame, edges=edges)


def _steps_in_input_order(
    session: _Sessions,
    journey: _Journeys,
    position: _Ints,
    *,
    session_ids: pl.Series,
    journey_ids: pl.Series,
) -> list[pl.Series]:
    """The columns ``journeys.assign_journeys`` adds, per input row."""
    step = np.empty(len(position), dtype=position.dtype)  # per sorted row: its step
    step[journey.step_at] = np.arange(len(step), dtype=step.dtype)
    step_of_row = step[position]
    del step
    step_journey = journey.step_journey[step_of_row]
    step_number = step_of_row - journey.step_first[step_journey] + 1
    del step_of_row
    is_fulfilment = np.ones(len(position), dtype=bool)
    is_fulfilment[journey.main] = False
    return [
        session_ids.gather(pl.Series(session.number[position])).alias("session_id"),
        pl.Series("is_fulfilment", is_fulfilment[position]),
        journey_ids.gather(pl.Series(step_journey)).alias("journey_id"),
        pl.Series("position", step_number, dtype=pl.Int64),
    ]


def _session_frame(
    events: pl.DataFrame,
    ordered: _Sorted,
    session: _Sessions,
    *,
    session_ids: pl.Series,
    channels: _Codes,
    touchpoints: _Codes,
) -> pl.DataFrame:
    """One row per session, as ``sessions.summarise_sessions``."""
    first, last = session.first, session.last
    micros = ordered.micros
    return pl.DataFrame(
        [
            session_ids.alias("session_id"),
            events.get_column("customer_key").gather(pl.Series(ordered.order[first])),
            channels.at(first).alias("channel"),
            ordered.times(first).alias("started_at"),
            ordered.times(last).alias("ended_at"),
            pl.Series("events", np.bincount(session.number, minlength=len(first)), dtype=pl.Int64),
            touchpoints.at(first).alias("first_touchpoint"),
            touchpoints.at(last).alias("last_touchpoint"),
            pl.Series("duration_seconds", (micros[last] - micros[first]) / _MICROS),
        ]
    )


def _journey_frame(
    events: pl.DataFrame,
    ordered: _Sorted,
    journey: _Journeys,
    *,
    journey_ids: pl.Series,
    channels: _Codes,
    touchpoints: _Codes,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None,
    timeout: timedelta,
    as_of: datetime,
) -> pl.DataFrame:
    """One row per journey, as ``journeys.summarise_journeys``."""
    step_at, step_first = journey.step_at, journey.step_first
    step_last = np.r_[step_first[1:], len(step_at)] - 1
    of_main = journey.of_main
    sale = journey.main[np.flatnonzero(np.r_[of_main[1:] != of_main[:-1], True])]
    converted = ordered.conversion[sale]
    first = step_at[step_first]
    paths = _paths(
        journey.step_journey,
        touchpoints.codes[step_at],
        touchpoints.names,
        journeys=len(step_first),
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
        max_length=max_length,
    )
    sale_rows = ordered.order[sale]
    frame = pl.DataFrame(
        [
            journey_ids.alias("journey_id"),
            events.get_column("customer_key").gather(pl.Series(ordered.order[first])),
            ordered.times(first).alias("started_at"),
            ordered.times(step_at[step_last]).alias("ended_at"),
            pl.Series("converted", converted),
            events.get_column("event_id").gather(pl.Series(sale_rows)).alias(
                "conversion_event_id"
            ),
            ordered.times(sale).alias("converted_at"),
            _gather(events.get_column("revenue"), sale_rows),
            pl.Series("events", step_last - step_first + 1, dtype=pl.Int64),
            channels.at(first).alias("first_channel"),
            paths.get_column("last_touchpoint"),
            paths.get_column("path"),
        ]
    )
    sold = ["conversion_event_id", "converted_at", "revenue"]
    return frame.with_columns(
        pl.when("converted").then(pl.col(sold)),
    ).select(
        "journey_id",
        "customer_key",
        "started_at",
        "ended_at",
        journeys.journey_status(as_of=as_of, timeout=timeout),
        "converted",
        *sold,
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
    touchpoints, uncleaned, when cleaning leaves none), as ``journeys.clean_path``.

    Each path is spelled once: journeys with the same sequence of touchpoint codes share it.
    A sequence short enough is told by one exact integer (its codes + 1 as digits in base
    ``len(names) + 1``); a longer one is a path of its own.
    """
    dropped: _Ints = names.is_in(list(drop_touchpoints)).to_numpy()
    kept = np.flatnonzero(~dropped[codes])
    if collapse_repeats and len(kept):
        kj, kc = journey[kept], codes[kept]
        change = np.ones(len(kept), dtype=bool)
        change[1:] = (kj[1:] != kj[:-1]) | (kc[1:] != kc[:-1])
        kept = kept[change]
    has_kept = np.zeros(journeys, dtype=bool)
    has_kept[journey[kept]] = True
    fallback = np.flatnonzero(~has_kept[journey])
    chosen = np.sort(np.concatenate([kept, fallback]))
    chosen_journey, chosen_code = journey[chosen], codes[chosen]
    del kept, fallback, chosen

    base = len(names) + 1
    fits = _digits_in_int64(base)
    starts = np.flatnonzero(np.r_[True, chosen_journey[1:] != chosen_journey[:-1]])
    lengths = np.diff(np.r_[starts, len(chosen_journey)])
    offset = np.arange(len(chosen_journey)) - np.repeat(starts, lengths)
    powers = np.array([base**i for i in range(fits)], dtype=np.int64)
    digit = np.where(offset < fits, (chosen_code + 1) * powers[np.minimum(offset, fits - 1)], 0)
    number = np.add.reduceat(digit, starts)
    long = np.flatnonzero(lengths > fits)
    number[long] = -1 - long  # a path of its own
    del offset, digit
    _, first_journey, path_of_journey = np.unique(number, return_index=True, return_inverse=True)
    spelled = np.zeros(journeys, dtype=bool)
    spelled[first_journey] = True
    rows = np.flatnonzero(spelled[chosen_journey])
    steps = pl.DataFrame(
        {
            "path": path_of_journey[chosen_journey[rows]],
            "name": names.gather(pl.Series(chosen_code[rows])),
        }
    )
    if max_length is None:
        joined = steps.group_by("path").agg(
            pl.col("name").str.join(PATH_SEPARATOR).alias("path_text"),
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
            steps.group_by("path")
            .agg("name")
            .with_columns(
                capped.list.join(PATH_SEPARATOR).alias("path_text"),
                capped.list.last().alias("last_touchpoint"),
            )
        )
    spelt = joined.sort("path")  # group_by keeps each group's rows in order
    return spelt.select(
        pl.col("path_text").gather(path_of_journey).alias("path"),
        pl.col("last_touchpoint").gather(path_of_journey),
    )


def _digits_in_int64(base: int) -> int:
    """How many digits of ``base`` an int64 holds: the largest k with base**k <= 2**63 - 1."""
    k = 1
    while base ** (k + 1) < 2**63:
        k += 1
    return k


def _edge_frame(
    journey: _Journeys,
    *,
    customer_of_journey: _Ints,
    converted: _Ints,
    closed: _Ints,
    micros: _Ints,
    touchpoints: _Codes,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
) -> pl.DataFrame:
    """Every transition of every journey, as ``graphs.transition_edges`` with the journey and
    customer as numbers."""
    nodes = pl.Enum([*touchpoints.names.to_list(), START, CONVERSION, DROP_OFF])
    start, conversion, drop_off = len(touchpoints.names) + np.arange(3)
    main, journey_of_main = journey.main, journey.of_main
    codes = touchpoints.codes[main]
    kept = np.flatnonzero(~touchpoints.names.is_in(list(drop_touchpoints)).to_numpy()[codes])
    if not len(kept):  # only noise: no transition
        return _no_edges(nodes)
    kj, kc, kw = journey_of_main[kept], codes[kept], micros[main[kept]]
    new = np.ones(len(kept), dtype=bool)
    if collapse_repeats:
        new[1:] = (kj[1:] != kj[:-1]) | (kc[1:] != kc[:-1])
    run_first = np.flatnonzero(new)
    run_last = np.r_[run_first[1:], len(kept)] - 1
    run_journey, run_code = kj[run_first], kc[run_first]
    first_at, last_at = kw[run_first], kw[run_last]
    del kj, kc, kw, new, kept, codes
    same = np.r_[False, run_journey[1:] == run_journey[:-1]]
    source = np.where(same, np.r_[start, run_code[:-1]], start)
    seconds = np.where(same, (first_at - np.r_[0, last_at[:-1]]) / _MICROS, np.nan)
    # an end edge after each journey's last run: to CONVERSION or DROP_OFF (open: none)
    last_run = np.flatnonzero(np.r_[run_journey[1:] != run_journey[:-1], True])
    ending = run_journey[last_run]
    ends = last_run[closed[ending]]
    at = ends + 1
    end_node = np.where(converted[run_journey[ends]], conversion, drop_off)
    of_edge = np.insert(run_journey, at, run_journey[ends])
    ids = pl.UInt32 if len(customer_of_journey) < 2**32 else pl.UInt64
    return pl.DataFrame(
        [
            pl.Series("journey", of_edge, dtype=ids),
            pl.Series("customer", customer_of_journey[of_edge], dtype=ids),
            _enum(np.insert(source, at, run_code[ends]), nodes, "from_touchpoint"),
            _enum(np.insert(run_code, at, end_node), nodes, "to_touchpoint"),
            pl.Series("seconds", np.insert(seconds, at, np.nan), nan_to_null=True),
        ]
    )


def _no_edges(nodes: pl.Enum) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "journey": pl.UInt32,
            "customer": pl.UInt32,
            "from_touchpoint": nodes,
            "to_touchpoint": nodes,
            "seconds": pl.Float64,
        }
    )


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
    edges = _no_edges(pl.Enum([START, CONVERSION, DROP_OFF]))  # no events, no transitions
    return Rebuilt(sessions.summarise_sessions(in_sessions), steps, summary, edges)
