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
scanning that order with NumPy; large gathers go through Polars, which does them 2-3 times
faster. Text is touched only where a result holds it: channels and touchpoints become small
integer codes, paths are joined by Arrow's ``binary_join`` over list offsets, and the edges
name journeys and customers by number (:meth:`Rebuilt.labelled_edges` gives them their ids).
Row order differs: ``steps`` keep the input's order; sessions, journeys and edges come in the
order of the sorted events.
"""

from __future__ import annotations

import ctypes
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import networkx as nx
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from journey_analytics import graphs, incremental, journeys, sessions
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
    customers: int  # the customers numbered in ``edges`` (0, 1, …)

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
        """The transition graph of the edges (:func:`edge_graph`)."""
        return edge_graph(self.edges)


def edge_graph(edges: pl.DataFrame) -> nx.DiGraph:
    """``graphs.transition_graph`` of edges that name journeys and customers by number
    (:attr:`Rebuilt.edges`), with the same attributes: grouped by one integer per edge or
    node (the Enum codes) rather than by two Enum columns, and journeys and customers counted
    by number, which is several times faster than by id."""
    names = pl.Series(_names(edges.schema["to_touchpoint"]))
    size = len(names)
    start, conversion, drop_off = (names.index_of(node) for node in (START, CONVERSION, DROP_OFF))
    coded = edges.select(  # the Enum codes as they are (8 bits for up to 256 nodes)
        pl.col("from_touchpoint").to_physical().alias("source"),
        pl.col("to_touchpoint").to_physical().alias("target"),
        "journey",
        "customer",
        "seconds",
    )
    pair = pl.UInt32 if size < 2**16 else pl.UInt64  # one integer per (source, target)
    transitions = (
        coded.group_by(edge=pl.col("source").cast(pair) * size + pl.col("target").cast(pair))
        .agg(
            pl.len().alias("transitions"),
            pl.col("customer").n_unique().alias("customers"),
            pl.col("seconds").median().alias("median_seconds"),
            pl.col("seconds").quantile(0.9, interpolation="linear").alias("p90_seconds"),
        )
        .with_columns(source=pl.col("edge") // size, target=pl.col("edge") % size)
        .with_columns(
            probability=pl.col("transitions") / pl.col("transitions").sum().over("source")
        )
    )
    who = [
        pl.len().alias("visits"),
        *(pl.col(c).n_unique().alias(f"{c}s") for c in ("journey", "customer")),
    ]
    visits = pl.concat(  # START's visits are the journeys that leave it
        [
            coded.filter(pl.col("source") == start).select(
                pl.lit(start, pl.UInt32).alias("node"), *who
            ),
            coded.group_by(node=pl.col("target").cast(pl.UInt32)).agg(*who),
        ]
    )
    ends = coded.group_by(node=pl.col("source").cast(pl.UInt32)).agg(
        (pl.col("target") == conversion).sum().alias("conversions"),
        (pl.col("target") == drop_off).sum().alias("exits"),
    )
    nodes = (
        visits.filter(pl.col("visits") > 0)
        .join(ends, on="node", how="left")
        .with_columns(pl.col("conversions", "exits").fill_null(0))
        .with_columns(exit_rate=pl.col("exits") / pl.col("visits"))
    )
    named = pl.lit(names)
    return graphs.graph_from_frames(
        transitions.select(
            named.gather("source").alias("from_touchpoint"),
            named.gather("target").alias("to_touchpoint"),
            pl.col("transitions", "customers").cast(pl.Int64),
            "probability",
            "median_seconds",
            "p90_seconds",
        ).sort("from_touchpoint", "to_touchpoint"),
        nodes.select(
            named.gather("node").alias("touchpoint"),
            pl.col("visits", "journeys", "customers", "conversions", "exits").cast(pl.Int64),
            "exit_rate",
        ).sort("touchpoint"),
    )


@dataclass(frozen=True)
class _Codes:
    """A text column as small integer codes into ``names`` (sorted, distinct). The rows it
    names (:meth:`at`) are text of type ``text``: the input column's own, String or
    Categorical (an Enum input gives Categorical: renamed or cut paths hold other names)."""

    codes: _Ints
    names: pl.Series
    text: pl.DataType

    @classmethod
    def of(cls, column: pl.Series) -> _Codes:
        """The codes of a text column without nulls."""
        return cls.of_categorical(column.cast(pl.Categorical))

    @classmethod
    def of_categorical(cls, categorical: pl.Series, text: pl.DataType | None = None) -> _Codes:
        """The codes of a categorical column without nulls (renumbered by name)."""
        present = categorical.unique()
        physical = present.to_physical().to_numpy()
        names = present.cast(pl.String)
        small = np.uint16 if len(names) < 2**16 else np.uint32
        renumber = np.zeros(int(physical.max()) + 1 if len(physical) else 1, dtype=small)
        renumber[physical] = names.rank("ordinal").to_numpy() - 1
        codes = np.take(renumber, categorical.to_physical().to_numpy())
        return cls(codes, names.sort(), text if text is not None else pl.String())

    def renamed(self, names: pl.Series) -> _Codes:
        """The codes of the same rows after renaming each of ``names`` (same order) to the
        value at its position in ``names``."""
        renamed = _Codes.of(names)
        return _Codes(np.take(renamed.codes, self.codes), renamed.names, self.text)

    def among(self, wanted: tuple[str, ...]) -> _Ints:
        """Per row: its name is one of ``wanted``."""
        is_wanted: _Ints = self.names.is_in(list(wanted)).to_numpy()
        return np.take(is_wanted, self.codes)

    def at(self, rows: _Ints) -> pl.Series:
        """The names of ``rows`` (as ``text``: a Categorical column holds 4 bytes a row
        instead of Polars' 16 for a string)."""
        return self.names.cast(self.text).gather(pl.Series(_take(self.codes, rows)))


def _index_type(n: int) -> type[np.signedinteger]:
    """The integer type that numbers ``n`` rows: 32 bits while they fit (half the memory)."""
    return np.int32 if n < 2**31 else np.int64


def _take(values: _Ints, at: _Ints) -> _Ints:
    """``values[at]`` (read-only): Polars gathers large arrays 2-3 times faster than NumPy's
    fancy indexing."""
    if values.dtype == np.bool_:
        return _take(values.view(np.uint8), at).view(np.bool_)
    index = at.view(np.uint32) if at.dtype == np.int32 else at
    taken: _Ints = pl.Series(values).gather(pl.Series(index)).to_numpy()
    return taken


def _customer_hash(customers: pl.Expr, seed: int) -> pl.Expr:
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
        return pl.Series(_take(self.micros, at)).cast(pl.Datetime("us")).cast(self.time_type)


def _sort_events(events: pl.DataFrame) -> tuple[_Sorted, _Codes, _Codes]:
    """The events sorted by customer, then time with conversions last, then event id;
    customers in the order of their key's hash. Also the codes of each sorted row's channel
    and touchpoint.

    Two independent hashes of the customer key must both agree for two rows to be one
    customer; should two keys share the first hash, the second tells them apart and the
    customers fall back to exact codes.
    """
    customers = pl.col("customer_key")
    keys = events.select(  # in parallel, and in one chunk: gathers from many are slow
        first=_customer_hash(customers, 0),
        check=_customer_hash(customers, 1),
        key=_time_key(),
        channel=pl.col("channel").cast(pl.Categorical),
        touchpoint=pl.col("touchpoint").cast(pl.Categorical),
    ).rechunk()
    channels = _Codes.of_categorical(keys.get_column("channel"), _text(events, "channel"))
    touchpoints = _Codes.of_categorical(keys.get_column("touchpoint"), _text(events, "touchpoint"))
    order = _order_by(keys.get_column("first"), keys.get_column("key"))
    ordered = keys.select(
        "first",
        "check",
        "key",
        pl.Series("channel", channels.codes),
        pl.Series("touchpoint", touchpoints.codes),
    ).gather(order)
    del keys
    same = _same_as_previous(ordered.get_column("first"))
    check = ordered.get_column("check").to_numpy()
    if np.any(same & (check[1:] != check[:-1])):  # two customers, one hash
        exact = events.get_column("customer_key").cast(pl.Categorical).to_physical()
        key = events.select(key=_time_key()).to_series().rechunk()
        order = _order_by(exact.cast(pl.Int64).rechunk(), key)
        ordered = pl.DataFrame(
            [
                exact.rechunk().alias("first"),
                key,
                pl.Series("channel", channels.codes),
                pl.Series("touchpoint", touchpoints.codes),
            ]
        ).gather(order)
        same = _same_as_previous(ordered.get_column("first"))
    del check
    index = _index_type(len(same) + 1)
    customer = np.zeros(len(same) + 1, dtype=index)
    np.cumsum(~same, out=customer[1:])
    del same
    key_sorted = ordered.get_column("key").to_numpy()
    order_rows, (channel, touchpoint) = _break_ties(
        order.to_numpy().astype(index),
        customer,
        key_sorted,
        events.get_column("event_id"),
        [ordered.get_column("channel").to_numpy(), ordered.get_column("touchpoint").to_numpy()],
    )
    micros, conversion = key_sorted >> 1, (key_sorted & 1).astype(bool)
    return (
        _Sorted(order_rows, customer, micros, conversion, events.schema["occurred_at"]),
        _Codes(channel, channels.names, channels.text),
        _Codes(touchpoint, touchpoints.names, touchpoints.text),
    )


def _text(events: pl.DataFrame, column: str) -> pl.DataType:
    """The type of the text a result takes from ``column``: Categorical when the column is
    Categorical (its own type) or Enum (names held once, a small code per row), else String.
    Not Enum: an alias or a cut path (``…``) may name what the Enum does not."""
    dtype = events.schema[column]
    if isinstance(dtype, pl.Categorical):
        return dtype
    return pl.Categorical() if isinstance(dtype, pl.Enum) else pl.String()


def _time_key() -> pl.Expr:
    """Microseconds times 2, plus 1 for a conversion: time order with conversions last."""
    return pl.col("occurred_at").dt.epoch("us") * 2 + pl.col("is_conversion").cast(pl.Int64)


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


def _break_ties(
    order: _Ints, customer: _Ints, key: _Ints, event_ids: pl.Series, codes: list[_Ints]
) -> tuple[_Ints, list[_Ints]]:
    """Rows equal in customer and key ordered by event id (a fixed order whatever the input's),
    and ``codes`` of the sorted rows moved with them."""
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (customer[1:] == customer[:-1]) & (key[1:] == key[:-1])
    if not same.any():
        return order, codes
    tied = same.copy()
    tied[:-1] |= same[1:]
    at = np.flatnonzero(tied)
    groups = np.cumsum(~same)[at]
    by_id = (
        pl.DataFrame({"g": groups, "id": event_ids.gather(pl.Series(order[at]))})
        .select(pl.arg_sort_by("g", "id"))
        .to_series()
        .to_numpy()
    )
    moved = []
    for values in [order, *codes]:
        copy = values.copy()
        copy[at] = values[at][by_id]
        moved.append(copy)
    return moved[0], moved[1:]


def _prefixed(column: pl.Series, rows: _Ints, prefix: str) -> pl.Series:
    """``prefix`` + ``column.gather(rows)`` for distinct ``rows``: the prefix is added reading
    the values in ascending row order (text read in random order is many times slower), then
    the values are put in the order asked for."""
    wanted = np.zeros(len(column), dtype=bool)
    wanted[rows] = True
    rank = np.cumsum(wanted, dtype=_index_type(len(column))) - 1
    found = column.filter(pl.Series(wanted))
    prefixed = pl.select(pl.lit(prefix, dtype=pl.String) + pl.lit(found)).to_series()
    return prefixed.gather(pl.Series(_take(rank, rows))).alias(column.name)


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
    channel = np.repeat(  # the codes in that order
        np.arange(len(channels.names), dtype=channels.codes.dtype),
        np.bincount(channels.codes, minlength=len(channels.names)),
    )
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
    when = _take(micros, by_channel)
    gap = np.diff(when)
    new[1:] |= gap > limit[1:]
    del gap, limit
    who = _take(customer, by_channel)
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
    number[by_channel] = _take(number_of_first, _take(by_channel, starts_at))
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
            "conversion": _take(ordered.conversion, at),
            "when": _take(ordered.micros, at),
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
    is_main: _Ints  # per sorted row: not a fulfilment step
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
    new = np.ones(len(main), dtype=bool)
    when = ordered.micros[is_main]
    new[1:] = np.diff(when) > timeout // timedelta(microseconds=1)
    del when
    new[1:] |= ordered.conversion[is_main][:-1]
    who = ordered.customer[is_main]
    new[1:] |= who[1:] != who[:-1]
    del who
    of_main = np.cumsum(new, dtype=index) - 1
    first = main[new]
    del new

    journey_of = np.full(n, -1, dtype=index)
    journey_of[is_main] = of_main
    extra = pl.DataFrame(
        {
            "at": fulfilment_at,
            "journey": journey_of[sale_at],
            "when": ordered.micros[fulfilment_at],
            "id": events.get_column("event_id").gather(pl.Series(ordered.order[fulfilment_at])),
        }
    ).sort("journey", "when", "id")
    del journey_of
    extra_at = extra.get_column("at").to_numpy().astype(index)
    extra_journey = extra.get_column("journey").to_numpy().astype(index)
    insert = np.searchsorted(of_main, extra_journey, side="right")
    step_at = np.insert(main, insert, extra_at)
    step_journey = np.insert(of_main, insert, extra_journey)
    step_first = np.flatnonzero(np.r_[True, step_journey[1:] != step_journey[:-1]]).astype(index)
    return _Journeys(is_main, main, of_main, first, step_at, step_journey, step_first)


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
    shards: int = 1,
    workers: int = 1,
) -> Rebuilt:
    """Sessions, steps, journeys and transition edges of canonical events, as the stage
    functions give them (see the module docstring); paths and edges use the touchpoints
    renamed by ``aliases``, steps keep the loaded names.

    With ``shards`` > 1 the customers are split into that many groups by a hash of their key
    — customers whose events share an order id always in one group, since a pickup belongs to
    the buyer's journey — and each group is rebuilt on its own, ``workers`` groups at a time
    (threads: NumPy and Polars release the interpreter lock). The rows are the same as in one
    piece; each step works on one group's rows, and every core works at once. See
    :func:`shards_for` for a number of groups.

    ``channel`` and ``touchpoint`` (and ``stage``, which is only carried) may be Categorical
    or Enum rather than String: 4 bytes a row instead of Polars' 16 for a string. The
    sessions' ``channel``, ``first_touchpoint`` and ``last_touchpoint`` and the journeys'
    ``first_channel`` and ``last_touchpoint`` are then Categorical too, with the same values.
    """
    rules = Rules(
        timeouts_minutes=timeouts_minutes,
        default_timeout_minutes=default_timeout_minutes,
        max_session_minutes=max_session_minutes,
        timeout=timeout,
        noise_touchpoints=tuple(noise_touchpoints),
        as_of=as_of,
        drop_touchpoints=tuple(drop_touchpoints),
        collapse_repeats=collapse_repeats,
        max_length=max_length,
        aliases=aliases or {},
    )
    if events.is_empty():
        return _rebuild_by_stages(events, rules)
    if shards <= 1:
        return _joined(events, [_rebuild_part(events.select(_READ), rules)], None)
    members = _members(events, shards)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        # taken one by one as they finish, each group's step numbers kept only until copied
        parts = pool.map(lambda rows: _rebuild_part(_of(events, rows, _READ), rules), members)
        return _joined(events, parts, members)


