"""Identity: records that carry identifiers to identity links and customers.

Input grain: one event or CRM contact record carrying one or more identifiers.
Output grain: ``links`` one row per distinct pair of identifiers seen together (with the
evidence and, if a guard dropped it, why); ``customers`` one row per identifier with the
``customer_key`` of its customer and the ``group_key`` of the identifiers its links could
reach; ``identity_changes`` one row per (customer before, customer after) pair that a run
merged, split or renamed.

Identifiers are nodes; a record that carries two identifiers links them (its strongest one,
the *anchor*, to each of the others). Customers are the connected components over the links
that the guards let through:

1. **Blocked values** (``unknown``, ``0``, test cards, ...) are no identifier at all.
2. **Shared identifiers**: an identifier linked with more than ``shared_limits[its type]``
   distinct identifiers of one stronger type (a store tablet or a family laptop signed in to by
   two user ids, a phone on two loyalty cards) links no one: all its links are dropped with
   ``drop_reason = 'shared_<type>'``.
3. **Customer limits**: a customer holds at most ``customer_limits[type]`` values of a type (one
   user id ever, by default). Links are admitted strongest first (by the priority of their
   weaker identifier, then of their stronger one, then first seen, then by value); a link
   that would give a customer one value too many is dropped with ``'limit_<type>'``.

Everything a guard decides depends only on the links of one *group* (the identifiers that
the links left after rule 2 connect), so a new batch re-decides only the groups it touches
(:func:`update` from a whole found graph, :func:`restitch` from a new batch's evidence alone),
with the same result as deciding everything again (:func:`resolve`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import polars as pl
from networkx.utils import UnionFind

# Priority order, strongest first: a record's strongest identifier anchors its links, an
# event belongs to the customer of its strongest identifier, and a customer's key comes from
# its strongest identifier.
IDENTIFIER_TYPES = (
    "user_id",
    "loyalty_id",
    "email_hash",
    "phone_hash",
    "payment_hash",
    "anonymous_id",
)
_RANK = {kind: rank for rank, kind in enumerate(IDENTIFIER_TYPES)}
_PAIR = ["left_type", "left_value", "right_type", "right_value"]
_PAIR_SCHEMA: dict[str, pl.DataType] = {"source": pl.String(), **dict.fromkeys(_PAIR, pl.String())}
_UTC = pl.Datetime("us", "UTC")

LINK_SCHEMA: dict[str, pl.DataType] = {
    "left_type": pl.String(),
    "left_value": pl.String(),
    "right_type": pl.String(),
    "right_value": pl.String(),
    "source": pl.String(),
    "first_seen_at": _UTC,
    "last_seen_at": _UTC,
    "records": pl.Int64(),
}
GUARDED_LINK_SCHEMA: dict[str, pl.DataType] = {
    **LINK_SCHEMA,
    "is_active": pl.Boolean(),
    "drop_reason": pl.String(),
}
IDENTIFIER_SCHEMA: dict[str, pl.DataType] = {
    "identifier_type": pl.String(),
    "identifier_value": pl.String(),
}
CUSTOMER_SCHEMA: dict[str, pl.DataType] = {
    **IDENTIFIER_SCHEMA,
    "customer_key": pl.String(),
    "group_key": pl.String(),
}
CHANGE_SCHEMA: dict[str, pl.DataType] = {
    "changed_at": _UTC,
    "change": pl.String(),
    "customer_key_before": pl.String(),
    "customer_key_after": pl.String(),
    "identifiers": pl.Int64(),
}

Node: TypeAlias = tuple[str, str]


@dataclass(frozen=True)
class Evidence:
    """What the records say: every identifier, and every pair seen together (unguarded)."""

    identifiers: pl.DataFrame
    links: pl.DataFrame


@dataclass(frozen=True)
class Stitched:
    """The identity graph with the guards' decisions, and its customers."""

    links: pl.DataFrame
    customers: pl.DataFrame


@dataclass(frozen=True)
class Guards:
    """The guards against over-stitching (see the module docstring).

    Example:
        >>> Guards(shared_limits={"anonymous_id": 1}, customer_limits={"user_id": 1})
        Guards(shared_limits={'anonymous_id': 1}, customer_limits={'user_id': 1})
    """

    shared_limits: Mapping[str, int]
    customer_limits: Mapping[str, int]


# ---------------------------------------------------------------- evidence


