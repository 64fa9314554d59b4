"""Transition graphs: journey steps to a ``networkx.DiGraph`` of touchpoint transitions.

Input grain: one step of a journey (``journeys.steps``) and one row per journey (its status).
Output grain: ``transition_edges`` one row per (journey, transition); ``transition_graph`` a
DiGraph over touchpoints plus ``START``, ``CONVERSION`` and ``DROP_OFF``, one edge per
(from, to) with ``transitions``, ``customers``, ``probability``, ``median_seconds`` and
``p90_seconds``; ``graph_to_frame`` one row per edge (``marts.transitions``).

The graph covers each journey up to its conversion: fulfilment steps after it (pickup,
review) are not transitions towards the sale. Noise touchpoints are dropped and consecutive
repeats collapsed as in the paths; seconds run from the last event of one touchpoint to the
first event of the next. Open journeys have no end edge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

import networkx as nx
import polars as pl

START, CONVERSION, DROP_OFF = "START", "CONVERSION", "DROP_OFF"


def _runs(
    steps: pl.DataFrame, *, drop_touchpoints: tuple[str, ...], collapse_repeats: bool
) -> pl.DataFrame:
    """Consecutive steps of one touchpoint folded into one run with its first and last time,
    in journey order, with ``journey``: a number per journey (in their order), so that what
    follows compares numbers rather than journey ids."""
    kept = (
        steps.filter(~pl.col("is_fulfilment") & ~pl.col("touchpoint").is_in(list(drop_touchpoints)))
        .sort("journey_id", "position")
        .with_columns(pl.col("journey_id").rle_id().alias("journey"))
    )
    starts = (pl.col("journey") != pl.col("journey").shift()).fill_null(True) | (
        pl.col("touchpoint") != pl.col("touchpoint").shift()
    ).fill_null(True)
    run = (
        starts.cast(pl.Int64).cum_sum()
        if collapse_repeats
        else pl.int_range(pl.len())  # every step its own run
    )
    return (
        kept.with_columns(run.set_sorted().alias("run"))
        .group_by("run", maintain_order=True)
        .agg(
            pl.col("journey_id", "journey", "customer_key", "touchpoint").first(),
            pl.col("occurred_at").min().alias("first_at"),
            pl.col("occurred_at").max().alias("last_at"),
        )
    )


def transition_edges(
    steps: pl.DataFrame,
    journeys: pl.DataFrame,
    *,
    drop_touchpoints: tuple[str, ...],
    collapse_repeats: bool,
) -> pl.DataFrame:
    """Every transition of every journey, including ``START ->`` and ``-> CONVERSION`` /
    ``-> DROP_OFF`` edges: columns journey_id, customer_key, from_touchpoint, to_touchpoint,
    seconds."""
    runs = _runs(steps, drop_touchpoints=drop_touchpoints, collapse_repeats=collapse_repeats)
    same_journey = pl.col("journey") == pl.col("journey").shift()
    inner = runs.select(
        "journey",
        "journey_id",
        "customer_key",
        pl.when(same_journey)
        .then(pl.col("touchpoint").shift())
        .fill_null(START)
        .alias("from_touchpoint"),
        pl.col("touchpoint").alias("to_touchpoint"),
        pl.when(same_journey)
        .then(pl.col("first_at") - pl.col("last_at").shift())
        .dt.total_microseconds()
        .truediv(1e6)
        .alias("seconds"),
    )
    end_node = (
        pl.when(pl.col("status") == "converted")
        .then(pl.lit(CONVERSION))
        .when(pl.col("status") == "dropped")
        .then(pl.lit(DROP_OFF))
    )
    last_run = (pl.col("journey") != pl.col("journey").shift(-1)).fill_null(True)
    ends = (
        runs.filter(last_run)
        .join(journeys.select("journey_id", "status"), on="journey_id")
        .select(
            "journey",
            "journey_id",
            "customer_key",
            pl.col("touchpoint").alias("from_touchpoint"),
            end_node.alias("to_touchpoint"),
            pl.lit(None, dtype=pl.Float64).alias("seconds"),
        )
        .filter(pl.col("to_touchpoint").is_not_null())
    )
    # each journey's end after its transitions
    return pl.concat([inner, ends]).sort("journey", maintain_order=True).drop("journey")


def path_ends(edges: pl.DataFrame) -> pl.DataFrame:
    """The ends of each journey's edges (:func:`transition_edges`): ``entry_touchpoint``, the
    target of its ``START`` edge, and ``exit_touchpoint``, the source of its edge into
    ``CONVERSION`` or ``DROP_OFF`` (null while the journey is open). With the inner edges they
    give the journey's whole transition graph. Journeys without edges have no row."""
    entries = edges.filter(pl.col("from_touchpoint") == START).select(
        "journey_id", pl.col("to_touchpoint").alias("entry_touchpoint")
    )
    exits = edges.filter(pl.col("to_touchpoint").is_in([CONVERSION, DROP_OFF])).select(
        "journey_id", pl.col("from_touchpoint").alias("exit_touchpoint")
    )
    return entries.join(exits, on="journey_id", how="left", maintain_order="left")


