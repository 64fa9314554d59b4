"""Which customers a run must rebuild: what changed in ``core.events`` since the last run.

Input grain: one customer (a fingerprint of their events, which the warehouse computes:
``jobs.customer_fingerprints``) and one (order, customer) pair. Output grain: the customers
whose sessions, journeys and steps must be built again.

A customer's journeys depend only on their own events, on the events of customers who share an
order with them (a pick-up in a store joins the journey of the online order it collects), on the
rules, and on the end of the data, which decides only whether a journey that has not converted
is still ``open`` or has ``dropped``. So after new files load, a run rebuilds:

- the customers whose events changed (new or late events, a merge or split by stitching that
  moved events between customer keys, an erasure): their fingerprint differs;
- everyone linked to one of them by a shared order id, in the last build or now;
- every customer with an open journey, whose status may change with the new end of the data
  (a journey that converted or dropped stays so while the end of the data moves forward).

Everyone else keeps their rows, which a full rebuild would give again row for row.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import polars as pl


def changed_customers(before: pl.DataFrame, after: pl.DataFrame) -> pl.Series:
    """Customer keys whose fingerprint differs between two runs, or that are in only one.

    Example:
        >>> before = pl.DataFrame({"customer_key": ["a", "b"], "events": [1, 1],
        ...     "hash_high": [1, 2], "hash_low": [1, 2]})
        >>> after = pl.DataFrame({"customer_key": ["b", "c"], "events": [2, 1],
        ...     "hash_high": [2, 3], "hash_low": [5, 3]})
        >>> changed_customers(before, after).to_list()
        ['a', 'b', 'c']
    """
    values = ["events", "hash_high", "hash_low"]
    joined = before.select("customer_key", *values).join(
        after.select("customer_key", *values), on="customer_key", how="full", coalesce=True
    )
    differs = pl.any_horizontal(
        pl.col(value).ne_missing(pl.col(f"{value}_right")) for value in values
    )
    return joined.filter(differs).get_column("customer_key").sort()


def order_links(events: pl.DataFrame) -> pl.DataFrame:
    """Pairs of customers (``before``, ``customer_key``) whose events share an order id: one pair
    per neighbour in key order, enough to connect every customer of an order.

    Example:
        >>> events = pl.DataFrame({"customer_key": ["a", "b", "c", "a"],
        ...     "order_id": ["O1", "O1", "O1", None]})
        >>> order_links(events).rows()
        [('a', 'b'), ('b', 'c')]
    """
    linked = (
        events.select("order_id", "customer_key")
        .filter(pl.col("order_id").is_not_null())
        .unique()
        .filter(pl.len().over("order_id") > 1)
        .sort("order_id", "customer_key")
    )
    same_order = linked.get_column("order_id")
    return linked.select(pl.col("customer_key").shift().alias("before"), "customer_key").filter(
        same_order == same_order.shift()
    )


def customers_to_rebuild(
    events: pl.DataFrame,
    *,
    changed: pl.Series,
    open_journeys: pl.Series,
    previous_links: pl.DataFrame,
) -> pl.Series:
    """The customers a run rebuilds: ``changed`` and those with ``open_journeys``, with every
    customer linked to one of them by shared order ids in ``events`` or in ``previous_links``
    (pairs of customer keys from the last build), directly or through others.

    Example:
        >>> events = pl.DataFrame({"customer_key": ["a", "b", "c", "d"],
        ...     "order_id": ["O1", "O1", None, "O2"]})
        >>> before = pl.DataFrame({"before": ["c"], "customer_key": ["d"]})
        >>> customers_to_rebuild(events, changed=pl.Series(["a"]),
        ...     open_journeys=pl.Series(["c"]), previous_links=before).to_list()
        ['a', 'b', 'c', 'd']
    """
    seeds = set(changed.to_list()) | set(open_journeys.to_list())
    graph = nx.Graph()
    graph.add_edges_from(order_links(events).iter_rows())
    graph.add_edges_from(previous_links.iter_rows())
    wanted = set(seeds)
    for component in nx.connected_components(graph):
        if not seeds.isdisjoint(component):
            wanted |= component
    return pl.Series("customer_key", sorted(wanted), dtype=pl.String)


def order_groups(events: pl.DataFrame) -> pl.DataFrame:
    """Customers linked by shared order ids (directly or through others), each with the
    smallest key of its group (``first``); customers with no link are not listed.

    Example:
        >>> events = pl.DataFrame({"customer_key": ["b", "a", "c"], "order_id": ["O1", "O1", None]})
        >>> order_groups(events).sort("customer_key").rows()
        [('a', 'a'), ('b', 'a')]
    """
    graph = nx.Graph()
    graph.add_edges_from(order_links(events).iter_rows())
    names: list[str] = []
    smallest: list[str] = []
    for component in nx.connected_components(graph):
        first = min(component)
        names += component
        smallest += [first] * len(component)
    return pl.DataFrame(
        {"customer_key": names, "first": smallest},
        schema={"customer_key": pl.String, "first": pl.String},
    )


def add_counts(
    current: pl.DataFrame,
    added: pl.DataFrame,
    removed: pl.DataFrame,
    *,
    keys: Sequence[str],
    counts: Sequence[str],
) -> pl.DataFrame:
    """``current`` + ``added`` - ``removed``, per ``keys``, for each of the ``counts``
    (whole numbers or decimals: exact whatever the order); a key whose first count comes to
    zero has no row, as it would have none in a full build.

    Example:
        >>> current = pl.DataFrame({"edge": ["a", "b"], "n": [3, 1]})
        >>> added = pl.DataFrame({"edge": ["a", "c"], "n": [1, 2]})
        >>> removed = pl.DataFrame({"edge": ["b"], "n": [1]})
        >>> add_counts(current, added, removed, keys=["edge"], counts=["n"]).rows()
        [('a', 4), ('c', 2)]
    """
    columns = [*keys, *counts]
    return (
        pl.concat(
            [
                current.select(columns),
                added.select(columns),
                removed.select(*keys, *(-pl.col(count) for count in counts)),
            ],
            how="vertical_relaxed",
        )
        .group_by(keys)
        .agg(pl.col(list(counts)).sum())
        .filter(pl.col(counts[0]) != 0)
        .select(columns)
        .sort(keys)
    )
