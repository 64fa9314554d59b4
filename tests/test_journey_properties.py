"""Property tests for the journey stage: events -> sessions -> journeys -> summaries -> edges.

The pipeline runs as ``jobs.build_journeys`` and ``jobs.build_marts`` call it (sessions with
the per-channel timeouts, journeys with ``sign_in`` as noise, summaries and transition edges
with ``sign_in`` dropped and repeats collapsed). The session invariants (gaps inside a session
<= timeout, between sessions > timeout) are tested in ``test_sessions.py`` and not repeated.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from journey_analytics.graphs import CONVERSION, DROP_OFF, START, transition_edges
from journey_analytics.jobs import end_of_data
from journey_analytics.journeys import assign_journeys, summarise_journeys
from journey_analytics.sessions import assign_sessions

from ._events import at, events

pytestmark = pytest.mark.slow

BEGIN = at("2026-03-01 08:00")
SESSION_TIMEOUTS = {"web": 30.0, "app": 30.0, "store": 120.0, "phone": 0.0}
# A journey timeout of one day instead of the configured 30 keeps the generated time spans
# short; the rules do not depend on the length.
TIMEOUT = timedelta(days=1)
NOISE = ("sign_in",)

# Gaps between a customer's consecutive generated events: equal timestamps (0), exactly the
# web/app session timeout and just over it, exactly the store session timeout, exactly the
# journey timeout and one second over it, and a long silence.
GAPS = (
    timedelta(0),
    timedelta(minutes=1),
    timedelta(minutes=30),
    timedelta(minutes=31),
    timedelta(hours=2),
    TIMEOUT,
    TIMEOUT + timedelta(seconds=1),
    timedelta(days=3),
)
BROWSE = {
    "web": ("product_view", "add_to_cart"),
    "app": ("product_view", "add_to_cart"),
    "store": ("try_on",),
    "phone": ("call",),
}
PICKUP_AFTER = (timedelta(0), timedelta(hours=2), timedelta(days=2))
KINDS = ("browse", "browse", "sign_in", "order", "store_purchase", "pickup", "review")


@st.composite
def event_frames(draw: st.DrawFn) -> pl.DataFrame:
    """A few customers' events on web, app, store and phone: browsing, noise sign-ins,
    online orders and store purchases with order ids, each click-and-collect order collected
    by the buyer in a store, and more store pickups of an earlier click-and-collect order (by
    the buyer or by another customer, who may even be earlier in time: then it is no
    fulfilment) and reviews naming an earlier order, half of them a minute after a sign-in.
    The clocks of the customers run independently, each from ``BEGIN`` by one of ``GAPS``
    an event (a pickup does not move its customer's clock)."""
    drawn = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["c1", "c2", "c3"]),
                st.sampled_from(KINDS),
                st.sampled_from(sorted(BROWSE)),
                st.sampled_from(GAPS),
                st.integers(0, 5),
            ),
            min_size=1,
            max_size=24,
        )
    )
    clock: dict[str, datetime] = {}
    collect_orders: list[str] = []
    orders: list[str] = []
    rows: list[dict[str, Any]] = []
    for number, (customer, kind, channel, gap, pick) in enumerate(drawn):
        clock[customer] = clock.get(customer, BEGIN) + gap
        row: dict[str, Any] = {"customer_key": customer, "occurred_at": clock[customer]}
        if kind == "sign_in":
            row |= {"channel": "app" if channel == "app" else "web", "touchpoint": "sign_in"}
        elif kind == "order":
            fulfilment = "click_and_collect" if pick % 2 == 0 else "delivery"
            order = f"O{number}"
            row |= {
                "channel": "app" if channel == "app" else "web",
                "touchpoint": "order_placed",
                "stage": "purchase",
                "is_conversion": True,
                "order_id": order,
                "fulfilment": fulfilment,
                "revenue": f"{10 + number}.50",
            }
            orders.append(order)
            if fulfilment == "click_and_collect":
                collect_orders.append(order)
                # collected by the buyer at the instant of the order, 2 hours or 2 days later
                rows.append(
                    {
                        "event_id": f"pos:{number}:pickup",
                        "customer_key": customer,
                        "occurred_at": clock[customer] + PICKUP_AFTER[pick // 2],
                        "channel": "store",
                        "touchpoint": "store_pickup",
                        "stage": "usage",
                        "order_id": order,
                    }
                )
        elif kind == "store_purchase":
            order = f"R{number}"
            row |= {
                "channel": "store",
                "touchpoint": "store_purchase",
                "stage": "purchase",
                "is_conversion": True,
                "order_id": order,
                "fulfilment": "in_store",
                "revenue": "20.00",
            }
            orders.append(order)
        elif kind == "pickup" and collect_orders:
            row |= {
                "channel": "store",
                "touchpoint": "store_pickup",
                "stage": "usage",
                "order_id": collect_orders[pick % len(collect_orders)],
            }
        elif kind == "review" and orders:
            if pick % 2 == 0:  # signs in a minute before, in the review's session
                sign_in = {"event_id": f"web:{number}:sign_in", "touchpoint": "sign_in"}
                rows.append(row | sign_in | {"channel": "web"})
                clock[customer] += timedelta(minutes=1)
            row |= {
                "channel": "web",
                "occurred_at": clock[customer],
                "touchpoint": "review",
                "stage": "usage",
                "order_id": orders[pick % len(orders)],
            }
        else:  # browsing, or a pickup / review before there is an order to name
            row |= {"channel": channel, "touchpoint": BROWSE[channel][pick % len(BROWSE[channel])]}
        row["event_id"] = f"{row['channel']}:{number}"
        rows.append(row)
    return events(*rows)


@dataclass(frozen=True)
class Built:
    sessions: pl.DataFrame
    steps: pl.DataFrame
    journeys: pl.DataFrame
    edges: pl.DataFrame


def _build(
    frame: pl.DataFrame,
    *,
    max_session_minutes: float | None = None,
    drop_touchpoints: tuple[str, ...] = NOISE,
    collapse_repeats: bool = True,
) -> Built:
    """The calls of ``jobs.build_journeys`` and ``jobs.build_marts`` (without aliases)."""
    in_sessions = assign_sessions(
        frame,
        timeouts_minutes=SESSION_TIMEOUTS,
        default_timeout_minutes=30,
        max_session_minutes=max_session_minutes,
    )
    steps = assign_journeys(in_sessions, timeout=TIMEOUT, noise_touchpoints=NOISE)
    summary = summarise_journeys(
        steps,
        timeout=TIMEOUT,
        as_of=end_of_data(frame),
        drop_touchpoints=drop_touchpoints,
        collapse_repeats=collapse_repeats,
    )
    edges = transition_edges(
        steps, summary, drop_touchpoints=drop_touchpoints, collapse_repeats=collapse_repeats
    )
    return Built(in_sessions, steps, summary, edges)


def _main_steps(steps: pl.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Each journey's non-fulfilment steps in position order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in steps.sort("journey_id", "position").iter_rows(named=True):
        if not row["is_fulfilment"]:
            found.setdefault(row["journey_id"], []).append(row)
    return found


@settings(max_examples=80, deadline=None)
@given(event_frames(), st.sampled_from([None, 90.0]))
def test_every_event_is_in_one_session_and_one_journey(
    frame: pl.DataFrame, max_session_minutes: float | None
) -> None:
    built = _build(frame, max_session_minutes=max_session_minutes)
    event_ids = sorted(frame.get_column("event_id").to_list())
    # Exactly one session each: every event comes out once, with a session id.
    assert sorted(built.sessions.get_column("event_id").to_list()) == event_ids
    assert built.sessions.get_column("session_id").null_count() == 0
    # A session is one customer in one channel (with or without a maximum length).
    per_session = built.sessions.group_by("session_id").agg(
        pl.col("customer_key").n_unique().alias("customers"),
        pl.col("channel").n_unique().alias("channels"),
    )
    assert per_session.filter((pl.col("customers") != 1) | (pl.col("channels") != 1)).is_empty()
    # "At most one journey" in the issue is in fact exactly one here: every event is a step of
    # one journey. Nothing is left out: noise opens journeys like any other event (only a
    # sign-in in a session of fulfilment steps joins that order's journey instead), and a
    # fulfilment step always finds its conversion's journey, as the conversion itself is a
    # step.
    assert sorted(built.steps.get_column("event_id").to_list()) == event_ids
    assert built.steps.get_column("journey_id").null_count() == 0
    # ... with the session it was given, and positions 1..n in each journey.
    assert dict(built.steps.select("event_id", "session_id").iter_rows()) == dict(
        built.sessions.select("event_id", "session_id").iter_rows()
    )
    positions = built.steps.group_by("journey_id").agg(
        (pl.col("position").sort() == pl.int_range(1, pl.len() + 1)).all().alias("ok")
    )
    assert positions.get_column("ok").all()
    # One summary row per journey, counting its steps.
    assert dict(built.journeys.select("journey_id", "events").iter_rows()) == dict(
        Counter(built.steps.get_column("journey_id").to_list())
    )


@settings(max_examples=50, deadline=None)
@given(event_frames(), st.data())
def test_shuffled_input_rows_change_nothing(frame: pl.DataFrame, data: st.DataObject) -> None:
    # A drawn permutation, and the reversed rows, which turn every tie of the input around.
    order = data.draw(st.permutations(range(frame.height)), label="row order")
    before = _build(frame)
    for rows in (frame[order], frame.reverse()):
        after = _build(rows)
        # Compared as sets of rows: sorted by every column, so no tie can hide a difference.
        for name in ("sessions", "steps", "journeys", "edges"):
            one, two = getattr(before, name), getattr(after, name)
            assert_frame_equal(one.sort(one.columns), two.sort(two.columns))


def _runs(touchpoints: list[str], *, drop: tuple[str, ...], collapse: bool) -> int:
    """Plain-Python count of the runs a journey's non-fulfilment touchpoints make in the
    graph: dropped touchpoints removed, then consecutive repeats folded when ``collapse``."""
    kept = [t for t in touchpoints if t not in drop]
    return len([key for key, _ in itertools.groupby(kept)]) if collapse else len(kept)


@settings(max_examples=50, deadline=None)
@given(event_frames())
def test_transition_counts_are_steps_minus_journeys_plus_start_and_end_edges(
    frame: pl.DataFrame,
) -> None:
    # transition_edges gives, per journey with at least one run (a non-fulfilment step that
    # is kept), one START edge, one edge between each two consecutive runs, and one end edge
    # (CONVERSION or DROP_OFF) unless the journey is open:
    #   edges = sum over journeys (runs - 1) + journeys with runs + closed journeys with runs
    #         = runs + closed journeys with runs.
    # Without dropping or collapsing, every non-fulfilment step is a run and every journey
    # has one (its id is its first non-fulfilment event), so
    #   edges = (non-fulfilment steps - journeys) + journeys [START] + converted + dropped.
    plain = _build(frame, drop_touchpoints=(), collapse_repeats=False)
    main_steps = plain.steps.filter(~pl.col("is_fulfilment")).height
    journeys = plain.journeys.height
    closed = plain.journeys.filter(pl.col("status").is_in(["converted", "dropped"])).height
    assert plain.edges.height == (main_steps - journeys) + journeys + closed
    counts = Counter(plain.edges.get_column("from_touchpoint").to_list())
    assert counts[START] == journeys
    ends = Counter(plain.edges.get_column("to_touchpoint").to_list())
    assert ends[CONVERSION] + ends[DROP_OFF] == closed

    # General form, as the pipeline runs (sign_in dropped, repeats collapsed): the runs come
    # from an independent count. A journey made only of sign-ins has no run and so no edge at
    # all, not even START or an end edge, although its summary status is still counted.
    built = _build(frame)
    status = dict(built.journeys.select("journey_id", "status").iter_rows())
    runs = {
        journey: _runs([s["touchpoint"] for s in rows], drop=NOISE, collapse=True)
        for journey, rows in _main_steps(built.steps).items()
    }
    with_runs = [journey for journey, n in runs.items() if n > 0]
    expected = sum(runs[j] - 1 for j in with_runs) + len(with_runs)
    expected += sum(status[j] in {"converted", "dropped"} for j in with_runs)
    assert built.edges.height == expected
    assert Counter(built.edges.get_column("from_touchpoint").to_list())[START] == len(with_runs)


@settings(max_examples=80, deadline=None)
@given(event_frames())
def test_journeys_end_at_a_conversion_or_after_a_gap_longer_than_the_timeout(
    frame: pl.DataFrame,
) -> None:
    built = _build(frame)
    main = _main_steps(built.steps)
    # Every journey has a non-fulfilment step (the event its id is made from).
    assert set(main) == set(built.journeys.get_column("journey_id"))
    for journey, rows in main.items():
        assert journey == "j:" + rows[0]["event_id"]
        assert len({row["customer_key"] for row in rows}) == 1
        # A conversion is the last non-fulfilment step of its journey (a step at the same
        # instant as the conversion sorts before it and belongs to the journey).
        assert not any(row["is_conversion"] for row in rows[:-1])
        # Consecutive non-fulfilment steps are at most the timeout apart (exactly the timeout
        # stays in the journey).
        for before, after in itertools.pairwise(rows):
            assert after["occurred_at"] - before["occurred_at"] <= TIMEOUT
    # Consecutive journeys of one customer: the first ended with a conversion, or the next
    # starts more than the timeout after it.
    by_customer: dict[str, list[list[dict[str, Any]]]] = {}
    for rows in main.values():
        by_customer.setdefault(rows[0]["customer_key"], []).append(rows)
    for journeys in by_customer.values():
        journeys.sort(key=lambda r: (r[0]["occurred_at"], r[0]["is_conversion"], r[0]["event_id"]))
        for first, second in itertools.pairwise(journeys):
            gap = second[0]["occurred_at"] - first[-1]["occurred_at"]
            assert first[-1]["is_conversion"] or gap > TIMEOUT
            # Only another conversion at the very instant of a conversion is left for the next
            # journey: other events of that instant came before it, in its journey.
            assert gap > timedelta(0) or second[0]["is_conversion"]
    # A fulfilment step carrying an order id is in the journey of that order's conversion
    # (the generator never reuses an order id).
    conversion_of = dict(
        built.steps.filter("is_conversion").select("order_id", "journey_id").iter_rows()
    )
    fulfilment = built.steps.filter(pl.col("is_fulfilment") & (pl.col("touchpoint") != "sign_in"))
    for row in fulfilment.iter_rows(named=True):
        assert row["journey_id"] == conversion_of[row["order_id"]]