TRANSITION_SCHEMA: dict[str, pl.DataType] = {
    "segment": pl.String(),
    "from_touchpoint": pl.String(),
    "to_touchpoint": pl.String(),
    "transitions": pl.Int64(),
    "customers": pl.Int64(),
    "probability": pl.Float64(),
    "median_seconds": pl.Float64(),
    "p90_seconds": pl.Float64(),
    "dimension": pl.String(),
}
NODE_SCHEMA: dict[str, pl.DataType] = {
    "dimension": pl.String(),
    "segment": pl.String(),
    "touchpoint": pl.String(),
    "visits": pl.Int64(),
    "journeys": pl.Int64(),
    "customers": pl.Int64(),
    "conversions": pl.Int64(),
    "exits": pl.Int64(),
    "exit_rate": pl.Float64(),
}
_EDGE_ATTRIBUTES = ("transitions", "customers", "probability", "median_seconds", "p90_seconds")
_NODE_ATTRIBUTES = ("visits", "journeys", "customers", "conversions", "exits", "exit_rate")

SegmentDimension = Literal["status", "first_channel", "store", "region", "cohort", "period"]
SEGMENT_DIMENSIONS: tuple[SegmentDimension, ...] = get_args(SegmentDimension)


def _segment(dimension: str) -> pl.Expr:
    """A journey's segment of a dimension from its attributes: ``dimension=value``; status
    segments keep their plain names, and an open journey is in no status segment."""
    if dimension == "status":
        return pl.when(pl.col("status") != "open").then(pl.col("status"))
    return pl.lit(f"{dimension}=") + pl.col(dimension).cast(pl.String)


def segment_memberships(
    attributes: pl.DataFrame, *, dimensions: tuple[str, ...] = SEGMENT_DIMENSIONS
) -> pl.DataFrame:
    """One row per (journey, segment) from one row per journey
    (:func:`journeys.journey_attributes`): segment ``all`` for every journey, and for each
    dimension asked for, the journey's value as ``dimension=value`` (``store=S01``,
    ``period=2026-03``). Status segments keep their plain names (``converted``,
    ``dropped``); open journeys and journeys without a value (no store) are in no segment of
    that dimension.

    Example:
        >>> attributes = pl.DataFrame(
        ...     {"journey_id": ["j1"], "status": ["open"], "first_channel": ["web"]}
        ... )
        >>> segment_memberships(attributes, dimensions=("status", "first_channel")).rows()
        [('j1', 'all', 'all'), ('j1', 'first_channel', 'first_channel=web')]
    """
    frames = [attributes.select("journey_id", dimension=pl.lit("all"), segment=pl.lit("all"))]
    for dimension in dimensions:
        frames.append(
            attributes.select(
                "journey_id", dimension=pl.lit(dimension), segment=_segment(dimension)
            ).drop_nulls("segment")
        )
    return pl.concat(frames)


def segment_columns(
    attributes: pl.DataFrame, *, dimensions: tuple[str, ...] = SEGMENT_DIMENSIONS
) -> pl.DataFrame:
    """The segments of :func:`segment_memberships` one row per journey: ``journey_id`` and
    ``<dimension>_segment`` for each of :data:`SEGMENT_DIMENSIONS` (null when the journey is
    in no segment of it, or the dimension is not asked for). What ``marts.journey_edges`` and
    ``marts.journey_facts`` carry, so that the marts group by a dimension without a join.

    Example:
        >>> attributes = pl.DataFrame(
        ...     {"journey_id": ["j1"], "status": ["converted"], "first_channel": ["web"]}
        ... )
        >>> segment_columns(attributes, dimensions=("status",)).row(0)
        ('j1', 'converted', None, None, None, None, None)
    """
    return attributes.select(
        "journey_id",
        *(
            (_segment(dimension) if dimension in dimensions else pl.lit(None, pl.String)).alias(
                f"{dimension}_segment"
            )
            for dimension in SEGMENT_DIMENSIONS
        ),
    )


