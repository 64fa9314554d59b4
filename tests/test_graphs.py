from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import networkx as nx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journey_analytics.graphs import (
    SEGMENT_DIMENSIONS,
    compare_graphs,
    export_graph,
    graphs_of_segments,
    node_frame,
    segment_columns,
    segment_graphs,
    segment_marts,
    segment_memberships,
    segment_transitions,
    transition_edges,
    transition_frame,
    transition_graph,
)
from journey_analytics.journeys import assign_journeys, journey_attributes, summarise_journeys

from ._events import AS_OF, at, scenario

TIMEOUT = timedelta(days=30)


def _edges() -> tuple[pl.DataFrame, pl.DataFrame]:
    steps = assign_journeys(scenario(), timeout=TIMEOUT)
    journeys = summarise_journeys(
        steps, timeout=TIMEOUT, as_of=AS_OF, drop_touchpoints=("sign_in",), collapse_repeats=True
    )
    edges = transition_edges(steps, journeys, drop_touchpoints=("sign_in",), collapse_repeats=True)
    return edges, journeys


def test_transition_edges_per_journey() -> None:
    edges, _ = _edges()
    per_journey: dict[str, list[tuple[str, str, float | None]]] = {}
    for journey_id, source, target, seconds in edges.select(
        "journey_id", "from_touchpoint", "to_touchpoint", "seconds"
    ).iter_rows():
        per_journey.setdefault(journey_id, []).append((source, target, seconds))
    assert per_journey == {
        # the pickup after the order is not a step towards the sale
        "j:web:1": [
            ("START", "product_view", None),
            ("product_view", "add_to_cart", 300.0),
            ("add_to_cart", "order_placed", 300.0),
            ("order_placed", "CONVERSION", None),
        ],
        # two product views around a sign-in fold into one; seconds from the last of them
        "j:web:4": [
            ("START", "product_view", None),
            ("product_view", "store_purchase", 2 * 86400 + 6 * 3600 - 120.0),
            ("store_purchase", "CONVERSION", None),
        ],
        "j:web:7": [
            ("START", "product_view", None),
            ("product_view", "add_to_cart", 86400.0),
            ("add_to_cart", "DROP_OFF", None),
        ],
        "j:web:8": [("START", "product_view", None)],  # open: no end edge yet
        "j:crm:1": [
            ("START", "try_on", None),
            ("try_on", "order_placed", 2 * 86400 + 4 * 3600.0),
            ("order_placed", "CONVERSION", None),
        ],
        "j:crm:30": [
            ("START", "email_click", None),
            ("email_click", "order_placed", 60.0),
            ("order_placed", "CONVERSION", None),
        ],
        "j:crm:40": [
            ("START", "call", None),
            ("call", "store_purchase", 2 * 86400.0),
            ("store_purchase", "CONVERSION", None),
        ],
        "j:app:50": [("START", "order_placed", None), ("order_placed", "CONVERSION", None)],
    }


def test_graph_counts_probabilities_and_reference_count() -> None:
    edges, journeys = _edges()
    graph = transition_graph(edges)
    assert graph.edges["START", "product_view"] == {
        "transitions": 4,
        "customers": 1,
        "median_seconds": None,
        "p90_seconds": None,
        "probability": 4 / 8,
    }
    assert graph.edges["order_placed", "CONVERSION"]["transitions"] == 4
    assert graph.edges["order_placed", "CONVERSION"]["customers"] == 4
    # Reference: a plain Python count of consecutive pairs over the same sequences.
    expected: dict[tuple[str, str], int] = {}
    for _, group in edges.group_by("journey_id"):
        for pair in group.select("from_touchpoint", "to_touchpoint").iter_rows():
            expected[pair] = expected.get(pair, 0) + 1
    assert {
        edge: data["transitions"] for edge, data in ((e[:2], e[2]) for e in graph.edges(data=True))
    } == expected
    # every node's out-probabilities sum to one
    for node in graph.nodes:
        if graph.out_degree(node):
            assert (
                abs(sum(d["probability"] for *_, d in graph.out_edges(node, data=True)) - 1) < 1e-12
            )
    segments = segment_transitions(edges, journeys)
    assert segments.group_by("segment").agg(pl.col("transitions").sum()).sort("segment").rows() == [
        ("all", 22),
        ("converted", 18),
        ("dropped", 3),
    ]


