from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from journey_analytics.config import load_settings
from journey_analytics.errors import ConfigError
from journey_analytics.journeys import (
    alias_touchpoints,
    assign_journeys,
    clean_path,
    summarise_journeys,
)
from journey_analytics.sessions import assign_sessions

from ._events import AS_OF, at, events, scenario

TIMEOUT = timedelta(days=30)


def test_journeys_end_at_conversion_or_timeout_and_fulfilment_joins_its_order() -> None:
    steps = assign_journeys(scenario(), timeout=TIMEOUT)
    by_journey: dict[str, list[tuple[int, str, bool]]] = {}
    for journey_id, position, event_id, fulfilment in steps.select(
        "journey_id", "position", "event_id", "is_fulfilment"
    ).iter_rows():
        by_journey.setdefault(journey_id, []).append((position, event_id, fulfilment))
    assert by_journey == {
        # the pickup two days after the order belongs to the order's journey
        "j:web:1": [
            (1, "web:1", False),
            (2, "web:2", False),
            (3, "web:3", False),
            (4, "pos:R1:pickup", True),
        ],
        "j:web:4": [
            (1, "web:4", False),
            (2, "web:5", False),
            (3, "web:6", False),
            (4, "pos:R2:sale", False),
        ],
        "j:web:7": [(1, "web:7", False), (2, "app:1", False)],
        "j:web:8": [(1, "web:8", False)],  # 41 days after app:1: a new journey
        "j:crm:1": [(1, "crm:1", False), (2, "web:20", False)],
        "j:crm:30": [(1, "crm:30", False), (2, "web:31", False)],
        "j:crm:40": [(1, "crm:40", False), (2, "pos:R9:sale", False)],
        "j:app:50": [(1, "app:50", False)],
    }


def test_summary_status_path_and_revenue() -> None:
    steps = assign_journeys(scenario(), timeout=TIMEOUT)
    summary = summarise_journeys(
        steps, timeout=TIMEOUT, as_of=AS_OF, drop_touchpoints=("sign_in",), collapse_repeats=True
    )
    rows = {row["journey_id"]: row for row in summary.to_dicts()}
    assert {k: (v["status"], v["path"], v["last_touchpoint"]) for k, v in rows.items()} == {
        "j:web:1": (
            "converted",
            "product_view > add_to_cart > order_placed > store_pickup",
            "store_pickup",
        ),
        # sign_in is dropped, then the two product views collapse into one
        "j:web:4": ("converted", "product_view > store_purchase", "store_purchase"),
        "j:web:7": ("dropped", "product_view > add_to_cart", "add_to_cart"),
        # last event 9 days before the end of the data: not (yet) a drop-off
        "j:web:8": ("open", "product_view", "product_view"),
        "j:crm:1": ("converted", "try_on > order_placed", "order_placed"),
        "j:crm:30": ("converted", "email_click > order_placed", "order_placed"),
        "j:crm:40": ("converted", "call > store_purchase", "store_purchase"),
        "j:app:50": ("converted", "order_placed", "order_placed"),
    }
    first = rows["j:web:1"]
    assert (first["started_at"], first["ended_at"], first["converted_at"]) == (
        at("2026-03-01 10:00"),
        at("2026-03-03 12:00"),
        at("2026-03-01 10:10"),
    )
    assert first["revenue"] == Decimal("50.00")
    assert first["seconds_to_convert"] == 600.0
    assert first["events"] == 4
    assert rows["j:web:7"]["revenue"] is None


def test_events_at_the_instant_of_a_conversion_belong_to_its_journey() -> None:
    # Edge case: the cart event has the same timestamp as the order and a larger id; the
    # conversion still closes the journey, after it.
    steps = assign_journeys(
        events(
            {
                "event_id": "web:1",
                "customer_key": "c",
                "occurred_at": "2026-03-01 10:00",
                "touchpoint": "product_view",
            },
            {
                "event_id": "web:2",
                "customer_key": "c",
                "occurred_at": "2026-03-01 10:05",
                "touchpoint": "order_placed",
                "is_conversion": True,
                "order_id": "O1",
            },
            {
                "event_id": "web:3",
                "customer_key": "c",
                "occurred_at": "2026-03-01 10:05",
                "touchpoint": "add_to_cart",
            },
        ),
        timeout=TIMEOUT,
    )
    assert steps.select("journey_id", "position", "event_id").rows() == [
        ("j:web:1", 1, "web:1"),
        ("j:web:1", 2, "web:3"),
        ("j:web:1", 3, "web:2"),
    ]