def _usable_identifiers(records: pl.DataFrame, *, blocked_values: Iterable[str]) -> pl.DataFrame:
    """One row per record (``record`` its row number) with ``source``, ``seen_at`` and its
    identifier columns in priority order, blocked values set to null."""
    present = [name for name in IDENTIFIER_TYPES if name in records.columns]
    blocked = [value.strip().lower() for value in blocked_values]
    text = {name: pl.col(name).cast(pl.String) for name in present}
    return records.select(
        "source",
        pl.col("seen_at").cast(_UTC),
        *[
            pl.when(~value.str.strip_chars().str.to_lowercase().is_in(blocked))
            .then(value)
            .alias(name)
            for name, value in text.items()
        ],
    ).with_row_index("record")


def _pairs_with_anchor(wide: pl.DataFrame, stronger: list[str], name: str) -> pl.DataFrame:
    """The records' pairs (anchor, identifier of column ``name``): of the records that have
    one and one of the ``stronger`` columns, the first of which is their anchor."""
    return wide.filter(
        pl.col(name).is_not_null() & pl.any_horizontal(pl.col(s).is_not_null() for s in stronger)
    ).select(
        "record",
        "source",
        "seen_at",
        pl.coalesce(pl.when(pl.col(s).is_not_null()).then(pl.lit(s)) for s in stronger).alias(
            "left_type"
        ),
        pl.coalesce(stronger).alias("left_value"),
        pl.lit(name).alias("right_type"),
        pl.col(name).alias("right_value"),
    )


def evidence(records: pl.DataFrame, *, blocked_values: Iterable[str]) -> Evidence:
    """The identifiers and links of records with ``source``, ``seen_at`` and any of the
    identifier columns. Each record links its anchor (its strongest identifier) to each of its
    other identifiers; a pair seen in several records is one link with their count, the
    ``source`` of its first record (by ``seen_at``, nulls last, then by source name: not
    by record order, so that :func:`merged` of the evidence of two slices of records equals
    the evidence of all of them).

    Worked on the records' own columns: the identifier columns are in priority order, so a
    record's anchor is the first one it has, and its pairs with the anchor are its later ones.

    Example:
        >>> records = pl.DataFrame({"source": ["web"], "seen_at": [None],
        ...     "user_id": ["u1"], "anonymous_id": ["a1"]})
        >>> evidence(records, blocked_values=[]).links.select(_PAIR).rows()
        [('user_id', 'u1', 'anonymous_id', 'a1')]
    """
    wide = _usable_identifiers(records, blocked_values=blocked_values)
    present = wide.columns[3:]
    pairs = pl.concat(
        [_pairs_with_anchor(wide, present[:i], name) for i, name in enumerate(present) if i]
        or [pl.DataFrame(schema={"seen_at": _UTC, "record": pl.UInt32, **_PAIR_SCHEMA})]
    )
    links = (
        pairs.group_by(_PAIR)
        .agg(
            pl.col("source").sort_by("seen_at", "source", nulls_last=True).first(),
            pl.col("seen_at").min().alias("first_seen_at"),
            pl.col("seen_at").max().alias("last_seen_at"),
            pl.len().cast(pl.Int64).alias("records"),
        )
        .sort(_PAIR)
        .match_to_schema(LINK_SCHEMA)
    )
    identifiers = pl.concat(
        [
            wide.select(
                pl.lit(name).alias("identifier_type"), pl.col(name).alias("identifier_value")
            )
            .drop_nulls()
            .unique()
            for name in present
        ]
        or [pl.DataFrame(schema=IDENTIFIER_SCHEMA)]
    ).sort("identifier_type", "identifier_value")
    return Evidence(identifiers, links)


def _summed(links: pl.DataFrame) -> pl.DataFrame:
    """One link per pair of links seen in several slices of records: their records summed,
    their span, and the source of the first record."""
    return (
        links.group_by(_PAIR)
        .agg(
            pl.col("source").sort_by("first_seen_at", "source", nulls_last=True).first(),
            pl.col("first_seen_at").min(),
            pl.col("last_seen_at").max(),
            pl.col("records").sum(),
        )
        .match_to_schema(LINK_SCHEMA)
    )


def merged(earlier: Evidence, later: Evidence) -> Evidence:
    """The evidence of two slices of records (e.g. the records already stitched and a new
    batch's), as :func:`evidence` of all of them gives it (in no particular row order): a
    link seen in both counts the records of both, spans both, and takes the source of the
    first record.

    Example:
        >>> def seen(day, source):
        ...     return evidence(pl.DataFrame({"source": [source], "seen_at": [day],
        ...         "user_id": ["u1"], "anonymous_id": ["a1"]}), blocked_values=[])
        >>> from datetime import datetime as dt
        >>> both = merged(seen(dt(2026, 3, 2), "web"), seen(dt(2026, 3, 1), "app"))
        >>> both.links.select("source", "records").rows()
        [('app', 2)]
    """
    earlier_links = earlier.links.select(list(LINK_SCHEMA))
    later_links = later.links.select(list(LINK_SCHEMA))
    # only the pairs both slices have are summed up again (a day's few against millions)
    both = _summed(pl.concat([earlier_links.join(later_links, on=_PAIR, how="semi"), later_links]))
    links = pl.concat([earlier_links.join(later_links, on=_PAIR, how="anti"), both])
    key = list(IDENTIFIER_SCHEMA)
    identifiers = pl.concat(
        [
            earlier.identifiers.select(key),
            later.identifiers.select(key).join(earlier.identifiers, on=key, how="anti"),
        ]
    )
    return Evidence(identifiers, links)