def test_graph_exports_read_back_with_the_same_edges(tmp_path: Path) -> None:
    graph = nx.DiGraph()
    graph.add_edge("START", "product_view", transitions=3, probability=1.0, median_seconds=None)
    graph.add_edge("product_view", "CONVERSION", transitions=2, probability=0.5, p90_seconds=9.5)
    graph.add_edge("product_view", "DROP_OFF", transitions=2, probability=0.5)
    expected = {
        ("START", "product_view"): {"transitions": 3, "probability": 1.0},
        ("product_view", "CONVERSION"): {"transitions": 2, "probability": 0.5, "p90_seconds": 9.5},
        ("product_view", "DROP_OFF"): {"transitions": 2, "probability": 0.5},
    }
    readers = {
        ".graphml": nx.read_graphml,
        ".gexf": nx.read_gexf,
        ".json": lambda path: nx.node_link_graph(
            json.loads(path.read_text()), directed=True, edges="edges"
        ),
    }
    for suffix, read in readers.items():
        back = read(export_graph(graph, tmp_path / f"t{suffix}"))
        edges = {
            (u, v): {k: w for k, w in d.items() if k not in {"id", "label"}}
            for u, v, d in back.edges(data=True)
        }
        assert edges == expected, suffix
    with pytest.raises(ValueError, match="expected a suffix among"):
        export_graph(graph, tmp_path / "t.png")


def test_compare_graphs_tests_each_share_and_controls_false_discoveries() -> None:
    first, second = nx.DiGraph(), nx.DiGraph()
    counts = {
        # origin: ((to, first, second), ...) with 100 exits in each graph
        "A": (("B", 30, 50), ("C", 70, 50)),  # z = +-2.8868, p = 0.00389
        "X": (("Y", 40, 54), ("Z", 60, 46)),  # p = 0.0473: below 0.05, not after BH
        "W": (("U", 50, 51), ("V", 50, 49)),  # p = 0.888
    }
    for origin, edges in counts.items():
        for target, a, b in edges:
            first.add_edge(origin, target, transitions=a)
            second.add_edge(origin, target, transitions=b)
    first.add_edge("C", "D", transitions=5)  # C has no exits in the second graph: not tested
    compared = compare_graphs(first, second, alpha=0.05)
    rows = {
        (f, t): (round(z, 6) if z is not None else None, p, s)
        for f, t, z, p, s in compared.select(
            "from_touchpoint", "to_touchpoint", "z", "p_value", "significant"
        ).rows()
    }
    p_a, p_x, p_w = 0.0038924171227785465, 0.04731468069031486, 0.8875314978075077
    # Benjamini-Hochberg over the 6 tested edges: ranks 1-2 pass (p <= 2/6 x 0.05), the X
    # edges (ranks 3-4, p 0.0473 > 4/6 x 0.05) do not
    assert rows == {
        ("A", "B"): (2.886751, pytest.approx(p_a, rel=1e-9), True),
        ("A", "C"): (-2.886751, pytest.approx(p_a, rel=1e-9), True),
        ("X", "Y"): (1.983472, pytest.approx(p_x, rel=1e-9), False),
        ("X", "Z"): (-1.983472, pytest.approx(p_x, rel=1e-9), False),
        ("W", "U"): (0.141428, pytest.approx(p_w, rel=1e-9), False),
        ("W", "V"): (-0.141428, pytest.approx(p_w, rel=1e-9), False),
        ("C", "D"): (None, None, False),
    }
    # with a looser rate the X edges are discoveries too (4/6 x 0.08 = 0.0533)
    looser = compare_graphs(first, second, alpha=0.08).filter("significant")
    assert looser.height == 4


def test_nodes_count_visits_conversions_and_exits() -> None:
    edges, _ = _edges()
    nodes = {
        row[0]: row[1:]
        for row in node_frame(edges)
        .select("touchpoint", "visits", "journeys", "customers", "conversions", "exits")
        .iter_rows()
    }
    # (visits, journeys, customers, conversions, exits). START's visits are the journeys;
    # the open journey j:web:8 visits product_view but neither converts nor exits.
    assert nodes == {
        "START": (8, 8, 5, 0, 0),
        "product_view": (4, 4, 1, 0, 0),
        "add_to_cart": (2, 2, 1, 0, 1),  # j:web:7 drops off after its cart
        "order_placed": (4, 4, 4, 4, 0),
        "store_purchase": (2, 2, 2, 2, 0),
        "try_on": (1, 1, 1, 0, 0),
        "email_click": (1, 1, 1, 0, 0),
        "call": (1, 1, 1, 0, 0),
        "CONVERSION": (6, 6, 5, 0, 0),
        "DROP_OFF": (1, 1, 1, 0, 0),
    }
    graph = transition_graph(edges)
    assert graph.nodes["add_to_cart"] == {
        "visits": 2,
        "journeys": 2,
        "customers": 1,
        "conversions": 0,
        "exits": 1,
        "exit_rate": 0.5,
    }


