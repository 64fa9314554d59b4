from __future__ import annotations

import itertools
from datetime import timedelta
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from journey_analytics.sessions import assign_sessions, summarise_sessions

from ._events import at, events

START = at("2026-03-01 08:00")

TIMEOUTS = {"web": 30.0, "store": 120.0, "phone": 0.0}


def _sessions_of(*rows: dict[str, object]) -> dict[str, str]:
    out = assign_sessions(events(*rows), timeouts_minutes=TIMEOUTS, default_timeout_minutes=30)
    return dict(out.select("event_id", "session_id").iter_rows())


def test_gap_equal_to_timeout_stays_in_session_longer_gap_splits() -> None:
    assert _sessions_of(
        {"event_id": "web:1", "customer_key": "c", "occurred_at": "2026-03-01 10:00"},
        {"event_id": "web:2", "customer_key": "c", "occurred_at": "2026-03-01 10:30"},  # = 30 min
        {"event_id": "web:3", "customer_key": "c", "occurred_at": "2026-03-01 11:00:00.000001"},
    ) == {"web:1": "s:web:1", "web:2": "s:web:1", "web:3": "s:web:3"}


def test_channels_are_separate_sessions_and_every_call_is_one() -> None:
    assert _sessions_of(
        {"event_id": "web:1", "customer_key": "c", "occurred_at": "2026-03-01 10:00"},
        {
            "event_id": "app:1",
            "customer_key": "c",
            "channel": "app",
            "occurred_at": "2026-03-01 10:05",
        },  # app uses the default timeout
        {"event_id": "web:2", "customer_key": "c", "occurred_at": "2026-03-01 10:10"},
        {
            "event_id": "crm:1",
            "customer_key": "c",
            "channel": "phone",
            "occurred_at": "2026-03-01 10:11",
        },
        {
            "event_id": "crm:2",
            "customer_key": "c",
            "channel": "phone",
            "occurred_at": "2026-03-01 10:12",
        },
        {"event_id": "web:9", "customer_key": "d", "occurred_at": "2026-03-01 10:01"},
    ) == {
        "web:1": "s:web:1",
        "web:2": "s:web:1",
        "app:1": "s:app:1",
        "crm:1": "s:crm:1",
        "crm:2": "s:crm:2",
        "web:9": "s:web:9",
    }


def test_summarise_sessions() -> None:
    assigned = assign_sessions(
        events(
            {
                "event_id": "web:2",
                "customer_key": "c",
                "occurred_at": "2026-03-01 10:20",
                "touchpoint": "add_to_cart",
            },
            {
                "event_id": "web:1",
                "customer_key": "c",
                "occurred_at": "2026-03-01 10:00",
                "touchpoint": "home_view",
            },
        ),
        timeouts_minutes=TIMEOUTS,
        default_timeout_minutes=30,
    )
    assert summarise_sessions(assigned).to_dicts() == [
        {
            "session_id": "s:web:1",
            "customer_key": "c",
            "channel": "web",
            "started_at": at("2026-03-01 10:00"),
            "ended_at": at("2026-03-01 10:20"),
            "events": 2,
            "first_touchpoint": "home_view",
            "last_touchpoint": "add_to_cart",
            "duration_seconds": 1200.0,
        }
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2"]),
            st.sampled_from(["web", "app", "phone"]),
            st.integers(0, 6 * 3600),
        ),
        min_size=1,
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_session_invariants(rows: list[tuple[str, str, int]], rng: Random) -> None:
    frame = events(
        *(
            {
                "event_id": f"web:{i}",
                "customer_key": customer,
                "channel": channel,
                "occurred_at": START + timedelta(seconds=offset),
            }
            for i, (customer, channel, offset) in enumerate(rows)
        )
    )
    out = assign_sessions(frame, timeouts_minutes=TIMEOUTS, default_timeout_minutes=30)
    # Every event in exactly one session.
    assert sorted(out.get_column("event_id").to_list()) == sorted(frame.get_column("event_id"))
    # Input order does not change the result.
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32))
    again = assign_sessions(shuffled, timeouts_minutes=TIMEOUTS, default_timeout_minutes=30)
    assert dict(again.select("event_id", "session_id").iter_rows()) == dict(
        out.select("event_id", "session_id").iter_rows()
    )
    # Gaps inside a session <= timeout; between consecutive sessions of a customer and
    # channel > timeout, except with a timeout of 0, where every event is its own session
    # (two calls at the same instant too).
    for (_, channel), group in out.group_by("customer_key", "channel"):
        timeout = timedelta(minutes=TIMEOUTS.get(str(channel), 30.0))
        ordered = group.sort("occurred_at", "event_id").select("occurred_at", "session_id").rows()
        for (before, session_before), (after, session_after) in itertools.pairwise(ordered):
            if not timeout:
                assert session_before != session_after
            elif session_before == session_after:
                assert after - before <= timeout
            else:
                assert after - before > timeout


def test_a_session_longer_than_the_maximum_is_cut_into_windows_from_its_first_event() -> None:
    # A browse every 20 minutes for 2 hours never passes the 30-minute timeout. With at most
    # 60 minutes a session: windows [10:00, 11:00) and [11:00, 12:00) and from 12:00; the
    # event exactly at 11:00 opens the second window; another customer is not affected.
    times = ["10:00", "10:20", "10:40", "11:00", "11:20", "11:40", "12:00"]
    rows = [
        {"event_id": f"web:{n}", "customer_key": "c", "occurred_at": f"2026-03-01 {t}"}
        for n, t in enumerate(times, start=1)
    ]
    rows.append({"event_id": "web:9", "customer_key": "d", "occurred_at": "2026-03-01 10:50"})
    out = assign_sessions(
        events(*rows),
        timeouts_minutes=TIMEOUTS,
        default_timeout_minutes=30,
        max_session_minutes=60,
    )
    assert dict(out.select("event_id", "session_id").iter_rows()) == {
        "web:1": "s:web:1",
        "web:2": "s:web:1",
        "web:3": "s:web:1",
        "web:4": "s:web:4",
        "web:5": "s:web:4",
        "web:6": "s:web:4",
        "web:7": "s:web:7",
        "web:9": "s:web:9",
    }
    # without a maximum it is one session
    assert set(_sessions_of(*rows[:-1]).values()) == {"s:web:1"}


def test_two_calls_at_the_same_instant_are_two_sessions() -> None:
    # a timeout of 0 means one event per session, even with no gap at all
    assert _sessions_of(
        {"event_id": "call:1", "customer_key": "c", "occurred_at": "2026-03-01 10:00",
         "channel": "phone"},
        {"event_id": "call:2", "customer_key": "c", "occurred_at": "2026-03-01 10:00",
         "channel": "phone"},
    ) == {"call:1": "s:call:1", "call:2": "s:call:2"}  # fmt: skip
