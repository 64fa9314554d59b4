"""journey-analytics: cross-channel customer journeys from clickstream, CRM and POS events.

The notebook API (:mod:`journey_analytics.explore`) is importable from here::

    import journey_analytics as ja
    ja.top_paths("journeys.duckdb")
"""

from __future__ import annotations

from journey_analytics.explore import (
    attribution_credit,
    channel_leakage,
    compare_segments,
    dropoffs,
    funnel,
    paths_around,
    pattern_evidence,
    pattern_hits,
    pattern_share,
    read_table,
    segments,
    top_paths,
    transition_graph,
)

__version__ = "0.1.0"
__all__ = [
    "attribution_credit",
    "channel_leakage",
    "compare_segments",
    "dropoffs",
    "funnel",
    "paths_around",
    "pattern_evidence",
    "pattern_hits",
    "pattern_share",
    "read_table",
    "segments",
    "top_paths",
    "transition_graph",
]