def test_segments_by_first_channel_store_region_cohort_and_period() -> None:
    steps = pl.DataFrame(
        {
            "journey_id": ["j1", "j1", "j2", "j3", "j3"],
            "position": [1, 2, 1, 1, 2],
            # j1 converts in S2 after visiting S1: the conversion's store wins; j3 has no
            # conversion and takes the last store it saw; j2 saw no store
            "store_id": ["S1", "S2", None, "S1", "S3"],
            "is_conversion": [False, True, False, False, False],
        }
    )
    journeys = pl.DataFrame(
        {
            "journey_id": ["j1", "j2", "j3"],
            "customer_key": ["a", "a", "b"],
            "status": ["converted", "open", "dropped"],
            "first_channel": ["web", "app", "store"],
            # j2 starts on the last microsecond of March: its period is March, in UTC
            "started_at": [
                at("2026-03-02 10:00"),
                at("2026-03-31 23:59:59.999999"),
                at("2026-04-01 00:00"),
            ],
        }
    )
    attributes = journey_attributes(steps, journeys, store_regions={"S1": "North", "S2": "South"})
    assert attributes.rows() == [
        ("j1", "converted", "web", "S2", "South", "2026-03", "2026-03"),
        ("j2", "open", "app", None, None, "2026-03", "2026-03"),  # a's cohort: her first journey
        ("j3", "dropped", "store", "S3", None, "2026-04", "2026-04"),  # S3 has no region
    ]
    memberships = segment_memberships(attributes, dimensions=("status", "store", "region"))
    assert sorted(memberships.rows()) == [
        ("j1", "all", "all"),
        ("j1", "region", "region=South"),
        ("j1", "status", "converted"),
        ("j1", "store", "store=S2"),
        ("j2", "all", "all"),  # open: in no status segment; no store: in no store segment
        ("j3", "all", "all"),
        ("j3", "status", "dropped"),
        ("j3", "store", "store=S3"),
    ]
    # what marts.journey_edges and marts.journey_facts carry: one row per journey with its
    # segment per dimension, null where it is in none of it or the dimension is not asked for
    wide = segment_columns(attributes, dimensions=("status", "store", "region"))
    assert wide.columns == [
        "journey_id",
        *(f"{dimension}_segment" for dimension in SEGMENT_DIMENSIONS),
    ]
    assert wide.select(
        "journey_id", "status_segment", "store_segment", "region_segment", "cohort_segment"
    ).rows() == [
        ("j1", "converted", "store=S2", "region=South", None),
        ("j2", None, None, None, None),
        ("j3", "dropped", "store=S3", None, None),
    ]
    # the same segments as the memberships, one row per journey
    long = wide.unpivot(index="journey_id", variable_name="dimension", value_name="segment")
    assert sorted(
        long.drop_nulls("segment")
        .select("journey_id", pl.col("dimension").str.strip_suffix("_segment"), "segment")
        .rows()
    ) == sorted(row for row in memberships.rows() if row[1] != "all")
    weekly = journey_attributes(steps, journeys, store_regions={}, period="week")
    assert weekly.get_column("period").to_list() == ["2026-W10", "2026-W14", "2026-W14"]


def test_transitions_per_segment_are_the_graph_of_the_segment_s_journeys() -> None:
    edges, journeys = _edges()
    memberships = segment_memberships(
        journeys.select("journey_id", "status", "first_channel"), dimensions=("first_channel",)
    )
    frame = transition_frame(edges, memberships)
    web = frame.filter(pl.col("segment") == "first_channel=web")
    assert web.select("from_touchpoint", "to_touchpoint", "transitions", "probability").rows() == [
        ("START", "product_view", 4, 1.0),
        ("add_to_cart", "DROP_OFF", 1, 0.5),
        ("add_to_cart", "order_placed", 1, 0.5),
        ("order_placed", "CONVERSION", 1, 1.0),
        ("product_view", "add_to_cart", 2, 2 / 3),
        ("product_view", "store_purchase", 1, 1 / 3),
        ("store_purchase", "CONVERSION", 1, 1.0),
    ]
    # every segment's graph equals the graph built from its journeys' edges alone
    for segment, graph in segment_graphs(edges, memberships).items():
        members = memberships.filter(pl.col("segment") == segment).get_column("journey_id")
        alone = transition_graph(edges.filter(pl.col("journey_id").is_in(members.implode())))
        assert dict(graph.edges.items()) == dict(alone.edges.items()), segment
        assert dict(graph.nodes.items()) == dict(alone.nodes.items()), segment


def test_segment_marts_are_the_transition_and_node_frames() -> None:
    edges, journeys = _edges()
    memberships = segment_memberships(
        journeys.select("journey_id", "status", "first_channel"),
        dimensions=("status", "first_channel"),
    )
    transitions, nodes = segment_marts(edges, memberships)
    assert_frame_equal(transitions, transition_frame(edges, memberships))
    assert_frame_equal(nodes, node_frame(edges, memberships))
    # the graphs taken from the marts' rows are those segment_graphs computes anew
    exported = ["all", "converted"]
    from_marts = graphs_of_segments(transitions, nodes, exported)
    anew = segment_graphs(edges, memberships, segments=tuple(exported))
    assert list(from_marts) == exported
    for segment in exported:
        assert dict(from_marts[segment].edges.items()) == dict(anew[segment].edges.items())
        assert dict(from_marts[segment].nodes.items()) == dict(anew[segment].nodes.items())