# ---------------------------------------------------------------- guards


def shared_identifiers(links: pl.DataFrame, *, shared_limits: Mapping[str, int]) -> pl.DataFrame:
    """Identifiers linked with more than their type's limit of distinct identifiers of one
    stronger type, with the ``drop_reason`` their links get (``shared_<type>``).

    A link's left side is always the stronger type, so an identifier's stronger partners are
    the left sides of the links where it is the right side.
    """
    limits = pl.DataFrame(
        {"right_type": list(shared_limits), "limit": list(shared_limits.values())},
        schema={"right_type": pl.String, "limit": pl.Int64},
    )
    return (
        links.group_by("right_type", "right_value", "left_type")
        .agg(pl.col("left_value").n_unique().alias("partners"))
        .join(limits, on="right_type")
        .filter(pl.col("partners") > pl.col("limit"))
        .select(
            pl.col("right_type").alias("identifier_type"),
            pl.col("right_value").alias("identifier_value"),
            ("shared_" + pl.col("right_type")).alias("drop_reason"),
        )
        .unique(["identifier_type", "identifier_value"])
    )


def _with_shared(links: pl.DataFrame, shared: pl.DataFrame) -> pl.DataFrame:
    """Links with ``drop_reason`` set where either side is a shared identifier (the weaker
    side's reason first)."""
    right = shared.rename(
        {"identifier_type": "right_type", "identifier_value": "right_value", "drop_reason": "_r"}
    )
    left = shared.rename(
        {"identifier_type": "left_type", "identifier_value": "left_value", "drop_reason": "_l"}
    )
    return (
        links.join(right, on=["right_type", "right_value"], how="left", maintain_order="left")
        .join(left, on=["left_type", "left_value"], how="left", maintain_order="left")
        .with_columns(pl.coalesce("_r", "_l").alias("drop_reason"))
        .drop("_r", "_l")
    )


def customer_key(members: Iterable[Node]) -> str:
    """A customer's key, from the customer's strongest identifier: the smallest value of the
    highest-priority type (a user id before a loyalty card before an e-mail ... before a
    cookie). It stays the same while that identifier does, so new cookies, devices or cards
    joining a customer do not change the key."""
    kind, value = min(members, key=lambda member: (_RANK.get(member[0], len(_RANK)), member[1]))
    return "c_" + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:16]


def _admit(
    group: list[tuple[Node, Node]], customer_limits: Mapping[str, int]
) -> tuple[UnionFind, dict[tuple[Node, Node], str]]:
    """Admits a group's links strongest first; a link that would give a customer more values
    of a type than its limit is refused. Returns the components and the refused links."""
    components = UnionFind()
    held: dict[Node, Counter[str]] = {}
    refused: dict[tuple[Node, Node], str] = {}
    for left, right in group:
        for node in (left, right):
            if node not in held:
                components[node]
                held[node] = Counter({node[0]: 1})
        a, b = components[left], components[right]
        if a == b:
            continue
        together = held[a] + held[b]
        over = [kind for kind, limit in customer_limits.items() if together[kind] > limit]
        if over:
            refused[(left, right)] = "limit_" + min(over, key=_RANK.__getitem__)
            continue
        components.union(a, b)
        held[components[a]] = together
    return components, refused