def rebuild_groups(
    events: pl.DataFrame, rules: Rules, *, shards: int, workers: int = 1
) -> Iterator[Rebuilt]:
    """:func:`rebuild` one customer group at a time: each group's sessions, steps (its events,
    in input order), journeys and edges, in group order, each as soon as it and those before it
    are done — for writing each one out (``jobs.write_journey_shards``) while the next are
    rebuilt, with no more than ``workers`` + 1 groups in memory. If the caller stops early or a
    group fails, the groups still running are finished and dropped first. Each group's frames
    are those of :func:`rebuild` for its customers alone; :func:`join_edges` numbers their
    journeys and customers on.

    Example:
        >>> import polars as pl
        >>> from datetime import UTC, datetime, timedelta
        >>> events = pl.DataFrame(
        ...     {
        ...         "event_id": ["web:1", "pos:2"],
        ...         "customer_key": ["c1", "c2"],
        ...         "channel": ["web", "store"],
        ...         "touchpoint": ["product_view", "store_purchase"],
        ...         "occurred_at": [datetime(2026, 3, 1, 9, tzinfo=UTC)] * 2,
        ...         "is_conversion": [False, True],
        ...         "order_id": [None, "R1"],
        ...         "revenue": [None, 49.9],
        ...     }
        ... )
        >>> rules = Rules(
        ...     timeouts_minutes={}, default_timeout_minutes=30, max_session_minutes=None,
        ...     timeout=timedelta(days=30), noise_touchpoints=(),
        ...     as_of=datetime(2026, 4, 1, tzinfo=UTC), drop_touchpoints=(),
        ...     collapse_repeats=True, max_length=None, aliases={},
        ... )
        >>> sum(group.journeys.height for group in rebuild_groups(events, rules, shards=2))
        2
    """
    if events.is_empty():
        yield _rebuild_by_stages(events, rules)
        return

    def rebuild_group(rows: _Ints) -> Rebuilt:
        group = _of(events, rows, tuple(events.columns))
        return _joined(group, [_rebuild_part(group.select(_READ), rules)], None)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        running: deque[Future[Rebuilt]] = deque()
        for rows in _members(events, max(1, shards)):
            running.append(pool.submit(rebuild_group, rows))
            if len(running) > workers:
                yield _freed_after(running.popleft().result())
        while running:
            yield _freed_after(running.popleft().result())