def transition_frame(edges: pl.DataFrame, memberships: pl.DataFrame | None = None) -> pl.DataFrame:
    """``marts.transitions``: one row per (segment, from, to) edge with transitions, distinct
    customers, probability (the edge's share of its origin's transitions in the segment),
    median and p90 seconds. Without ``memberships`` every edge is in segment ``all``."""
    return _transitions(*_keyed(edges, memberships))


def node_frame(edges: pl.DataFrame, memberships: pl.DataFrame | None = None) -> pl.DataFrame:
    """``marts.transition_nodes``: one row per (segment, node): visits (transitions into it;
    for ``START`` the journeys), distinct journeys and customers, conversions (moves to
    ``CONVERSION``), exits (moves to ``DROP_OFF``) and the exit rate (exits / visits)."""
    return _nodes(*_keyed(edges, memberships))


def segment_marts(
    edges: pl.DataFrame, memberships: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`transition_frame` and :func:`node_frame` together, from one join of the edges
    to their segments."""
    keyed, segment = _keyed(edges, memberships)
    return _transitions(keyed, segment), _nodes(keyed, segment)


TRANSITION_KEYS = ("dimension", "segment", "from_touchpoint", "to_touchpoint")
NODE_KEYS = ("dimension", "segment", "touchpoint")
TRANSITION_COUNTS = ("transitions", "customers")
NODE_COUNTS = ("visits", "journeys", "customers", "conversions", "exits")


def segment_counts(
    edges: pl.DataFrame, memberships: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The whole numbers of ``marts.transitions`` (per :data:`TRANSITION_KEYS`:
    :data:`TRANSITION_COUNTS`) and of ``marts.transition_nodes`` (per :data:`NODE_KEYS`:
    :data:`NODE_COUNTS`). They add up across sets of whole customers: a customer is counted
    once in a group, and is in one set. An incremental run adds those of the customers it
    rebuilt and subtracts those of the rows they replace; :func:`transitions_from_counts` and
    :func:`nodes_from_counts` add the rates."""
    keyed, segment = _keyed(edges, memberships)
    return _transition_counts(keyed, segment), _node_counts(keyed, segment)


def _keyed(edges: pl.DataFrame, memberships: pl.DataFrame | None) -> tuple[pl.DataFrame, list[str]]:
    """The edges with the columns of their segments, and those columns (none for one
    segment, all). Journeys and customers are numbered (their codes within the edges) and
    touchpoints and segments are enums, so that the group-bys hash integers rather than
    strings; :func:`_strings` turns them back into strings."""
    names = pl.concat(
        [
            edges.get_column(column).cast(pl.String)
            for column in ("from_touchpoint", "to_touchpoint")
        ]
        + [pl.Series([START], dtype=pl.String)]
    )
    touchpoint = pl.Enum(names.drop_nulls().unique().sort())
    numbered = edges.select(
        "journey_id",
        pl.col("journey_id").cast(pl.Categorical).to_physical().alias("journey"),
        pl.col("customer_key").cast(pl.Categorical).to_physical().alias("customer"),
        # touchpoints may come as an enum of their own (reconstruct's edges)
        pl.col("from_touchpoint", "to_touchpoint").cast(pl.String).cast(touchpoint),
        "seconds",
    )
    if memberships is None:
        return numbered.drop("journey_id"), []
    segments = memberships.select(
        "journey_id",
        *(
            pl.col(column).cast(pl.Enum(memberships.get_column(column).unique().sort()))
            for column in ("dimension", "segment")
        ),
    )
    return numbered.join(segments, on="journey_id").drop("journey_id"), ["dimension", "segment"]


def _strings(frame: pl.DataFrame, segment: list[str]) -> pl.DataFrame:
    """Enums back to strings, and segment ``all`` when the edges had no segments."""
    if not segment:
        frame = frame.with_columns(dimension=pl.lit("all"), segment=pl.lit("all"))
    return frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))


