from __future__ import annotations

import networkx as nx
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_analytics.identity import assign_customer_keys, customer_key, stitch

from ._events import at, events


def _records(*rows: dict[str, str | None]) -> pl.DataFrame:
    columns = ("user_id", "loyalty_id", "email_hash", "phone_hash", "payment_hash", "anonymous_id")
    return pl.DataFrame(
        [
            {"source": "t", "seen_at": at("2026-01-01 00:00"), **{c: r.get(c) for c in columns}}
            for r in rows
        ],
        schema={
            "source": pl.String,
            "seen_at": pl.Datetime("us", "UTC"),
            **dict.fromkeys(columns, pl.String),
        },
    )


def _clusters(customers: pl.DataFrame) -> set[frozenset[str]]:
    grouped = customers.group_by("customer_key").agg(
        pl.concat_str("identifier_type", pl.lit(":"), "identifier_value").alias("ids")
    )
    return {frozenset(ids) for ids in grouped.get_column("ids").to_list()}


def test_chain_of_records_is_one_customer_and_blocked_values_link_nothing() -> None:
    stitched = stitch(
        _records(
            {"anonymous_id": "a1", "user_id": "u1"},  # login
            {"user_id": "u1", "email_hash": "e1"},  # order with e-mail
            {"email_hash": "e1", "loyalty_id": "L1"},  # CRM contact
            {"loyalty_id": "L1", "payment_hash": "p1"},  # receipt
            {"anonymous_id": "a2", "user_id": "unknown"},  # blocked user id
            {"anonymous_id": "a3", "user_id": "UNKNOWN"},  # blocked, any case
        ),
        blocked_values=["unknown"],
        max_user_ids_per_device=3,
    )
    assert _clusters(stitched.customers) == {
        frozenset(
            {"anonymous_id:a1", "user_id:u1", "email_hash:e1", "loyalty_id:L1", "payment_hash:p1"}
        ),
        frozenset({"anonymous_id:a2"}),
        frozenset({"anonymous_id:a3"}),
    }


def test_shared_device_does_not_merge_the_people_who_used_it() -> None:
    stitched = stitch(
        _records(
            *({"anonymous_id": "tablet", "user_id": f"u{i}"} for i in range(3)),
            {"anonymous_id": "laptop", "user_id": "u0"},
            {"anonymous_id": "laptop", "user_id": "u9"},
        ),
        blocked_values=[],
        max_user_ids_per_device=2,
    )
    # The tablet saw 3 user ids (> 2): its links are kept but inactive. The laptop saw 2.
    assert _clusters(stitched.customers) == {
        frozenset({"user_id:u0", "anonymous_id:laptop", "user_id:u9"}),
        frozenset({"user_id:u1"}),
        frozenset({"user_id:u2"}),
        frozenset({"anonymous_id:tablet"}),
    }
    dropped = stitched.links.filter(~pl.col("is_active"))
    assert dropped.select("left_value", "right_value", "drop_reason").to_dicts() == [
        {"left_value": f"u{i}", "right_value": "tablet", "drop_reason": "shared_device"}
        for i in range(3)
    ]


def test_anonymous_events_before_login_belong_to_the_customer() -> None:
    # Edge case: the anonymous page view comes a day before the login that links it.
    frame = events(
        {
            "event_id": "web:1",
            "occurred_at": "2026-03-01 10:00",
            "touchpoint": "product_view",
            "anonymous_id": "a1",
        },
        {
            "event_id": "web:2",
            "occurred_at": "2026-03-02 10:00",
            "touchpoint": "sign_in",
            "anonymous_id": "a1",
            "user_id": "u1",
        },
        {
            "event_id": "pos:R1:sale",
            "occurred_at": "2026-03-03 10:00",
            "touchpoint": "store_purchase",
            "loyalty_id": "L1",
        },
    )
    records = pl.concat(
        [
            frame.select(
                "source",
                pl.col("occurred_at").alias("seen_at"),
                "anonymous_id",
                "user_id",
                "loyalty_id",
            ),
            pl.DataFrame(
                {
                    "source": ["crm"],
                    "seen_at": [at("2026-01-01 00:00")],
                    "user_id": ["u1"],
                    "loyalty_id": ["L1"],
                }
            ),
        ],
        how="diagonal_relaxed",
    )
    stitched = stitch(records, blocked_values=[], max_user_ids_per_device=3)
    keyed = assign_customer_keys(frame, stitched.customers)
    key = customer_key([("anonymous_id", "a1"), ("user_id", "u1"), ("loyalty_id", "L1")])
    assert keyed.select("event_id", "customer_key").to_dicts() == [
        {"event_id": "web:1", "customer_key": key},
        {"event_id": "web:2", "customer_key": key},
        {"event_id": "pos:R1:sale", "customer_key": key},
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15)), max_size=40))
def test_components_equal_networkx_connected_components(pairs: list[tuple[int, int]]) -> None:
    # Reference check: user id i -- e-mail j links, no guard applies.
    rows = [{"user_id": f"u{i}", "email_hash": f"e{j}"} for i, j in pairs]
    if not rows:
        return
    stitched = stitch(_records(*rows), blocked_values=[], max_user_ids_per_device=99)
    graph = nx.Graph()
    graph.add_edges_from((f"user_id:u{i}", f"email_hash:e{j}") for i, j in pairs)
    assert _clusters(stitched.customers) == {
        frozenset(component) for component in nx.connected_components(graph)
    }