def _freed_after(group: Rebuilt) -> Rebuilt:
    """``group``, after giving back the memory its rebuild freed."""
    _give_back_freed_memory()
    return group


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None under another C library (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # musl has none
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_MALLOC_TRIM = _glibc_malloc_trim()


def _give_back_freed_memory() -> None:
    """Returns to the system the memory that freed NumPy arrays left in glibc's heaps.

    glibc keeps a freed block below its mmap threshold (which grows with the arrays freed, up
    to 32 MB) for reuse, so each group's temporary arrays stay in the process after the group
    is done; ``malloc_trim(0)`` gives those pages back (dask.distributed's workers do the
    same). At 10M events it lowers the peak by about 110 MB at no measurable cost
    (benchmarks/README.md). Polars' own allocator (jemalloc) returns its memory by itself.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _members(events: pl.DataFrame, shards: int) -> list[_Ints]:
    """The rows of each customer group that has any (see :func:`rebuild`), ascending."""
    small = np.uint8 if shards <= 2**8 else np.uint16 if shards <= 2**16 else np.uint32
    groups = _customer_groups(events, shards).astype(small)  # narrow: scanned once per group
    index = _index_type(len(groups))
    found = (np.flatnonzero(groups == group).astype(index) for group in range(shards))
    return [rows for rows in found if len(rows)]


def _of(events: pl.DataFrame, rows: _Ints, columns: tuple[str, ...]) -> pl.DataFrame:
    """``columns`` of ascending ``rows`` of ``events``, in one chunk each."""
    mask = np.zeros(events.height, dtype=bool)
    mask[rows] = True
    return events.select(columns).filter(pl.Series(mask))


def shards_for(events: int, *, events_per_shard: int = 625_000) -> int:
    """A number of customer groups for :func:`rebuild`: one per ``events_per_shard`` events.
    Measured at 10M events on 2 cores (benchmarks/README.md, 2026-12-01): 8 groups, two at a
    time, took 10 to 11 s against 11.6 to 14.5 s in one piece, at about the same peak memory;
    2 to 16 groups all took 10 to 11 s, with peaks from 5.2 GB (2) down to 4.1 GB (16). Again
    on 2026-12-02, with the groups' step numbers joined as each group finishes: 16 groups
    peaked at 3.44 to 3.54 GB against 3.64 to 3.94 GB for 8, at the same CPU time (19 to
    22 s); at 1M events 2 groups took 1.0 to 1.1 s against 1.1 to 1.3 s in one piece."""
    return max(1, -(-events // events_per_shard))


def _customer_groups(events: pl.DataFrame, groups: int) -> _Ints:
    """Per event, its customer's group: a hash of the customer key, or of the smallest key
    among the customers linked to it by shared order ids (directly or through others)."""
    hashes = events.get_column("customer_key").hash(0)
    linked = incremental.order_groups(events.select("order_id", "customer_key"))
    if not linked.is_empty():
        moved = linked.select(pl.col("customer_key").hash(0).alias("name"), pl.col("first").hash(0))
        # every customer of a component goes where its smallest key goes (the few rows
        # found first: a lookup of every row in the mapping is several times slower)
        rows = hashes.is_in(moved.get_column("name").implode()).arg_true()
        hashes = hashes.scatter(
            rows, hashes.gather(rows).replace(moved.get_column("name"), moved.get_column("first"))
        )
    found: _Ints = (hashes % groups).to_numpy()
    return found


@dataclass(frozen=True)
class Rules:
    """The options of :func:`rebuild` (its keywords but ``shards`` and ``workers``): the
    sessions', journeys' and paths' rules."""

    timeouts_minutes: Mapping[str, float]
    default_timeout_minutes: float
    max_session_minutes: float | None
    timeout: timedelta
    noise_touchpoints: tuple[str, ...]
    as_of: datetime
    drop_touchpoints: tuple[str, ...]
    collapse_repeats: bool
    max_length: int | None
    aliases: Mapping[str, str]


@dataclass(frozen=True)
class _Steps:
    """Per input row of a part: the columns ``journeys.assign_journeys`` adds, with the
    session and journey as their row numbers in the part's frames (``position`` 32-bit)."""

    session: _Ints
    is_fulfilment: _Ints
    journey: _Ints
    position: _Ints


@dataclass(frozen=True)
class _Part:
    sessions: pl.DataFrame
    steps: _Steps
    journeys: pl.DataFrame
    edges: pl.DataFrame
    customers: int


def _joined(events: pl.DataFrame, parts: Iterable[_Part], rows: Sequence[_Ints] | None) -> Rebuilt:
    """The rebuilt groups as one: sessions, journeys and customers numbered on, steps in input
    order (``rows``: each part's rows in ``events``, ascending; None for one part of all rows).

    The parts are taken one at a time: each one's step numbers are numbered on and put in
    input order (``rows``), then dropped, so that only the frames of those done are held; the
    memory the part's rebuild freed is given back. The session and journey ids are then
    gathered by number.
    """
    session_frames, journey_frames, edge_frames, customers = [], [], [], []
    if rows is None:
        (part,) = parts
        session_frames, journey_frames = [part.sessions], [part.journeys]
        edge_frames, customers = [part.edges], [part.customers]
        numbers = _numbers(  # as they are: no copy
            part.steps.session, part.steps.is_fulfilment, part.steps.journey, part.steps.position
        )
        del part
    else:
        n = events.height
        index = _index_type(n)
        session, journey = np.empty(n, dtype=index), np.empty(n, dtype=index)
        # positions 64-bit, as the steps table has them: no cast after
        is_fulfilment, position = np.empty(n, dtype=bool), np.empty(n, dtype=np.int64)
        sessions_before = journeys_before = 0
        for part, at in zip(parts, rows, strict=True):
            # put in input order as each part comes (while the workers rebuild the next):
            # no gather of all the steps at the end, whose new columns would come on top of
            # the memory the groups have just freed
            steps = part.steps
            session[at] = np.add(steps.session, sessions_before, dtype=index)
            journey[at] = np.add(steps.journey, journeys_before, dtype=index)
            is_fulfilment[at], position[at] = steps.is_fulfilment, steps.position
            session_frames.append(part.sessions)
            journey_frames.append(part.journeys)
            edge_frames.append(part.edges)
            customers.append(part.customers)
            sessions_before += part.sessions.height
            journeys_before += part.journeys.height
            del part, steps
            _give_back_freed_memory()
        numbers = _numbers(session, is_fulfilment, journey, position)  # as they are: no copy
        del session, journey, is_fulfilment, position
    edges = join_edges(
        edge_frames,
        journeys=[frame.height for frame in journey_frames],
        customers=customers,
    )
    sessions = pl.concat(session_frames)
    journeys = pl.concat(journey_frames)
    del session_frames, journey_frames, edge_frames
    ids = numbers.select(  # the two gathers in parallel, from one chunk each
        pl.lit(sessions.get_column("session_id").rechunk()).gather("session"),
        "is_fulfilment",
        pl.lit(journeys.get_column("journey_id").rechunk()).gather("journey"),
        pl.col("position").cast(pl.Int64),
    )
    del numbers
    return Rebuilt(sessions, events.with_columns(ids), journeys, edges, sum(customers))


def join_edges(
    edges: Sequence[pl.DataFrame], *, journeys: Sequence[int], customers: Sequence[int]
) -> pl.DataFrame:
    """The edges of several groups (:func:`rebuild_groups`) as one frame: each group's
    journeys and customers numbered after those of the groups before it (``journeys`` and
    ``customers``: how many each group has), its nodes as one Enum of all the groups' nodes.
    The journeys' numbers are their rows in the groups' journeys concatenated in order."""
    nodes = pl.Enum(
        [
            *sorted(
                {name for frame in edges for name in _names(frame.schema["to_touchpoint"])}
                - {START, CONVERSION, DROP_OFF}
            ),
            START,
            CONVERSION,
            DROP_OFF,
        ]
    )
    journeys_before = np.cumsum([0, *journeys])
    customers_before = np.cumsum([0, *customers])
    return pl.concat(
        [
            frame.select(
                (pl.col("journey") + int(journeys_before[index])).cast(frame.schema["journey"]),
                (pl.col("customer") + int(customers_before[index])).cast(frame.schema["customer"]),
                _renumbered(frame.get_column("from_touchpoint"), nodes),
                _renumbered(frame.get_column("to_touchpoint"), nodes),
                "seconds",
            )
            for index, frame in enumerate(edges)
        ]
    )


def _numbers(session: _Ints, is_fulfilment: _Ints, journey: _Ints, position: _Ints) -> pl.DataFrame:
    """The steps' numbers as a frame, without a copy (sessions and journeys as row numbers)."""
    return pl.DataFrame(
        [
            _row_numbers(session).alias("session"),
            pl.Series("is_fulfilment", is_fulfilment),
            _row_numbers(journey).alias("journey"),
            pl.Series("position", position),
        ]
    )


def _row_numbers(rows: _Ints) -> pl.Series:
    """Row numbers as Polars' index type (32-bit numbers read as unsigned, without a copy)."""
    return pl.Series(rows.view(np.uint32) if rows.dtype == np.int32 else rows)


def _names(dtype: pl.DataType) -> list[str]:
    """The categories of an Enum type."""
    assert isinstance(dtype, pl.Enum)  # the edges name their nodes with an Enum
    return list(dtype.categories)


def _renumbered(column: pl.Series, nodes: pl.Enum) -> pl.Series:
    """An Enum column of one group as the Enum ``nodes`` of all (codes mapped, no text)."""
    if column.dtype == nodes:  # the group has every node
        return column
    position = {name: index for index, name in enumerate(nodes.categories)}
    mapping = np.array([position[name] for name in _names(column.dtype)], dtype=np.uint32)
    return _enum(np.take(mapping, column.to_physical().to_numpy()), nodes, column.name)


def _rebuild_part(events: pl.DataFrame, rules: Rules) -> _Part:
    """:func:`rebuild` of the columns ``_READ`` of some customers' events, in one piece."""
    # the columns read by row number, in one chunk: gathers from many chunks are slow
    events = events.with_columns(events.select("event_id", "customer_key").rechunk())
    n = events.height
    ordered, channels, loaded = _sort_events(events)
    session = _sessions(
        ordered.customer,
        ordered.micros,
        channels,
        timeouts_minutes=rules.timeouts_minutes,
        default_timeout_minutes=rules.default_timeout_minutes,
        max_session_minutes=rules.max_session_minutes,
    )
    touchpoints = loaded.renamed(
        pl.select(alias_touchpoints(pl.lit(loaded.names), rules.aliases)).to_series()
    )

    position = np.empty(n, dtype=_index_type(n))  # per input row: its sorted row
    position[ordered.order] = np.arange(n, dtype=position.dtype)
    fulfilment_at, sale_at = _fulfilment(
        events,
        ordered,
        position=position,
        session=session,
        is_noise=~ordered.conversion & loaded.among(rules.noise_touchpoints),
    )
    journey = _journeys(
        events, ordered, fulfilment_at=fulfilment_at, sale_at=sale_at, timeout=rules.timeout
    )
    event_ids = events.get_column("event_id")
    session_ids = _prefixed(event_ids, _take(ordered.order, session.first), "s:")
    journey_ids = _prefixed(event_ids, _take(ordered.order, journey.first), "j:")
    steps = _steps_in_input_order(session, journey, position)
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
        drop_touchpoints=rules.drop_touchpoints,
        collapse_repeats=rules.collapse_repeats,
        max_length=rules.max_length,
        timeout=rules.timeout,
        as_of=rules.as_of,
    )
    edges = _edge_frame(
        journey,
        customer_of_journey=_take(ordered.customer, journey.first),
        converted=journey_frame.get_column("converted").to_numpy(),
        closed=(journey_frame.get_column("status") != "open").to_numpy(),
        micros=ordered.micros,
        touchpoints=touchpoints,
        drop_touchpoints=rules.drop_touchpoints,
        collapse_repeats=rules.collapse_repeats,
    )
    customers = int(ordered.customer[-1]) + 1
    return _Part(session_frame, steps, journey_frame, edges, customers)