def _transition_counts(keyed: pl.DataFrame, segment: list[str]) -> pl.DataFrame:
    counts = keyed.group_by(*segment, "from_touchpoint", "to_touchpoint").agg(
        pl.len().cast(pl.Int64).alias("transitions"),
        pl.col("customer").n_unique().cast(pl.Int64).alias("customers"),
    )
    return _strings(counts, segment).select(*TRANSITION_KEYS, *TRANSITION_COUNTS)


def _transition_seconds(keyed: pl.DataFrame, segment: list[str]) -> pl.DataFrame:
    seconds = keyed.group_by(*segment, "from_touchpoint", "to_touchpoint").agg(
        pl.col("seconds").median().alias("median_seconds"),
        pl.col("seconds").quantile(0.9, interpolation="linear").alias("p90_seconds"),
    )
    return _strings(seconds, segment).select(*TRANSITION_KEYS, "median_seconds", "p90_seconds")


def transitions_from_counts(counts: pl.DataFrame, seconds: pl.DataFrame) -> pl.DataFrame:
    """``marts.transitions`` from :func:`segment_counts`' transition counts and the median
    and p90 seconds of each edge (per :data:`TRANSITION_KEYS`; an edge without seconds has
    nulls): the probability is the edge's share of its origin's transitions in the segment."""
    origin = ["dimension", "segment", "from_touchpoint"]
    return (
        counts.join(seconds, on=list(TRANSITION_KEYS), how="left")
        .with_columns(
            (pl.col("transitions") / pl.col("transitions").sum().over(origin)).alias("probability")
        )
        .select(list(TRANSITION_SCHEMA))
        .cast(TRANSITION_SCHEMA)  # type: ignore[arg-type]
        .sort("dimension", "segment", "from_touchpoint", "to_touchpoint")
    )


def _transitions(keyed: pl.DataFrame, segment: list[str]) -> pl.DataFrame:
    """``marts.transitions`` from the numbered edges with their segments."""
    return transitions_from_counts(
        _transition_counts(keyed, segment), _transition_seconds(keyed, segment)
    )


def _node_counts(keyed: pl.DataFrame, segment: list[str]) -> pl.DataFrame:
    node = keyed.get_column("to_touchpoint").dtype
    who = [*segment, "journey", "customer"]
    entered = pl.concat(
        [
            keyed.filter(pl.col("from_touchpoint") == START).select(
                *who, pl.lit(START, dtype=node).alias("touchpoint")
            ),
            keyed.select(*who, pl.col("to_touchpoint").alias("touchpoint")),
        ]
    )
    visits = entered.group_by(*segment, "touchpoint").agg(
        pl.len().cast(pl.Int64).alias("visits"),
        pl.col("journey").n_unique().cast(pl.Int64).alias("journeys"),
        pl.col("customer").n_unique().cast(pl.Int64).alias("customers"),
    )
    # only moves to an end count; a node without any gets 0 from the join below
    ends = (
        keyed.filter(pl.col("to_touchpoint").is_in([CONVERSION, DROP_OFF]))
        .group_by(*segment, pl.col("from_touchpoint").alias("touchpoint"))
        .agg(
            (pl.col("to_touchpoint") == CONVERSION).sum().cast(pl.Int64).alias("conversions"),
            (pl.col("to_touchpoint") == DROP_OFF).sum().cast(pl.Int64).alias("exits"),
        )
    )
    counts = visits.join(ends, on=[*segment, "touchpoint"], how="left").with_columns(
        pl.col("conversions", "exits").fill_null(0)
    )
    return _strings(counts, segment).select(*NODE_KEYS, *NODE_COUNTS)


def nodes_from_counts(counts: pl.DataFrame) -> pl.DataFrame:
    """``marts.transition_nodes`` from :func:`segment_counts`' node counts: with the exit
    rate (exits / visits)."""
    return (
        counts.with_columns((pl.col("exits") / pl.col("visits")).alias("exit_rate"))
        .select(list(NODE_SCHEMA))
        .cast(NODE_SCHEMA)  # type: ignore[arg-type]
        .sort(list(NODE_KEYS))
    )


def _nodes(keyed: pl.DataFrame, segment: list[str]) -> pl.DataFrame:
    """``marts.transition_nodes`` from the numbered edges with their segments."""
    return nodes_from_counts(_node_counts(keyed, segment))


