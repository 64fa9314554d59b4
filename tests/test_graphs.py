from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import networkx as nx
import polars as pl
import pytest

from journey_analytics.graphs import (
    compare_graphs,
    export_graph,
    segment_transitions,
    transition_edges,
    transition_graph,
)
from journey_analytics.journeys import assign_journeys, summarise_journeys

from ._events import AS_OF, scenario

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