def _steps_in_input_order(session: _Sessions, journey: _Journeys, position: _Ints) -> _Steps:
    """The columns ``journeys.assign_journeys`` adds, per input row (``position``: its sorted
    row), the session and journey by number."""
    n = len(position)
    journey_of = np.empty(n, dtype=position.dtype)  # per sorted row
    journey_of[journey.step_at] = journey.step_journey
    number = np.empty(n, dtype=position.dtype)
    number[journey.step_at] = np.arange(1, n + 1, dtype=number.dtype)
    number -= _take(journey.step_first, journey_of)
    per_row = pl.DataFrame(  # all gathered at once, in parallel
        [
            pl.Series("session", session.number),
            pl.Series("is_fulfilment", ~journey.is_main),
            pl.Series("journey", journey_of),
            pl.Series("position", number),
        ]
    ).gather(_row_numbers(position))
    del journey_of, number
    return _Steps(*(per_row.get_column(name).to_numpy() for name in per_row.columns))


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
            events.get_column("customer_key").gather(pl.Series(_take(ordered.order, first))),
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
    converted = _take(ordered.conversion, sale)
    first = _take(step_at, step_first)
    paths = _paths(
        journey.step_journey,
        _take(touchpoints.codes, step_at),
        touchpoints.names,
        text=touchpoints.text,
        journeys=len(step_first),
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
        max_length=max_length,
    )
    sale_rows = _take(ordered.order, sale)
    frame = pl.DataFrame(
        [
            journey_ids.alias("journey_id"),
            events.get_column("customer_key").gather(pl.Series(_take(ordered.order, first))),
            ordered.times(first).alias("started_at"),
            ordered.times(_take(step_at, step_last)).alias("ended_at"),
            pl.Series("converted", converted),
            events.get_column("event_id").gather(pl.Series(sale_rows)).alias("conversion_event_id"),
            ordered.times(sale).alias("converted_at"),
            events.get_column("revenue").gather(pl.Series(sale_rows)),
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
    text: pl.DataType,
    journeys: int,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
    max_length: int | None,
) -> pl.DataFrame:
    """Per journey, in number order, the cleaned path and its last touchpoint (all the steps'
    touchpoints, uncleaned, when cleaning leaves none), as ``journeys.clean_path``; the last
    touchpoint as ``text`` (String or Categorical).

    The steps come in journey order. The cleaning selects and caps by index; the text is
    joined by Arrow's ``binary_join`` over the journeys' lists of names (several times faster
    than a group-by with ``str.join``).
    """
    dropped: _Ints = names.is_in(list(drop_touchpoints)).to_numpy()
    chosen = ~np.take(dropped, codes)
    if collapse_repeats:
        kept = np.flatnonzero(chosen)
        kj, kc = journey[kept], codes[kept]
        repeat = np.zeros(len(kept), dtype=bool)
        repeat[1:] = (kj[1:] == kj[:-1]) & (kc[1:] == kc[:-1])
        chosen[kept[repeat]] = False
        del kept, kj, kc, repeat
    has_kept = np.zeros(journeys, dtype=bool)
    has_kept[journey[chosen]] = True
    chosen |= ~np.take(has_kept, journey)  # nothing kept: all the steps
    chosen_journey, chosen_code = journey[chosen], codes[chosen].astype(np.int32)
    del chosen, has_kept
    lengths = np.bincount(chosen_journey, minlength=journeys)
    labels = names.to_list()
    if max_length is not None:
        chosen_code, lengths = _capped(
            chosen_code, lengths, max_length=max_length, ellipsis=len(labels)
        )
        labels.append(ELLIPSIS)
    ends = np.cumsum(lengths)
    offsets = np.r_[0, ends]
    small = offsets[-1] < 2**31
    offsets = offsets.astype(np.int32 if small else np.int64)
    # Arrow arrays from buffers and from Polars: ``pa.array`` would import pandas (0.5 s)
    names_text = pl.Series(labels, dtype=pl.String).to_arrow()  # large_string
    listed = (pa.ListArray if small else pa.LargeListArray).from_arrays(
        _arrow_ints(offsets),
        pa.DictionaryArray.from_arrays(_arrow_ints(chosen_code), names_text).cast(names_text.type),
    )
    separator = pl.Series([PATH_SEPARATOR], dtype=pl.String).to_arrow()[0]
    return pl.DataFrame(
        [
            pl.Series("path", pc.binary_join(listed, separator)),
            pl.Series(labels, dtype=pl.String)
            .cast(text)
            .gather(pl.Series(chosen_code[ends - 1]))
            .alias("last_touchpoint"),
        ]
    )


def _arrow_ints(values: _Ints) -> pa.Array:
    """A contiguous int32 or int64 NumPy array as an Arrow array, without a copy."""
    kind = pa.int32() if values.dtype == np.int32 else pa.int64()
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _capped(codes: _Ints, lengths: _Ints, *, max_length: int, ellipsis: int) -> tuple[_Ints, _Ints]:
    """Journeys' codes (in journey order, ``lengths`` each) longer than ``max_length`` cut to
    their start, the code ``ellipsis`` and their end, as ``journeys.clean_path``: the start one
    longer when the two do not split evenly."""
    head, tail = max_length // 2, (max_length - 1) // 2
    long = lengths > max_length
    if not long.any():
        return codes, lengths
    starts = np.cumsum(lengths) - lengths
    offset = np.arange(len(codes)) - np.repeat(starts, lengths)
    keep = (
        ~np.repeat(long, lengths) | (offset < head) | (offset >= np.repeat(lengths - tail, lengths))
    )
    kept_before = np.r_[0, np.cumsum(keep)][starts]  # kept codes of the journeys before
    at = kept_before[long] + head
    return np.insert(codes[keep], at, ellipsis), np.where(long, head + 1 + tail, lengths)


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
    dropped: _Ints = touchpoints.names.is_in(list(drop_touchpoints)).to_numpy()
    kept = journey.is_main & ~np.take(dropped, touchpoints.codes)  # per sorted row
    if not kept.any():  # only noise: no transition
        return _no_edges(nodes)
    kj = journey.of_main[kept[journey.is_main]]
    kc, kw = touchpoints.codes[kept].astype(np.uint32), micros[kept]
    del kept
    new = np.ones(len(kj), dtype=bool)
    if collapse_repeats:
        new[1:] = (kj[1:] != kj[:-1]) | (kc[1:] != kc[:-1])
    run_journey, run_code, first_at = kj[new], kc[new], kw[new]
    new[:-1] = new[1:]  # now: the last step of a run
    new[-1] = True
    last_at = kw[new]
    del kj, kc, kw, new
    same = np.r_[False, run_journey[1:] == run_journey[:-1]]
    source = np.where(same, np.r_[start, run_code[:-1]], start).astype(np.uint32)
    seconds = np.where(same, (first_at - np.r_[0, last_at[:-1]]) / _MICROS, np.nan)
    # an end edge after each journey's last run: to CONVERSION or DROP_OFF (open: none)
    last_run = np.flatnonzero(np.r_[run_journey[1:] != run_journey[:-1], True])
    ending = run_journey[last_run]
    ends = last_run[closed[ending]]
    at = ends + 1
    end_node = np.where(converted[run_journey[ends]], conversion, drop_off).astype(np.uint32)
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


def _rebuild_by_stages(events: pl.DataFrame, rules: Rules) -> Rebuilt:
    """The stage functions one after another (for no events: their empty frames), with the
    types :func:`rebuild` gives: text columns taken from a Categorical or Enum input's
    ``channel`` and ``touchpoint`` Categorical, the steps' columns as the input's."""
    text = {column: _text(events, column) for column in ("channel", "touchpoint")}
    coded = {
        name: kind
        for name, kind in events.schema.items()
        if isinstance(kind, pl.Categorical | pl.Enum)
    }
    built = _rebuild_by_stages_of_text(events.cast(dict.fromkeys(coded, pl.String)), rules)
    return Rebuilt(
        built.sessions.cast(
            {
                "channel": text["channel"],
                "first_touchpoint": text["touchpoint"],
                "last_touchpoint": text["touchpoint"],
            }
        ),
        built.steps.cast(coded),  # type: ignore[arg-type]
        built.journeys.cast(
            {"first_channel": text["channel"], "last_touchpoint": text["touchpoint"]}
        ),
        built.edges,
        built.customers,
    )


def _rebuild_by_stages_of_text(events: pl.DataFrame, rules: Rules) -> Rebuilt:
    in_sessions = sessions.assign_sessions(
        events,
        timeouts_minutes=dict(rules.timeouts_minutes),
        default_timeout_minutes=rules.default_timeout_minutes,
        max_session_minutes=rules.max_session_minutes,
    )
    steps = journeys.assign_journeys(
        in_sessions, timeout=rules.timeout, noise_touchpoints=rules.noise_touchpoints
    )
    aliased = steps.with_columns(journeys.alias_touchpoints(pl.col("touchpoint"), rules.aliases))
    summary = journeys.summarise_journeys(
        aliased,
        timeout=rules.timeout,
        as_of=rules.as_of,
        drop_touchpoints=rules.drop_touchpoints,
        collapse_repeats=rules.collapse_repeats,
        max_length=rules.max_length,
    )
    edges = _no_edges(pl.Enum([START, CONVERSION, DROP_OFF]))  # no events, no transitions
    customers = steps.get_column("customer_key").n_unique()  # none: no edges to number them
    return Rebuilt(sessions.summarise_sessions(in_sessions), steps, summary, edges, customers)