def graph_from_frames(transitions: pl.DataFrame, nodes: pl.DataFrame | None = None) -> nx.DiGraph:
    """A DiGraph from the rows of one segment of ``marts.transitions`` (and of
    ``marts.transition_nodes`` for the node attributes)."""
    graph = nx.DiGraph()
    if nodes is not None:
        for row in nodes.select("touchpoint", *_NODE_ATTRIBUTES).iter_rows(named=True):
            graph.add_node(row.pop("touchpoint"), **row)
    for row in transitions.select("from_touchpoint", "to_touchpoint", *_EDGE_ATTRIBUTES).iter_rows(
        named=True
    ):
        source, target = row.pop("from_touchpoint"), row.pop("to_touchpoint")
        graph.add_edge(source, target, **row)
    return graph


def transition_graph(edges: pl.DataFrame) -> nx.DiGraph:
    """Aggregates transitions into a DiGraph: per edge transitions, customers, probability and
    timing; per node visits, journeys, customers, conversions, exits and exit rate."""
    return graph_from_frames(transition_frame(edges), node_frame(edges))


def graph_to_frame(graph: nx.DiGraph, *, segment: str) -> pl.DataFrame:
    """The graph's edges as rows of ``marts.transitions``."""
    rows = [
        {
            "segment": segment,
            "from_touchpoint": source,
            "to_touchpoint": target,
            **{name: data[name] for name in _EDGE_ATTRIBUTES},
            "dimension": "status" if segment in ("converted", "dropped") else segment,
        }
        for source, target, data in graph.edges(data=True)
    ]
    return pl.DataFrame(rows, schema=TRANSITION_SCHEMA).sort("from_touchpoint", "to_touchpoint")


def segment_graphs(
    edges: pl.DataFrame, memberships: pl.DataFrame, *, segments: tuple[str, ...] | None = None
) -> dict[str, nx.DiGraph]:
    """The transition graph of each segment (of ``segments`` only, when given), with node
    attributes."""
    if segments is not None:
        memberships = memberships.filter(pl.col("segment").is_in(list(segments)))
    return graphs_of_segments(
        transition_frame(edges, memberships),
        node_frame(edges, memberships),
        memberships.get_column("segment").unique(maintain_order=True).to_list(),
    )


def graphs_of_segments(
    transitions: pl.DataFrame, nodes: pl.DataFrame, segments: list[str]
) -> dict[str, nx.DiGraph]:
    """The graph of each of ``segments`` from the rows of ``marts.transitions`` and
    ``marts.transition_nodes`` (those of other segments are left out): a segment's rows do
    not depend on the other segments, so the marts already computed give its graph. A
    segment without rows (its journeys have no transitions) has an empty graph."""
    return {
        segment: graph_from_frames(
            transitions.filter(pl.col("segment") == segment),
            nodes.filter(pl.col("segment") == segment),
        )
        for segment in segments
    }


def segment_transitions(edges: pl.DataFrame, journeys: pl.DataFrame) -> pl.DataFrame:
    """``marts.transitions`` for the segments ``all``, ``converted`` and ``dropped``."""
    return transition_frame(
        edges, segment_memberships(journeys.select("journey_id", "status"), dimensions=("status",))
    )


GRAPH_FORMATS = (".graphml", ".gexf", ".json")


def export_graph(graph: nx.DiGraph, path: Path) -> Path:
    """Writes a transition graph for Gephi, yEd, Cytoscape or a web page: GraphML
    (``.graphml``), GEXF (``.gexf``) or NetworkX's node-link JSON (``.json``), by the file's
    suffix. An edge attribute with no value (the median time of an edge seen once without
    times) is left out, as those formats have no null.

    Example:
        >>> graph = nx.DiGraph()
        >>> graph.add_edge("START", "product_view", transitions=3)
        >>> import tempfile; folder = Path(tempfile.mkdtemp())
        >>> export_graph(graph, folder / "t.graphml").suffix
        '.graphml'
    """
    clean = nx.DiGraph()
    clean.add_nodes_from(graph.nodes)
    for source, target, data in graph.edges(data=True):
        clean.add_edge(source, target, **{k: v for k, v in data.items() if v is not None})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".graphml":
        nx.write_graphml(clean, path)
    elif path.suffix == ".gexf":
        nx.write_gexf(clean, path)
    elif path.suffix == ".json":
        data = nx.node_link_data(clean, edges="edges")
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    else:
        msg = f"{path}: expected a suffix among {', '.join(GRAPH_FORMATS)}, found {path.suffix!r}"
        raise ValueError(msg)
    return path


