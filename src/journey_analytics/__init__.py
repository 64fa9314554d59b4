"""journey-analytics: cross-channel customer journeys from clickstream, CRM and POS events.

The notebook API (:mod:`journey_analytics.explore`) is importable from here::

    import journey_analytics as ja
    ja.top_paths("journeys.duckdb")
"""

from __future__ import annotations

import os

# Polars' allocator (jemalloc) reads its settings once, when Polars is first imported. Its
# defaults give freed memory back to the system after 0.5 s and spread threads over four
# arenas per core, so a run keeps paying for fresh memory (page faults: ~0.75 s per GB on the
# machines measured). One arena per core, freed memory kept 5 s: 10M events rebuild in
# ~9.5 s instead of ~11 s at the same peak (benchmarks/README.md). Polars appends this to its
# own defaults when it is imported after this package; a setting of the user's is kept.
_POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"  # what Polars 2.1 sets when imported
if os.environ.get("_RJEM_MALLOC_CONF", _POLARS_DEFAULT) == _POLARS_DEFAULT:
    # unset, or inherited from a parent process that imported Polars: not the user's own
    os.environ["_RJEM_MALLOC_CONF"] = f"narenas:{os.cpu_count() or 1},dirty_decay_ms:5000"

from journey_analytics.explore import (  # noqa: E402 - after the allocator's settings
    attribution_credit,
    audience_export,
    audience_members,
    audience_sizes,
    by_persona,
    channel_leakage,
    compare_segments,
    dropoffs,
    funnel,
    paths_around,
    pattern_evidence,
    pattern_hits,
    pattern_share,
    persona_graph,
    persona_profiles,
    read_table,
    segments,
    top_paths,
    transition_graph,
)

__version__ = "0.1.0"
__all__ = [
    "attribution_credit",
    "audience_export",
    "audience_members",
    "audience_sizes",
    "by_persona",
    "channel_leakage",
    "compare_segments",
    "dropoffs",
    "funnel",
    "paths_around",
    "pattern_evidence",
    "pattern_hits",
    "pattern_share",
    "persona_graph",
    "persona_profiles",
    "read_table",
    "segments",
    "top_paths",
    "transition_graph",
]
