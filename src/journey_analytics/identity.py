"""Identity: records that carry identifiers to identity links and customers.

Input grain: one event or CRM contact record carrying one or more identifiers.
Output grain: ``links`` one row per distinct pair of identifiers seen together (with the
evidence and, if a guard dropped it, why); ``customers`` one row per identifier with the
``customer_key`` of its connected component. Deterministic: identifiers are nodes, a record
that carries two identifiers links them, connected components are customers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx
import polars as pl

# Priority order: a record's first identifier in this order anchors its links, and an event
# belongs to the customer of its first identifier.
IDENTIFIER_TYPES = (
    "user_id",
    "loyalty_id",
    "email_hash",
    "phone_hash",
    "payment_hash",
    "anonymous_id",
)


@dataclass(frozen=True)
class Stitched:
    """The identity graph and its customers."""

    links: pl.DataFrame
    customers: pl.DataFrame


def _long_identifiers(records: pl.DataFrame, *, blocked_values: Iterable[str]) -> pl.DataFrame:
    """One row per (record, identifier), blocked values removed, with the type's priority."""
    present = [name for name in IDENTIFIER_TYPES if name in records.columns]
    blocked = [value.lower() for value in blocked_values]
    return (
        records.with_row_index("record")
        .select("record", "source", "seen_at", *present)
        .unpivot(
            index=["record", "source", "seen_at"],
            on=present,
            variable_name="identifier_type",
            value_name="identifier_value",
        )
        .filter(
            pl.col("identifier_value").is_not_null()
            & ~pl.col("identifier_value").str.strip_chars().str.to_lowercase().is_in(blocked)
        )
        .with_columns(
            pl.col("identifier_type")
            .replace_strict(IDENTIFIER_TYPES, list(range(len(IDENTIFIER_TYPES))))
            .alias("priority")
        )
    )


def identity_links(long: pl.DataFrame, *, max_user_ids_per_device: int) -> pl.DataFrame:
    """Links each record's anchor (its highest-priority identifier) to its other identifiers.

    Guard: an ``anonymous_id`` linked to more than ``max_user_ids_per_device`` distinct user
    ids is a shared device (a store tablet, a family laptop); its links stay recorded but are
    inactive, with ``drop_reason = 'shared_device'``.
    """
    anchors = long.sort("record", "priority").group_by("record", maintain_order=True).first()
    pairs = (
        anchors.select(
            "record",
            pl.col("identifier_type").alias("left_type"),
            pl.col("identifier_value").alias("left_value"),
            pl.col("priority").alias("left_priority"),
        )
        .join(long, on="record")
        .filter(pl.col("priority") > pl.col("left_priority"))
        .rename({"identifier_type": "right_type", "identifier_value": "right_value"})
    )
    links = (
        pairs.sort("seen_at", "record")
        .group_by("left_type", "left_value", "right_type", "right_value", maintain_order=True)
        .agg(
            pl.col("source").first(),
            pl.col("seen_at").min().alias("first_seen_at"),
            pl.col("seen_at").max().alias("last_seen_at"),
            pl.len().cast(pl.Int64).alias("records"),
        )
    )
    shared_devices = (
        links.filter((pl.col("left_type") == "user_id") & (pl.col("right_type") == "anonymous_id"))
        .group_by("right_value")
        .agg(pl.col("left_value").n_unique().alias("user_ids"))
        .filter(pl.col("user_ids") > max_user_ids_per_device)
        .get_column("right_value")
    )
    is_shared = (pl.col("right_type") == "anonymous_id") & pl.col("right_value").is_in(
        shared_devices.implode()
    )
    return links.with_columns(
        (~is_shared).alias("is_active"),
        pl.when(is_shared).then(pl.lit("shared_device")).alias("drop_reason"),
    ).sort("left_type", "left_value", "right_type", "right_value")


def customer_key(members: Iterable[tuple[str, str]]) -> str:
    """A customer's key, from the customer's strongest identifier: the smallest value of the
    highest-priority type (a user id before a loyalty card before an e-mail ... before a
    cookie). It stays the same while that identifier does, so new cookies, devices or cards
    joining a customer do not change the key."""
    rank = {kind: position for position, kind in enumerate(IDENTIFIER_TYPES)}
    kind, value = min(members, key=lambda member: (rank.get(member[0], len(rank)), member[1]))
    return "c_" + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:16]


def customers_from_links(identifiers: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """Maps every identifier to the key of its connected component over the active links."""
    graph = nx.Graph()
    graph.add_nodes_from(identifiers.select("identifier_type", "identifier_value").iter_rows())
    active = links.filter("is_active")
    graph.add_edges_from(
        ((lt, lv), (rt, rv))
        for lt, lv, rt, rv in active.select(
            "left_type", "left_value", "right_type", "right_value"
        ).iter_rows()
    )
    rows: list[tuple[str, str, str]] = []
    for component in nx.connected_components(graph):
        key = customer_key(component)
        rows.extend((kind, value, key) for kind, value in component)
    return pl.DataFrame(
        rows,
        schema={
            "identifier_type": pl.String,
            "identifier_value": pl.String,
            "customer_key": pl.String,
        },
        orient="row",
    ).sort("identifier_type", "identifier_value")


def stitch(
    records: pl.DataFrame, *, blocked_values: Iterable[str], max_user_ids_per_device: int
) -> Stitched:
    """Builds the identity graph from records with ``source``, ``seen_at`` and any of the
    identifier columns, and finds its customers.

    Example:
        >>> records = pl.DataFrame({"source": ["web"], "seen_at": [None],
        ...     "user_id": ["u1"], "anonymous_id": ["a1"]})
        >>> stitch(records, blocked_values=[], max_user_ids_per_device=3).customers.height
        2
    """
    long = _long_identifiers(records, blocked_values=blocked_values)
    links = identity_links(long, max_user_ids_per_device=max_user_ids_per_device)
    identifiers = long.select("identifier_type", "identifier_value").unique()
    return Stitched(links, customers_from_links(identifiers, links))


def assign_customer_keys(events: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Sets each event's ``customer_key`` to that of its highest-priority known identifier,
    or else to that of the customer who placed the order the event names.

    Stitching is retroactive: anonymous events before a login get the customer's key because
    the key comes from the whole graph, not from the order events arrived in.
    """
    keys = []
    for kind in IDENTIFIER_TYPES:
        lookup = customers.filter(pl.col("identifier_type") == kind).select(
            pl.col("identifier_value").alias(kind), pl.col("customer_key").alias(f"_key_{kind}")
        )
        events = events.join(lookup, on=kind, how="left")
        keys.append(f"_key_{kind}")
    keyed = events.with_columns(pl.coalesce(keys).alias("customer_key")).drop(keys)
    # An event with no usable identifier that names an order (a pickup, a return) belongs to
    # the customer who placed the order; any other is a customer of its own, not lost.
    ordered_by = (
        keyed.filter(pl.col("is_conversion") & pl.col("customer_key").is_not_null())
        .select("order_id", pl.col("customer_key").alias("_orderer"))
        .drop_nulls("order_id")
        .unique("order_id", keep="first")
    )
    unknown = pl.lit("c_event:") + pl.col("event_id")
    return (
        keyed.join(ordered_by, on="order_id", how="left", maintain_order="left")
        .with_columns(pl.coalesce("customer_key", "_orderer", unknown).alias("customer_key"))
        .drop("_orderer")
    )