def compare_graphs(first: nx.DiGraph, second: nx.DiGraph, *, alpha: float = 0.05) -> pl.DataFrame:
    """Two transition graphs side by side (two segments, or two periods): one row per edge of
    either, with its transitions and share of its origin's exits in each, and whether the
    share changed significantly.

    The test, per edge: a two-sided two-proportion z-test of the share (transitions over the
    origin's exits) in ``first`` against ``second``, with the pooled share for the standard
    error; then Benjamini-Hochberg over all edges tested, at false discovery rate ``alpha``.
    An edge whose origin has no exits in one graph is not tested (``p_value`` null).

    Example:
        >>> a, b = nx.DiGraph(), nx.DiGraph()
        >>> a.add_edge("START", "web", transitions=30); a.add_edge("START", "store", transitions=70)
        >>> b.add_edge("START", "web", transitions=50); b.add_edge("START", "store", transitions=50)
        >>> compare_graphs(a, b).select("to_touchpoint", "significant").rows()
        [('store', True), ('web', True)]
    """
    from statistics import NormalDist  # noqa: PLC0415 - only here

    def edges_of(graph: nx.DiGraph, suffix: str) -> pl.DataFrame:
        rows = [(u, v, int(d.get("transitions", 0))) for u, v, d in graph.edges(data=True)]
        frame = pl.DataFrame(
            rows,
            schema={"from_touchpoint": pl.String, "to_touchpoint": pl.String, "n": pl.Int64},
            orient="row",
        )
        return frame.with_columns(pl.col("n").sum().over("from_touchpoint").alias("exits")).rename(
            {"n": f"transitions_{suffix}", "exits": f"exits_{suffix}"}
        )

    pair = ["from_touchpoint", "to_touchpoint"]
    one, two = edges_of(first, "first"), edges_of(second, "second")
    exits = {
        name: frame.select("from_touchpoint", f"exits_{name}").unique()
        for name, frame in (("first", one), ("second", two))
    }
    both = (
        one.drop("exits_first")
        .join(two.drop("exits_second"), on=pair, how="full", coalesce=True)
        .join(exits["first"], on="from_touchpoint", how="left")
        .join(exits["second"], on="from_touchpoint", how="left")
        .with_columns(
            pl.col(
                "transitions_first", "transitions_second", "exits_first", "exits_second"
            ).fill_null(0)
        )
    )
    n1, n2 = pl.col("transitions_first"), pl.col("transitions_second")
    m1, m2 = pl.col("exits_first"), pl.col("exits_second")
    pooled = (n1 + n2) / (m1 + m2)
    error = (pooled * (1 - pooled) * (1 / m1 + 1 / m2)).sqrt()
    tested = (m1 > 0) & (m2 > 0)
    compared = both.with_columns(
        pl.when(m1 > 0).then(n1 / m1).alias("share_first"),
        pl.when(m2 > 0).then(n2 / m2).alias("share_second"),
        pl.when(tested & (error > 0)).then((n2 / m2 - n1 / m1) / error).alias("z"),
    ).with_columns(
        (pl.col("share_second") - pl.col("share_first")).alias("share_change"),
        pl.when(tested)
        .then(
            pl.col("z")
            .fill_null(0.0)
            .abs()
            .map_elements(lambda z: 2 * (1 - NormalDist().cdf(z)), return_dtype=pl.Float64)
        )
        .alias("p_value"),
    )
    # Benjamini-Hochberg: the k smallest p-values are discoveries, k the largest rank whose
    # p-value is at most rank / m * alpha
    ranked = compared.with_columns(
        pl.col("p_value").rank("ordinal").alias("_rank"),
        pl.col("p_value").count().alias("_m"),
    )
    passing = ranked.filter(pl.col("p_value") <= pl.col("_rank") / pl.col("_m") * alpha)
    cutoff = passing.get_column("_rank").max() if passing.height else 0
    return (
        ranked.with_columns(
            (pl.col("_rank").is_not_null() & (pl.col("_rank") <= cutoff)).alias("significant")
        )
        .drop("_rank", "_m")
        .sort(pair)
    )
