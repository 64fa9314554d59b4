"""Identity stitching: exact clusters for the cases that go wrong elsewhere, the guards, the
merge ledger, and incremental stitching checked against stitching from scratch."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import networkx as nx
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from journey_analytics import jobs
from journey_analytics.config import IdentitySettings
from journey_analytics.identity import (
    IDENTIFIER_TYPES,
    Guards,
    Stitched,
    assign_customer_keys,
    connected_components,
    customer_key,
    evidence,
    identity_changes,
    resolve,
    restitch,
    stitch,
    update,
)
from journey_analytics.warehouse import Warehouse

from ._events import at, events

COLUMNS = IDENTIFIER_TYPES
NO_GUARDS = Guards(shared_limits={}, customer_limits={})
# The shipped defaults: every type but user_id shared at 2 stronger partners, one user id
DEFAULT = Guards(
    shared_limits=IdentitySettings().shared_limits,
    customer_limits=IdentitySettings().customer_limits,
)


def _records(*rows: dict[str, str | None]) -> pl.DataFrame:
    """Records seen on 2026-01-01 unless a row says ``seen`` (a day of January)."""
    return pl.DataFrame(
        [
            {
                "source": "t",
                "seen_at": at(f"2026-01-{int(r.get('seen') or 1):02d} 00:00"),
                **{c: r.get(c) for c in COLUMNS},
            }
            for r in rows
        ],
        schema={
            "source": pl.String,
            "seen_at": pl.Datetime("us", "UTC"),
            **dict.fromkeys(COLUMNS, pl.String),
        },
    )


def _clusters(customers: pl.DataFrame) -> set[frozenset[str]]:
    grouped = customers.group_by("customer_key").agg(
        pl.concat_str("identifier_type", pl.lit(":"), "identifier_value").alias("ids")
    )
    return {frozenset(ids) for ids in grouped.get_column("ids").to_list()}


def _dropped(stitched: Stitched) -> list[tuple[str, str, str]]:
    return (
        stitched.links.filter(~pl.col("is_active"))
        .select("left_value", "right_value", "drop_reason")
        .rows()
    )


def test_chain_of_records_is_one_customer_and_blocked_values_link_nothing() -> None:
    stitched = stitch(
        _records(
            {"anonymous_id": "a1", "user_id": "u1"},  # login
            {"user_id": "u1", "email_hash": "e1"},  # order with e-mail
            {"email_hash": "e1", "loyalty_id": "L1"},  # CRM contact
            {"loyalty_id": "L1", "payment_hash": "p1"},  # receipt
            {"anonymous_id": "a2", "user_id": "unknown"},  # blocked user id
            {"anonymous_id": "a3", "user_id": " UNKNOWN"},  # blocked, any case and spacing
        ),
        blocked_values=["unknown"],
        guards=DEFAULT,
    )
    assert _clusters(stitched.customers) == {
        frozenset(
            {"anonymous_id:a1", "user_id:u1", "email_hash:e1", "loyalty_id:L1", "payment_hash:p1"}
        ),
        frozenset({"anonymous_id:a2"}),
        frozenset({"anonymous_id:a3"}),
    }
    assert _dropped(stitched) == []


def test_diamond_is_one_customer() -> None:
    # The account knows the e-mail and the phone; the CRM contact knows both with a card.
    stitched = stitch(
        _records(
            {"user_id": "u1", "email_hash": "e1"},
            {"user_id": "u1", "phone_hash": "ph1"},
            {"loyalty_id": "L1", "email_hash": "e1", "phone_hash": "ph1"},
        ),
        blocked_values=[],
        guards=DEFAULT,
    )
    assert _clusters(stitched.customers) == {
        frozenset({"user_id:u1", "email_hash:e1", "phone_hash:ph1", "loyalty_id:L1"})
    }
    # Links go from each record's strongest identifier to the others: 4 links, none dropped.
    assert stitched.links.select("left_value", "right_value").rows() == [
        ("L1", "e1"),
        ("L1", "ph1"),
        ("u1", "e1"),
        ("u1", "ph1"),
    ]


def test_shared_store_tablet_does_not_merge_the_people_who_used_it() -> None:
    guards = Guards(shared_limits={"anonymous_id": 2}, customer_limits={"user_id": 1})
    stitched = stitch(
        _records(
            *({"anonymous_id": "tablet", "user_id": f"u{i}"} for i in range(3)),
            {"anonymous_id": "laptop", "user_id": "u0"},
            {"anonymous_id": "laptop", "user_id": "u9"},
        ),
        blocked_values=[],
        guards=guards,
    )
    # The tablet saw 3 user ids (> 2): its links are kept but dropped. The laptop saw 2, which
    # this limit allows, and customer_limits.user_id = 1 refuses the second: the link seen
    # first wins the tie on priority and time, then the smaller value (u0).
    assert _clusters(stitched.customers) == {
        frozenset({"user_id:u0", "anonymous_id:laptop"}),
        frozenset({"user_id:u1"}),
        frozenset({"user_id:u2"}),
        frozenset({"user_id:u9"}),
        frozenset({"anonymous_id:tablet"}),
    }
    assert _dropped(stitched) == [
        ("u0", "tablet", "shared_anonymous_id"),
        ("u1", "tablet", "shared_anonymous_id"),
        ("u2", "tablet", "shared_anonymous_id"),
        ("u9", "laptop", "limit_user_id"),
    ]


def test_a_phone_on_two_loyalty_cards_is_shared_and_a_test_card_is_blocked() -> None:
    stitched = stitch(
        _records(
            {"loyalty_id": "L1", "phone_hash": "home"},  # a family's landline on two cards
            {"loyalty_id": "L2", "phone_hash": "home"},
            {"loyalty_id": "L1", "payment_hash": "4111111111111111"},  # training-mode receipt
            {"loyalty_id": "L2", "payment_hash": "4111111111111111"},
        ),
        blocked_values=IdentitySettings().blocked_values,
        guards=DEFAULT,
    )
    assert _clusters(stitched.customers) == {
        frozenset({"loyalty_id:L1"}),
        frozenset({"loyalty_id:L2"}),
        frozenset({"phone_hash:home"}),
    }
    assert _dropped(stitched) == [
        ("L1", "home", "shared_phone_hash"),
        ("L2", "home", "shared_phone_hash"),
    ]


def test_a_user_id_with_two_emails() -> None:
    records = _records(
        {"user_id": "u1", "email_hash": "old", "seen": "1"},
        {"user_id": "u1", "email_hash": "new", "seen": "2"},  # the customer changed address
    )
    # By default a customer may have several e-mail addresses: one customer.
    default = stitch(records, blocked_values=[], guards=DEFAULT)
    assert _clusters(default.customers) == {
        frozenset({"user_id:u1", "email_hash:old", "email_hash:new"})
    }
    # With one e-mail per customer, the link seen later is refused.
    strict = Guards(shared_limits={}, customer_limits={"user_id": 1, "email_hash": 1})
    one = stitch(records, blocked_values=[], guards=strict)
    assert _clusters(one.customers) == {
        frozenset({"user_id:u1", "email_hash:old"}),
        frozenset({"email_hash:new"}),
    }
    assert _dropped(one) == [("u1", "new", "limit_email_hash")]


def test_two_user_ids_with_one_email_stay_two_customers() -> None:
    stitched = stitch(
        _records({"user_id": "u1", "email_hash": "e"}, {"user_id": "u2", "email_hash": "e"}),
        blocked_values=[],
        guards=DEFAULT,
    )
    assert _clusters(stitched.customers) == {
        frozenset({"user_id:u1"}),
        frozenset({"user_id:u2"}),
        frozenset({"email_hash:e"}),
    }
    assert _dropped(stitched) == [
        ("u1", "e", "shared_email_hash"),
        ("u2", "e", "shared_email_hash"),
    ]


def test_the_customer_limit_drops_the_weaker_link_not_the_later_one() -> None:
    # u1 and u2 would become one customer through the CRM contact L1, which knows u1's e-mail
    # and u2's phone. The phone link to u2 was seen first (day 1), but an e-mail outranks a
    # phone: the e-mail links are admitted first and the phone link L1 -- ph1 is refused.
    stitched = stitch(
        _records(
            {"user_id": "u2", "phone_hash": "ph1", "seen": "1"},
            {"loyalty_id": "L1", "email_hash": "e1", "phone_hash": "ph1", "seen": "2"},
            {"user_id": "u1", "email_hash": "e1", "seen": "3"},
        ),
        blocked_values=[],
        guards=DEFAULT,
    )
    assert _clusters(stitched.customers) == {
        frozenset({"user_id:u1", "email_hash:e1", "loyalty_id:L1"}),
        frozenset({"user_id:u2", "phone_hash:ph1"}),
    }
    assert _dropped(stitched) == [("L1", "ph1", "limit_user_id")]


def test_a_late_link_merges_two_known_customers_keeps_the_key_and_is_in_the_ledger() -> None:
    day_one = _records(
        {"user_id": "u1", "anonymous_id": "a1"},
        {"loyalty_id": "L1", "email_hash": "e1"},
    )
    first = stitch(day_one, blocked_values=[], guards=DEFAULT)
    web = customer_key([("user_id", "u1")])
    store = customer_key([("loyalty_id", "L1")])
    assert set(first.customers.get_column("customer_key")) == {web, store}
    # The next batch brings an order placed with the account and the card's e-mail.
    both = pl.concat([day_one, _records({"user_id": "u1", "email_hash": "e1", "seen": "9"})])
    second, decided = update(first, evidence(both, blocked_values=[]), DEFAULT)
    assert decided == 4
    assert _clusters(second.customers) == {
        frozenset({"user_id:u1", "anonymous_id:a1", "loyalty_id:L1", "email_hash:e1"})
    }
    assert set(second.customers.get_column("customer_key")) == {web}  # u1 is the strongest
    changed = identity_changes(
        first.customers, second.customers, changed_at=datetime(2026, 1, 9, tzinfo=UTC)
    )
    assert changed.select(
        "change", "customer_key_before", "customer_key_after", "identifiers"
    ).rows() == sorted([("merge", web, web, 2), ("merge", store, web, 2)], key=lambda row: row[1])


def test_a_split_is_in_the_ledger() -> None:
    together = _records(
        {"user_id": "u1", "anonymous_id": "a1"}, {"user_id": "u1", "loyalty_id": "L1"}
    )
    first = stitch(together, blocked_values=[], guards=DEFAULT)
    # A second user id on the cookie makes it shared: the cookie leaves the customer.
    later = pl.concat([together, _records({"user_id": "u2", "anonymous_id": "a1"})])
    second, _ = update(first, evidence(later, blocked_values=[]), DEFAULT)
    key = customer_key([("user_id", "u1")])
    changed = identity_changes(
        first.customers, second.customers, changed_at=datetime(2026, 1, 9, tzinfo=UTC)
    )
    assert changed.select(
        "change", "customer_key_before", "customer_key_after", "identifiers"
    ).rows() == sorted(
        [
            ("split", key, key, 2),
            ("split", key, customer_key([("anonymous_id", "a1")]), 1),
        ],
        key=lambda row: row[2],
    )


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
    stitched = stitch(records, blocked_values=[], guards=DEFAULT)
    keyed = assign_customer_keys(frame, stitched.customers)
    key = customer_key([("anonymous_id", "a1"), ("user_id", "u1"), ("loyalty_id", "L1")])
    assert keyed.select("event_id", "customer_key").to_dicts() == [
        {"event_id": "web:1", "customer_key": key},
        {"event_id": "web:2", "customer_key": key},
        {"event_id": "pos:R1:sale", "customer_key": key},
    ]


_ids = st.sampled_from([f"{n}" for n in range(6)])
_record = st.fixed_dictionaries(
    {},
    optional={
        **{column: _ids for column in COLUMNS},
        "seen": st.sampled_from(["1", "2", "3"]),
    },
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(COLUMNS), _ids, st.sampled_from(COLUMNS), _ids), max_size=40)
)
def test_components_equal_networkx_connected_components(
    pairs: list[tuple[str, str, str, str]],
) -> None:
    # Reference check: random records of two identifiers of any types, no guard applies.
    rows = [{a: x, b: y} if a != b else {a: x} for a, x, b, y in pairs]
    if not rows:
        return
    stitched = stitch(_records(*rows), blocked_values=[], guards=NO_GUARDS)
    graph = nx.Graph()
    for row in rows:
        nodes = [f"{kind}:{value}" for kind, value in row.items()]
        graph.add_nodes_from(nodes)
        graph.add_edges_from(itertools.pairwise(nodes))
    assert _clusters(stitched.customers) == {
        frozenset(component) for component in nx.connected_components(graph)
    }


def _batches_equal_scratch(batches: list[pl.DataFrame], guards: Guards) -> None:
    # Two ways on: update on all records seen, and restitch on each batch's records alone
    # (what a day's core build does).
    seen = batches[0]
    running = resolve(evidence(seen, blocked_values=[]), guards)
    day_by_day = running
    for batch in batches[1:]:
        seen = pl.concat([seen, batch])
        found = evidence(seen, blocked_values=[])
        running, decided = update(running, found, guards)
        restitched = restitch(day_by_day, evidence(batch, blocked_values=[]), guards)
        day_by_day = restitched.applied(day_by_day)
        scratch = resolve(found, guards)
        assert_frame_equal(running.customers, scratch.customers)
        assert_frame_equal(running.links, scratch.links)
        assert_frame_equal(day_by_day.customers, scratch.customers)
        assert_frame_equal(day_by_day.links, scratch.links)
        assert restitched.customers.height == decided


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(_record, max_size=8), min_size=2, max_size=4),
    st.sampled_from(["default", "strict"]),
)
def test_incremental_stitching_equals_stitching_from_scratch(
    batches: list[list[dict[str, str]]], which: str
) -> None:
    # Guards on (the shipped defaults, or one value of every type per customer), identifiers
    # from small pools so that shared identifiers and refused links are common, times that let
    # a late record be seen before earlier ones.
    strict = Guards(
        shared_limits=dict.fromkeys(COLUMNS[1:], 2), customer_limits=dict.fromkeys(COLUMNS, 1)
    )
    guards = DEFAULT if which == "default" else strict
    _batches_equal_scratch([_records(*batch) for batch in batches], guards)


@settings(max_examples=60, deadline=None)
@given(st.lists(_record, min_size=1, max_size=12), st.data())
def test_incremental_stitching_after_records_are_removed(
    records: list[dict[str, str]], data: st.DataObject
) -> None:
    # An erasure removes records: the groups they were in are decided again.
    kept = data.draw(st.lists(st.sampled_from(range(len(records))), unique=True))
    before = _records(*records)
    after = _records(*(records[i] for i in sorted(kept)))
    running = resolve(evidence(before, blocked_values=[]), DEFAULT)
    found = evidence(after, blocked_values=[])
    running, _ = update(running, found, DEFAULT)
    scratch = resolve(found, DEFAULT)
    assert_frame_equal(running.customers, scratch.customers)
    assert_frame_equal(running.links, scratch.links)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 60),
    st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), max_size=80),
)
def test_connected_components_equal_networkx(size: int, pairs: list[tuple[int, int]]) -> None:
    # Reference check of the vectorised components on plain integer graphs, isolated nodes
    # and self-loops included.
    edges = [(a, b) for a, b in pairs if a < size and b < size]
    found = connected_components(
        pl.DataFrame({"node": range(size)}),
        pl.DataFrame(edges, schema={"a": pl.Int64, "b": pl.Int64}, orient="row"),
    )
    graph = nx.Graph()
    graph.add_nodes_from(range(size))
    graph.add_edges_from(edges)
    grouped = found.group_by("component").agg("node").get_column("node").to_list()
    assert {frozenset(nodes) for nodes in grouped} == {
        frozenset(component) for component in nx.connected_components(graph)
    }
    # each component is named by its smallest node
    assert (
        found.group_by("component")
        .agg(pl.col("node").min())
        .filter(pl.col("component") != pl.col("node"))
        .is_empty()
    )


def test_connected_components_of_a_long_chain_in_any_order() -> None:
    # A chain of 2,000 nodes numbered against its order: label propagation alone would take
    # 2,000 rounds; pointer jumping takes a few.
    order = [(i * 7919) % 2000 for i in range(2000)]
    edges = pl.DataFrame({"a": order[:-1], "b": order[1:]})
    found = connected_components(pl.DataFrame({"node": range(2000)}), edges)
    assert found.get_column("component").unique().to_list() == [0]


def test_evidence_anchors_each_record_on_its_strongest_usable_identifier() -> None:
    day = {d: at(f"2026-01-0{d} 00:00") for d in (1, 2)}
    records = pl.DataFrame(
        [
            ("a", day[2], "u1", None, None, "x1"),
            # the user id is blocked: the e-mail anchors the record
            ("b", day[1], " Unknown ", None, "e1", "x1"),
            ("c", day[1], "u1", "l1", None, "x1"),
            # no time: seen after every timed record, and its source never comes first
            ("d", None, None, None, "e1", "x1"),
            # the same time as "c": the earlier record gives the source
            ("e", day[1], "u1", "l1", None, None),
        ],
        schema={
            "source": pl.String,
            "seen_at": pl.Datetime("us", "UTC"),
            "user_id": pl.String,
            "loyalty_id": pl.String,
            "email_hash": pl.String,
            "anonymous_id": pl.String,
        },
        orient="row",
    )
    found = evidence(records, blocked_values=["unknown"])
    assert found.links.rows() == [
        ("email_hash", "e1", "anonymous_id", "x1", "b", day[1], day[1], 2),
        ("user_id", "u1", "anonymous_id", "x1", "c", day[1], day[2], 2),
        ("user_id", "u1", "loyalty_id", "l1", "c", day[1], day[1], 2),
    ]
    assert found.identifiers.rows() == [
        ("anonymous_id", "x1"),
        ("email_hash", "e1"),
        ("loyalty_id", "l1"),
        ("user_id", "u1"),
    ]


def _reference_links(rows: list[dict[str, str]], blocked: list[str]) -> list[tuple[object, ...]]:
    """Links as the module docstring describes them, one record at a time."""
    seen: dict[tuple[str, str, str, str], list[tuple[bool, datetime | None, int, str]]] = {}
    for number, row in enumerate(rows):
        day = at(f"2026-01-0{row['seen']} 00:00") if row.get("seen") else None
        usable = [
            (kind, value)
            for kind in IDENTIFIER_TYPES
            if (value := row.get(kind)) is not None and value.strip().lower() not in blocked
        ]
        for other in usable[1:]:
            seen.setdefault((*usable[0], *other), []).append((day is None, day, number, "t"))
    links = []
    for pair, sightings in sorted(seen.items()):
        times = [day for _, day, _, _ in sightings if day is not None]
        first = min(sightings, key=lambda s: (s[0], s[1] or at("2026-01-01 00:00"), s[2]))
        links.append(
            (*pair, first[3], min(times, default=None), max(times, default=None), len(sightings))
        )
    return links


@settings(max_examples=100, deadline=None)
@given(st.lists(_record | st.fixed_dictionaries({}, optional={"user_id": st.just("0")})))
def test_evidence_equals_a_record_by_record_reference(rows: list[dict[str, str]]) -> None:
    # Reference check: blocked values ("0"), records without a time, identifiers of any types.
    frame = pl.DataFrame(
        [
            {
                "source": "t",
                "seen_at": at(f"2026-01-0{r['seen']} 00:00") if r.get("seen") else None,
                **{c: r.get(c) for c in COLUMNS},
            }
            for r in rows
        ],
        schema={
            "source": pl.String,
            "seen_at": pl.Datetime("us", "UTC"),
            **dict.fromkeys(COLUMNS, pl.String),
        },
    )
    assert evidence(frame, blocked_values=["0"]).links.rows() == _reference_links(rows, ["0"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(_record, min_size=1, max_size=10),
    st.lists(_record, min_size=1, max_size=6),
    st.sampled_from(["default", "strict"]),
)
def test_the_rows_read_around_new_records_are_all_a_restitch_needs(
    first: list[dict[str, str]], second: list[dict[str, str]], which: str
) -> None:
    # A day's core build reads from the warehouse only the stored identity rows around the
    # new records (jobs._identity_around): the identifiers, their partners and their groups,
    # the links that touch them and the links that decide whether their ends are shared.
    # Deciding on those rows alone decides the same rows as on the whole graph, and so
    # gives what stitching everything again gives.
    strict = Guards(
        shared_limits=dict.fromkeys(COLUMNS[1:], 1), customer_limits=dict.fromkeys(COLUMNS, 1)
    )
    guards = DEFAULT if which == "default" else strict
    before = resolve(evidence(_records(*first), blocked_values=[]), guards)
    later = evidence(_records(*second), blocked_values=[])
    with Warehouse.open(":memory:") as wh:
        wh.ensure_tables()
        wh.append("core.identity_links", before.links)
        wh.append("core.customers", before.customers)
        around = jobs._identity_around(wh, later)
    near, whole = restitch(around, later, guards), restitch(before, later, guards)
    for frame, expected in zip(
        (near.region, near.customers, near.links),
        (whole.region, whole.customers, whole.links),
        strict=True,
    ):
        assert_frame_equal(frame.sort(pl.all()), expected.sort(pl.all()))
    after = near.applied(before)
    scratch = resolve(evidence(_records(*first, *second), blocked_values=[]), guards)
    assert_frame_equal(after.customers, scratch.customers)
    assert_frame_equal(after.links, scratch.links)