def connected_components(nodes: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """The connected component of every node, as the smallest node number in it.

    ``nodes`` has a ``node`` column of the distinct integers 0 to n - 1, ``edges`` the
    columns ``a`` and ``b`` (node numbers). Each round, every node takes the smallest
    component number among its own and its neighbours', then that number's own (pointer
    jumping), until every edge's ends agree. A few rounds of vectorised gathers and one
    group-by each, as Splink finds clusters in SQL. Tested against
    ``networkx.connected_components``.

    Example:
        >>> nodes = pl.DataFrame({"node": [0, 1, 2, 3]})
        >>> edges = pl.DataFrame({"a": [1, 3], "b": [0, 2]})
        >>> connected_components(nodes, edges).sort("node")["component"].to_list()
        [0, 0, 2, 2]
    """
    node = nodes.get_column("node").cast(pl.Int64).sort()
    if node.len() and (node[0] != 0 or node[-1] != node.len() - 1):
        msg = "connected_components: nodes must be numbered 0 to n - 1"
        raise ValueError(msg)
    label = node.clone()  # by node number
    both = pl.concat(
        [
            edges.select(pl.col("a").cast(pl.Int64), pl.col("b").cast(pl.Int64)),
            edges.select(
                pl.col("b").cast(pl.Int64).alias("a"), pl.col("a").cast(pl.Int64).alias("b")
            ),
        ]
    )
    while True:
        # edges whose ends still disagree, each offering the smaller number to the other end
        offered = (
            both.with_columns(
                label.gather(both.get_column("a")).alias("la"),
                label.gather(both.get_column("b")).alias("lb"),
            )
            .filter(pl.col("la") < pl.col("lb"))
            .group_by("b")
            .agg(pl.col("la").min())
        )
        if offered.is_empty():
            return pl.DataFrame({"node": node, "component": label})
        # scatter writes in place: into a copy (every offer is below the number it replaces)
        lowered = label.clone().scatter(offered.get_column("b"), offered.get_column("la"))
        label = lowered.gather(lowered)  # pointer jumping


def _keys_of(members: pl.DataFrame, by: str, prefix: str) -> pl.DataFrame:
    """``prefix`` + the hash :func:`customer_key` gives, per value of ``by``: from each
    group's strongest identifier, hashed once per group."""
    strongest = (
        members.with_columns(pl.col("identifier_type").replace_strict(_RANK).alias("_rank"))
        .sort("_rank", "identifier_value")
        .group_by(by, maintain_order=True)
        .first()
    )
    texts = strongest.select(
        pl.concat_str("identifier_type", pl.lit(":"), "identifier_value")
    ).to_series()
    sha256 = hashlib.sha256
    keys = [prefix + sha256(text.encode()).hexdigest()[:16] for text in texts.to_list()]
    return strongest.select(by).with_columns(pl.Series("key", keys, dtype=pl.String))


def _numbered(links: pl.DataFrame, nodes: pl.DataFrame, side: str, name: str) -> pl.DataFrame:
    """The links whose ``side`` (left or right) is among the ``nodes``, with its node number
    as ``name``. Joined on the value alone, then its type checked: a join on both text
    columns costs a third more memory (0.9 GB against 0.65 GB at 10M events)."""
    return (
        links.join(
            nodes.select(
                pl.col("identifier_value").alias(f"{side}_value"),
                pl.col("identifier_type").alias("_type"),
                pl.col("node").alias(name),
            ),
            on=f"{side}_value",
        )
        .filter(pl.col("_type") == pl.col(f"{side}_type"))
        .drop("_type")
    )


def _decide(
    identifiers: pl.DataFrame, links: pl.DataFrame, customer_limits: Mapping[str, int]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Customers and guarded links of identifiers whose links (``drop_reason`` set for shared
    identifiers) stay among them: groups (vectorised), then the customer limits inside the
    few groups that hold more values of a type than its limit (one link at a time)."""
    key = ["identifier_type", "identifier_value"]
    nodes = (
        identifiers.select(key).with_row_index("node").with_columns(pl.col("node").cast(pl.Int64))
    )
    candidates = links.filter(pl.col("drop_reason").is_null())
    edges = _numbered(_numbered(candidates, nodes, "left", "a"), nodes, "right", "b")
    members = nodes.join(connected_components(nodes.select("node"), edges), on="node").rename(
        {"component": "group"}
    )
    limits = pl.DataFrame(
        {"identifier_type": list(customer_limits), "limit": list(customer_limits.values())},
        schema={"identifier_type": pl.String, "limit": pl.Int64},
    )
    over = (
        members.group_by("group", "identifier_type")
        .len()
        .join(limits, on="identifier_type")
        .filter(pl.col("len") > pl.col("limit"))
        .select("group")
        .unique()
    )
    # inside a group over a limit: links admitted strongest first, one at a time
    crowded = (
        edges.join(
            members.join(over, on="group", how="semi").select(pl.col("node").alias("a"), "group"),
            on="a",
        )
        .with_columns(
            pl.col("right_type").replace_strict(_RANK).alias("_rr"),
            pl.col("left_type").replace_strict(_RANK).alias("_lr"),
        )
        .sort("group", "_rr", "_lr", "first_seen_at", "left_value", "right_value", nulls_last=True)
    )
    del edges, candidates  # each frame let go once used: at 10M events they hold gigabytes
    parts: dict[int, int] = {}  # node number -> the node number naming its customer
    refused: dict[tuple[Node, Node], str] = {}
    for group in crowded.partition_by("group", maintain_order=True):
        numbers: dict[Node, int] = {}
        pairs = []
        for lt, lv, rt, rv, a, b in group.select(*_PAIR, "a", "b").iter_rows():
            numbers[(lt, lv)], numbers[(rt, rv)] = a, b
            pairs.append(((lt, lv), (rt, rv)))
        components, dropped = _admit(pairs, customer_limits)
        refused.update(dropped)
        parts |= {numbers[node]: numbers[components[node]] for node in components}
    del crowded
    part = pl.DataFrame(
        {"node": list(parts), "part": list(parts.values())},
        schema={"node": pl.Int64, "part": pl.Int64},
    )
    # customers and groups are named by node numbers (a group by its smallest, a part of a
    # crowded group by its root), joined on integers, not on the identifiers' text
    members = members.join(part, on="node", how="left").with_columns(
        pl.coalesce("part", "group").alias("customer")
    )
    keyed = members.join(_keys_of(members, "customer", "c_"), on="customer").rename(
        {"key": "customer_key"}
    )
    del members, nodes
    # a group that is one customer has the same strongest identifier: the same hash
    split = keyed.join(over, on="group", how="semi")
    group_keys = pl.concat(
        [
            keyed.join(over, on="group", how="anti")
            .select("group", ("g_" + pl.col("customer_key").str.slice(2)).alias("key"))
            .unique("group"),
            _keys_of(split, "group", "g_"),
        ]
    )
    del split
    customers = (
        keyed.join(group_keys, on="group")
        .rename({"key": "group_key"})
        .select(*key, "customer_key", "group_key")
        .match_to_schema(CUSTOMER_SCHEMA)
    )
    del keyed, group_keys
    limit_reasons = pl.DataFrame(
        [(*left, *right, reason) for (left, right), reason in refused.items()],
        schema=dict.fromkeys([*_PAIR, "reason"], pl.String),
        orient="row",
    )
    return customers, _guarded(links, limit_reasons)


def _guarded(links: pl.DataFrame, reasons: pl.DataFrame) -> pl.DataFrame:
    """Links with the ``drop_reason`` they have, or else the ``reason`` that ``reasons`` (one
    row per pair) gives, and ``is_active`` where neither gives one."""
    # the few links with a reason, found by one column first: a join of every link on the
    # four text columns of the pair costs ~2.5 GB at 10M events, for a few hundred reasons
    candidates = (
        links.select(_PAIR)
        .with_row_index("_row")
        .filter(pl.col("right_value").is_in(reasons.get_column("right_value").implode()))
    )
    found = candidates.join(reasons, on=_PAIR).select("_row", "reason")
    return (
        links.with_row_index("_row")
        .join(found, on="_row", how="left", maintain_order="left")
        .drop("_row")
        .with_columns(pl.coalesce("drop_reason", "reason").alias("drop_reason"))
        .with_columns(pl.col("drop_reason").is_null().alias("is_active"))
        .drop("reason")
        .match_to_schema(GUARDED_LINK_SCHEMA)
    )


def resolve(found: Evidence, guards: Guards) -> Stitched:
    """Decides every link and customer from scratch."""
    shared = shared_identifiers(found.links, shared_limits=guards.shared_limits)
    customers, links = _decide(
        found.identifiers, _with_shared(found.links, shared), guards.customer_limits
    )
    return Stitched(links.sort(_PAIR), customers.sort("identifier_type", "identifier_value"))


@dataclass(frozen=True)
class Restitched:
    """What an update decided again, as rows that replace the earlier ones.

    ``region`` holds the identifiers of every group the update touched. ``customers`` holds
    their rows as decided now; an identifier of the region without a row there is gone.
    ``links`` holds the links with an end in the region or whose evidence changed, replacing
    the earlier rows of the same pairs; ``gone_links`` holds the pairs no longer seen. Every
    other row of the earlier result stands as it is.
    """

    region: pl.DataFrame
    customers: pl.DataFrame
    links: pl.DataFrame
    gone_links: pl.DataFrame

    def applied(self, previous: Stitched) -> Stitched:
        """The whole result: ``previous`` with these rows in place of the ones they replace."""
        key = list(IDENTIFIER_SCHEMA)
        replaced = pl.concat([self.links.select(_PAIR), self.gone_links.select(_PAIR)])
        return Stitched(
            pl.concat(
                [
                    previous.links.select(list(GUARDED_LINK_SCHEMA)).join(
                        replaced, on=_PAIR, how="anti"
                    ),
                    self.links,
                ]
            ).sort(_PAIR),
            pl.concat(
                [
                    previous.customers.select(list(CUSTOMER_SCHEMA)).join(
                        self.region, on=key, how="anti"
                    ),
                    self.customers,
                ]
            ).sort(key),
        )


def _ends(links: pl.DataFrame) -> pl.DataFrame:
    """The identifiers at either end of links."""
    return pl.concat(
        [
            links.select(
                pl.col("left_type").alias("identifier_type"),
                pl.col("left_value").alias("identifier_value"),
            ),
            links.select(
                pl.col("right_type").alias("identifier_type"),
                pl.col("right_value").alias("identifier_value"),
            ),
        ]
    ).unique()


def _as_side(identifiers: pl.DataFrame, side: str) -> pl.DataFrame:
    return identifiers.select(
        pl.col("identifier_type").alias(f"{side}_type"),
        pl.col("identifier_value").alias(f"{side}_value"),
    )


def _touching(links: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """The links with an end among ``nodes``."""
    return pl.concat(
        [
            links.join(_as_side(nodes, "left"), on=["left_type", "left_value"], how="semi"),
            links.join(_as_side(nodes, "right"), on=["right_type", "right_value"], how="semi"),
        ]
    ).unique(_PAIR, maintain_order=True)


@dataclass(frozen=True)
class _Change:
    """How the evidence moved from an earlier result's: link rows new or not as they were,
    pairs gone, identifiers new and gone."""

    links: pl.DataFrame
    gone_links: pl.DataFrame
    identifiers: pl.DataFrame
    gone_identifiers: pl.DataFrame


def _redecide(previous: Stitched, change: _Change, guards: Guards) -> Restitched:
    """Decides again the groups that ``change`` touches: the ends of links new, gone or
    moved in time (the time orders the links a customer limit admits), new and gone
    identifiers, the partners of those ends (whose links a newly shared identifier drops),
    and every identifier of their groups. Only rows of the region and of the links that
    touch it are read of ``previous`` beyond a semi-join each."""
    key = list(IDENTIFIER_SCHEMA)
    earlier = previous.links.select(list(GUARDED_LINK_SCHEMA))
    altered = pl.concat([change.links.select(_PAIR), change.gone_links.select(_PAIR)])
    moved = change.links.join(
        earlier.join(altered, on=_PAIR, how="semi").select(*_PAIR, "first_seen_at"),
        on=[*_PAIR, "first_seen_at"],
        how="anti",
        nulls_equal=True,
    )
    touched = _ends(pl.concat([moved.select(_PAIR), change.gone_links.select(_PAIR)]))
    seeds = pl.concat(
        [
            touched,
            change.identifiers.select(key),
            change.gone_identifiers.select(key),
            # their partners (with themselves): the ends of the links that touch them
            _ends(_touching(earlier, touched)),
            _ends(_touching(change.links, touched)),
        ]
    ).unique()
    groups = previous.customers.join(seeds, on=key, how="semi").select("group_key").unique()
    region = pl.concat(
        [seeds, previous.customers.join(groups, on="group_key", how="semi").select(key)]
    ).unique()
    again = region.join(change.gone_identifiers, on=key, how="anti")
    # the links as found now: the earlier rows but those changed or gone, and the changed
    # (each a few rows of the earlier ones first, then those not altered: no copy of all)
    found = pl.concat(
        [
            _touching(earlier, again).join(altered, on=_PAIR, how="anti").select(list(LINK_SCHEMA)),
            change.links.select(list(LINK_SCHEMA)),
        ]
    )
    # whether an end is shared depends on every link where it is the right side
    ends = _as_side(_ends(found), "right")
    as_right = pl.concat(
        [
            earlier.join(ends, on=["right_type", "right_value"], how="semi")
            .join(altered, on=_PAIR, how="anti")
            .select(list(LINK_SCHEMA)),
            change.links.select(list(LINK_SCHEMA)),
        ]
    )
    marked = _with_shared(found, shared_identifiers(as_right, shared_limits=guards.shared_limits))
    inside = marked.join(_as_side(again, "left"), on=["left_type", "left_value"], how="semi").join(
        _as_side(again, "right"), on=["right_type", "right_value"], how="semi"
    )
    customers, decided = _decide(again, inside, guards.customer_limits)
    # A link from a decided identifier to a kept one was dropped as shared before and still
    # is (only the touched identifiers' partners can change, and they are decided again). A
    # link between kept identifiers whose evidence changed (records, last seen) but not its
    # time keeps its earlier reason, a limit one included: its group was not decided again.
    outside = _guarded(
        marked.join(decided.select(_PAIR), on=_PAIR, how="anti"),
        earlier.join(found.select(_PAIR), on=_PAIR, how="semi")
        .filter(pl.col("drop_reason").is_not_null())
        .select(*_PAIR, pl.col("drop_reason").alias("reason")),
    )
    return Restitched(
        region,
        customers,
        pl.concat([decided, outside]),
        change.gone_links.select(_PAIR),
    )


def update(previous: Stitched, found: Evidence, guards: Guards) -> tuple[Stitched, int]:
    """Decides again only the groups that links new, gone or moved in time touch (and the
    groups of their partners, whose links a newly shared identifier drops); every other
    identifier keeps its customer. Equals :func:`resolve` on ``found``. Returns the result and
    the number of identifiers decided again.
    """
    key = list(IDENTIFIER_SCHEMA)
    earlier = previous.links.select(list(LINK_SCHEMA))
    links = found.links.select(list(LINK_SCHEMA))
    known = previous.customers.select(key)
    change = _Change(
        links.join(earlier, on=list(LINK_SCHEMA), how="anti", nulls_equal=True),
        earlier.select(_PAIR).join(links, on=_PAIR, how="anti"),
        found.identifiers.join(known, on=key, how="anti"),
        known.join(found.identifiers, on=key, how="anti"),
    )
    restitched = _redecide(previous, change, guards)
    return restitched.applied(previous), restitched.customers.height


def restitch(previous: Stitched, later: Evidence, guards: Guards) -> Restitched:
    """What the records of ``later`` (the evidence of records not seen before) change in
    ``previous``: :func:`update` on their :func:`merged` evidence, worked from the links and
    identifiers they bring (a day's few) instead of comparing every link.

    ``restitch(previous, later, guards).applied(previous)`` equals
    ``resolve(merged(evidence, later), guards)``, where ``evidence`` is what ``previous`` was
    resolved from.
    """
    key = list(IDENTIFIER_SCHEMA)
    links = later.links.select(list(LINK_SCHEMA))
    earlier = previous.links.select(list(LINK_SCHEMA)).join(links, on=_PAIR, how="semi")
    both = _summed(pl.concat([earlier, links]))
    change = _Change(
        both.join(earlier, on=list(LINK_SCHEMA), how="anti", nulls_equal=True),
        pl.DataFrame(schema=dict.fromkeys(_PAIR, pl.String())),
        later.identifiers.join(
            previous.customers.join(later.identifiers, on=key, how="semi").select(key),
            on=key,
            how="anti",
        ),
        pl.DataFrame(schema=IDENTIFIER_SCHEMA),
    )
    return _redecide(previous, change, guards)


def stitch(records: pl.DataFrame, *, blocked_values: Iterable[str], guards: Guards) -> Stitched:
    """Builds the identity graph from records with ``source``, ``seen_at`` and any of the
    identifier columns, and finds its customers.

    Example:
        >>> records = pl.DataFrame({"source": ["web"], "seen_at": [None],
        ...     "user_id": ["u1"], "anonymous_id": ["a1"]})
        >>> guards = Guards(shared_limits={"anonymous_id": 1}, customer_limits={"user_id": 1})
        >>> stitch(records, blocked_values=[], guards=guards).customers.height
        2
    """
    return resolve(evidence(records, blocked_values=blocked_values), guards)


# ---------------------------------------------------------------- changes and keys


def identity_changes(
    before: pl.DataFrame, after: pl.DataFrame, *, changed_at: datetime
) -> pl.DataFrame:
    """The merge ledger: one row per (customer before, customer after) of the identifiers both
    know, where customers were merged (``merge``), split (``split``), both (``merge_split``) or
    only renamed (``rekey``: a stronger identifier joined). Unchanged customers give no row.
    """
    key = ["identifier_type", "identifier_value"]
    # Only customers an identifier came to, left or was new in can be in the ledger: the
    # rest keep every identifier under the same key (a day's run compares thousands of
    # identifiers, not millions).
    keyed = [*key, "customer_key"]
    moved = pl.concat(
        [
            after.join(before, on=keyed, how="anti").select("customer_key"),
            before.join(after, on=keyed, how="anti").select("customer_key"),
        ]
    ).unique()
    involved = pl.concat(
        [
            before.join(moved, on="customer_key").select(key),
            after.join(moved, on="customer_key").select(key),
        ]
    ).unique()
    before, after = (
        before.join(involved, on=key, how="semi"),
        after.join(involved, on=key, how="semi"),
    )
    moves = (
        before.select(*key, pl.col("customer_key").alias("customer_key_before"))
        .join(after.select(*key, pl.col("customer_key").alias("customer_key_after")), on=key)
        .group_by("customer_key_before", "customer_key_after")
        .agg(pl.len().cast(pl.Int64).alias("identifiers"))
    )
    sources = pl.col("customer_key_before").n_unique().over("customer_key_after")
    targets = pl.col("customer_key_after").n_unique().over("customer_key_before")
    return (
        moves.with_columns(
            pl.when((sources > 1) & (targets > 1))
            .then(pl.lit("merge_split"))
            .when(sources > 1)
            .then(pl.lit("merge"))
            .when(targets > 1)
            .then(pl.lit("split"))
            .when(pl.col("customer_key_before") != pl.col("customer_key_after"))
            .then(pl.lit("rekey"))
            .alias("change"),
            pl.lit(changed_at).cast(_UTC).alias("changed_at"),
        )
        .drop_nulls("change")
        .sort("customer_key_after", "customer_key_before")
        .match_to_schema(CHANGE_SCHEMA)
    )


@dataclass(frozen=True)
class KeyLookup:
    """The customer key of each identifier, split by identifier type once: events keyed a
    part at a time against one stitch share it (splitting 4.2M rows again for each part of
    a 10M-event build cost ~3 s)."""

    by_type: Mapping[str, pl.DataFrame]

    @classmethod
    def of(cls, customers: pl.DataFrame | KeyLookup) -> KeyLookup:
        """The lookup of ``customers`` (rows of :data:`CUSTOMER_SCHEMA`), or the lookup given."""
        if isinstance(customers, KeyLookup):
            return customers
        return cls(
            {
                kind: customers.filter(pl.col("identifier_type") == kind).select(
                    pl.col("identifier_value").alias(kind),
                    pl.col("customer_key").alias(f"_key_{kind}"),
                )
                for kind in IDENTIFIER_TYPES
            }
        )


def _identifier_keys(events: pl.DataFrame, customers: pl.DataFrame | KeyLookup) -> pl.DataFrame:
    """The events with ``customer_key`` that of their highest-priority known identifier (null
    when they have none)."""
    lookup = KeyLookup.of(customers)
    # looked up on the identifier columns alone: a join carries every column of its frame
    # (25 of an event), six joins in a row
    found = events.select(IDENTIFIER_TYPES)
    keys = []
    for kind in IDENTIFIER_TYPES:
        found = found.join(lookup.by_type[kind], on=kind, how="left", maintain_order="left")
        keys.append(f"_key_{kind}")
    # each identifier is one customer's: no join added a row, so the rows are in step
    return events.with_columns(found.select(pl.coalesce(keys)).to_series().alias("customer_key"))


def order_customers(conversions: pl.DataFrame, customers: pl.DataFrame | KeyLookup) -> pl.DataFrame:
    """``order_id`` and ``customer_key`` of the customer who placed each order: of the
    conversions that name it and have a known identifier, the first by time, then event id
    (not by row order, so that keys given to a batch's events agree with keys given to all
    events at once). Needs the conversions' ``event_id``, ``occurred_at``, ``is_conversion``,
    ``order_id`` and identifier columns; other events may be in the frame too."""
    return (
        _identifier_keys(conversions, customers)
        .filter(pl.col("is_conversion") & pl.col("customer_key").is_not_null())
        .drop_nulls("order_id")
        .sort("order_id", "occurred_at", "event_id")
        .select("order_id", "customer_key")
        .unique("order_id", keep="first", maintain_order=True)
    )


def assign_customer_keys(
    events: pl.DataFrame,
    customers: pl.DataFrame | KeyLookup,
    *,
    orders: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Sets each event's ``customer_key`` to that of its highest-priority known identifier,
    or else to that of the customer who placed the order the event names (:func:`order_customers`
    of the events, or ``orders`` when given: of every conversion, for events keyed a part at
    a time). ``customers``: rows of :data:`CUSTOMER_SCHEMA`, or their :class:`KeyLookup`
    when many parts are keyed against one stitch.

    Stitching is retroactive: anonymous events before a login get the customer's key because
    the key comes from the whole graph, not from the order events arrived in.
    """
    keyed = _identifier_keys(events, customers)
    # An event with no usable identifier that names an order (a pickup, a return) belongs to
    # the customer who placed the order; any other is a customer of its own, not lost.
    ordered_by = (order_customers(events, customers) if orders is None else orders).select(
        "order_id", pl.col("customer_key").alias("_orderer")
    )
    unknown = pl.lit("c_event:") + pl.col("event_id")
    return (
        keyed.join(ordered_by, on="order_id", how="left", maintain_order="left")
        .with_columns(pl.coalesce("customer_key", "_orderer", unknown).alias("customer_key"))
        .drop("_orderer")
    )