def test_a_pickup_by_someone_else_belongs_to_the_order_s_journey() -> None:
    # Customer c orders for click-and-collect; d (another customer) collects it.
    steps = assign_journeys(
        events(
            {
                "event_id": "web:1",
                "customer_key": "c",
                "occurred_at": "2026-03-01 10:00",
                "touchpoint": "order_placed",
                "is_conversion": True,
                "order_id": "O1",
            },
            {
                "event_id": "pos:R1:pickup",
                "customer_key": "d",
                "channel": "store",
                "occurred_at": "2026-03-02 10:00",
                "touchpoint": "store_pickup",
                "order_id": "O1",
            },
            {
                "event_id": "pos:R0:pickup",
                "customer_key": "d",
                "channel": "store",
                "occurred_at": "2026-02-02 10:00",
                "touchpoint": "store_pickup",
                "order_id": "O1",
            },
        ),
        timeout=TIMEOUT,
    )
    assert steps.select("journey_id", "event_id", "customer_key", "is_fulfilment").rows() == [
        # a "pickup" before the order was placed is not its fulfilment
        ("j:pos:R0:pickup", "pos:R0:pickup", "d", False),
        ("j:web:1", "web:1", "c", False),
        ("j:web:1", "pos:R1:pickup", "d", True),
    ]


def test_a_sign_in_to_write_the_review_stays_with_the_order() -> None:
    # Days after the order, the customer signs in and reviews it in one session: the sign-in
    # is noise and opens no journey. A sign-in in a session with other browsing would.
    rows = events(
        {
            "event_id": "web:1",
            "customer_key": "c",
            "occurred_at": "2026-03-01 10:00",
            "touchpoint": "order_placed",
            "is_conversion": True,
            "order_id": "O1",
        },
        {
            "event_id": "web:2",
            "customer_key": "c",
            "occurred_at": "2026-03-05 09:00",
            "touchpoint": "sign_in",
        },
        {
            "event_id": "web:3",
            "customer_key": "c",
            "occurred_at": "2026-03-05 09:01",
            "touchpoint": "review",
            "order_id": "O1",
        },
        {
            "event_id": "web:4",
            "customer_key": "c",
            "occurred_at": "2026-03-20 09:00",
            "touchpoint": "sign_in",
        },
        {
            "event_id": "web:5",
            "customer_key": "c",
            "occurred_at": "2026-03-20 09:01",
            "touchpoint": "product_view",
        },
    ).with_columns(session_id=pl.Series(["s:web:1", "s:web:2", "s:web:2", "s:web:4", "s:web:4"]))
    steps = assign_journeys(rows, timeout=TIMEOUT, noise_touchpoints=("sign_in",))
    assert steps.select("journey_id", "event_id", "is_fulfilment").rows() == [
        ("j:web:1", "web:1", False),
        ("j:web:1", "web:2", True),
        ("j:web:1", "web:3", True),
        ("j:web:4", "web:4", False),
        ("j:web:4", "web:5", False),
    ]


@pytest.mark.parametrize(
    ("max_length", "expected"),
    [
        # not longer than the cap: as it is
        (None, ["a", "b", "c", "d", "e", "f", "g"]),
        (7, ["a", "b", "c", "d", "e", "f", "g"]),
        # 5 items in all: two from the start, …, two from the end
        (5, ["a", "b", "…", "f", "g"]),
        # 4: the start gets the odd one
        (4, ["a", "b", "…", "g"]),
        (3, ["a", "…", "g"]),
    ],
)
def test_long_paths_show_their_start_and_end(max_length: int | None, expected: list[str]) -> None:
    frame = pl.DataFrame({"t": [["a", "b", "c", "d", "e", "f", "g"]]})
    cleaned = frame.select(
        clean_path(pl.col("t"), drop_touchpoints=(), collapse_repeats=True, max_length=max_length)
    )
    assert cleaned.item().to_list() == expected


def test_aliases_group_touchpoints_before_repeats_collapse() -> None:
    # the first rule that matches the whole name wins; a partial match is not a match
    aliases = {"search_.*": "search", "product_view_(shoes|bags)": "product_view", "call": "phone"}
    frame = pl.DataFrame(
        {
            "t": [
                ["search_shoes", "search_bags", "product_view_shoes", "product_view_hats", "recall"]
            ]
        }
    )
    renamed = frame.explode("t").select(alias_touchpoints(pl.col("t"), aliases))
    assert renamed.get_column("t").to_list() == [
        "search",
        "search",
        "product_view",
        "product_view_hats",
        "recall",
    ]
    path = renamed.select(pl.col("t").implode()).select(
        clean_path(pl.col("t"), drop_touchpoints=(), collapse_repeats=True)
    )
    assert path.item().to_list() == ["search", "product_view", "product_view_hats", "recall"]


def test_a_bad_alias_pattern_is_named_in_the_config_error(tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(
        'stores = "s.csv"\n[sources.web]\nkind = "segment"\npath = "*.jsonl"\nchannel = "web"\n'
        '[paths]\naliases = { "search_(" = "search" }\n'
    )
    with pytest.raises(ConfigError, match=r"paths: Value error, aliases: 'search_\(' is not a"):
        load_settings(config)


def test_a_pickup_at_the_instant_of_its_order_comes_after_it() -> None:
    # same timestamp, and collected by another customer: the order still opens the journey,
    # so the journey is the buyer's, starts online and reads order > pickup
    steps = assign_journeys(
        events(
            {"event_id": "web:1", "customer_key": "c", "occurred_at": "2026-03-01 10:00",
             "touchpoint": "order_placed", "is_conversion": True, "order_id": "O1"},
            {"event_id": "pos:R1:pickup", "customer_key": "d", "channel": "store",
             "occurred_at": "2026-03-01 10:00", "touchpoint": "store_pickup", "order_id": "O1"},
        ),
        timeout=TIMEOUT,
    )  # fmt: skip
    assert steps.select("journey_id", "position", "event_id", "is_fulfilment").rows() == [
        ("j:web:1", 1, "web:1", False),
        ("j:web:1", 2, "pos:R1:pickup", True),
    ]
    summary = summarise_journeys(
        steps, timeout=TIMEOUT, as_of=AS_OF, drop_touchpoints=(), collapse_repeats=True
    )
    assert summary.select("customer_key", "first_channel", "path").row(0) == (
        "c",
        "web",
        "order_placed > store_pickup",
    )


def test_a_sign_in_before_the_sale_is_not_a_fulfilment_step() -> None:
    # sign-in 10:00 and review 10:05 in one web session, the store sale at 10:03: only the
    # review (after the sale) is the order's fulfilment; the sign-in leads to the sale
    frame = assign_sessions(
        events(
            {"event_id": "web:1", "customer_key": "c", "occurred_at": "2026-03-01 10:00",
             "touchpoint": "sign_in"},
            {"event_id": "pos:R1:sale", "customer_key": "c", "channel": "store",
             "occurred_at": "2026-03-01 10:03", "touchpoint": "store_purchase",
             "is_conversion": True, "order_id": "R1"},
            {"event_id": "web:2", "customer_key": "c", "occurred_at": "2026-03-01 10:05",
             "touchpoint": "review", "order_id": "R1"},
        ),
        timeouts_minutes={"web": 30.0},
        default_timeout_minutes=30,
    )  # fmt: skip
    steps = assign_journeys(frame, timeout=TIMEOUT, noise_touchpoints=("sign_in",))
    assert steps.select("journey_id", "position", "event_id", "is_fulfilment").rows() == [
        ("j:web:1", 1, "web:1", False),
        ("j:web:1", 2, "pos:R1:sale", False),
        ("j:web:1", 3, "web:2", True),
    ]
