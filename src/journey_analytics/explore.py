"""Explore: the notebook API. Functions that take the DuckDB file a run wrote and return
Polars frames or NetworkX graphs, for analysts in a notebook or a script.

Each call opens the database read-only and closes it before returning, so a notebook never
holds the file while a scheduled run needs it. Nothing here shows an identifier: frames carry
pseudonymous ``customer_key`` and ``journey_id`` at most. The pure stage functions these read
the results of (``sessions``, ``journeys``, ``graphs``, ``patterns``, ``leakage``,
``attribution``) take frames and can be called on frames directly.

Example::

    import journey_analytics as ja
    ja.top_paths("journeys.duckdb", n=5)
    graph = ja.transition_graph("journeys.duckdb", segment="store=S01")
    ja.compare_segments("journeys.duckdb", "converted", "dropped")
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import networkx as nx
import polars as pl

from journey_analytics import audiences, graphs, journeys
from journey_analytics.errors import NotFoundError
from journey_analytics.warehouse import Warehouse

Database = Path | str


def read_table(database: Database, table: str) -> pl.DataFrame:
    """Every row of one table (``"marts.paths"``, ``"journeys.journeys"``, …)."""
    with Warehouse.open(_existing(database), read_only=True) as wh:
        if not wh.table_exists(table):
            known = ", ".join(sorted(name for s in ("journeys", "marts") for name in wh.tables(s)))
            msg = f"{database} has no table {table!r}; did you mean one of: {known}?"
            raise NotFoundError(msg)
        return wh.read(table)


def _existing(database: Database) -> Path:
    path = Path(database)
    if not path.is_file():
        msg = f"Database {path} not found: run `journey run` first, or pass the file it wrote."
        raise NotFoundError(msg)
    return path


def segments(database: Database) -> pl.DataFrame:
    """The segments of ``marts.transitions`` with their dimension and journeys (START visits)."""
    nodes = read_table(database, "marts.transition_nodes")
    return (
        nodes.filter(pl.col("touchpoint") == graphs.START)
        .select("dimension", "segment", "journeys", "customers")
        .sort("dimension", "segment")
    )


def top_paths(database: Database, *, n: int = 10, by: str = "journeys") -> pl.DataFrame:
    """The ``n`` most common cleaned paths of closed journeys (``marts.paths``), by
    ``journeys`` or ``conversions``."""
    return read_table(database, "marts.paths").sort([by, "path"], descending=[True, False]).head(n)


def paths_around(
    database: Database, touchpoint: str, *, before: int = 2, after: int = 2
) -> pl.DataFrame:
    """What comes before and after a touchpoint: see :func:`journeys.paths_around`."""
    return journeys.paths_around(
        read_table(database, "journeys.journeys"), touchpoint, before=before, after=after
    )


def transition_graph(database: Database, *, segment: str = "all") -> nx.DiGraph:
    """The transition graph of one segment (``all``, ``converted``, ``dropped``,
    ``first_channel=web``, ``store=S01``, ``region=…``, ``cohort=2026-03``,
    ``period=2026-04``), with edge and node attributes."""
    transitions = read_table(database, "marts.transitions").filter(pl.col("segment") == segment)
    if transitions.is_empty():
        known = segments(database).get_column("segment").to_list()
        msg = f"No segment {segment!r} in {database}; the segments are: {', '.join(known)}"
        raise NotFoundError(msg)
    nodes = read_table(database, "marts.transition_nodes").filter(pl.col("segment") == segment)
    return graphs.graph_from_frames(transitions, nodes)


def persona_profiles(database: Database) -> pl.DataFrame:
    """The buyer personas (``marts.personas``): name, description, size, conversion, revenue,
    typical path and the averages they are described by, persona 1 the largest."""
    return read_table(database, "marts.personas").sort("persona")


def by_persona(database: Database, analysis: str) -> pl.DataFrame:
    """An analysis split by persona, with the persona's name: ``funnel``, ``dropoffs``,
    ``patterns``, ``transitions`` or ``paths`` (``marts.persona_<analysis>``)."""
    if analysis not in PERSONA_ANALYSES:
        known = ", ".join(PERSONA_ANALYSES)
        msg = f"No analysis {analysis!r} by persona; did you mean one of: {known}?"
        raise NotFoundError(msg)
    names = read_table(database, "marts.personas").select("persona", "name")
    split = read_table(database, f"marts.persona_{analysis}")
    return names.join(split, on="persona", how="inner").sort(split.columns[:3])


PERSONA_ANALYSES = ("funnel", "dropoffs", "patterns", "transitions", "paths")


def persona_graph(database: Database, persona: int) -> nx.DiGraph:
    """The transition graph of one persona's journeys (``marts.persona_transitions``), with
    edge attributes; the persona's name and size as graph attributes."""
    described = persona_profiles(database).filter(pl.col("persona") == persona)
    if described.is_empty():
        known = ", ".join(
            f"{p} {n}" for p, n in persona_profiles(database).select("persona", "name").iter_rows()
        )
        msg = f"No persona {persona} in {database}; the personas are: {known}"
        raise NotFoundError(msg)
    transitions = read_table(database, "marts.persona_transitions").filter(
        pl.col("persona") == persona
    )
    graph = graphs.graph_from_frames(transitions)
    graph.graph.update(persona=persona, name=described.item(0, "name"))
    graph.graph["customers"] = described.item(0, "customers")
    return graph


def audience_sizes(database: Database) -> pl.DataFrame:
    """Every audience's size at each run, with how many entered and left since the run before
    (``ops.audience_sizes``), the latest run first."""
    return read_table(database, "ops.audience_sizes").sort(
        ["run_at", "audience"], descending=[True, False]
    )


def audience_members(
    database: Database,
    rules: audiences.AudienceRules | str | None = None,
    *,
    as_of: datetime | None = None,
) -> pl.DataFrame:
    """The members of audiences (columns audience, customer_key) as of ``as_of`` (default:
    the end of the data as a run takes it: its last event, or its last load if earlier).
    ``rules``: an :class:`audiences.AudienceRules`, the text of an audiences file (a draft to
    try before adding it to the file the runs read), or None for the members the last run
    stored."""
    if rules is None:
        return read_table(database, "marts.audience_members")
    if isinstance(rules, str):
        rules = audiences.parse_audiences(rules)
    from journey_analytics import jobs  # noqa: PLC0415 - the run's reading, loaded when used

    with Warehouse.open(_existing(database), read_only=True) as wh:
        return jobs.audience_members_in(wh, rules, as_of=as_of)


def audience_export(database: Database, members: pl.DataFrame) -> pl.DataFrame:
    """Members (of one audience) as an export for a CRM: customer_key and the keyed e-mail and
    phone hashes, never a raw identifier (see :func:`audiences.audience_export`)."""
    from journey_analytics import jobs  # noqa: PLC0415 - the run's reading, loaded when used

    with Warehouse.open(_existing(database), read_only=True) as wh:
        identifiers = jobs.member_hashes(wh, members)
    return audiences.audience_export(members, identifiers)


def compare_segments(
    database: Database, first: str, second: str, *, alpha: float = 0.05
) -> pl.DataFrame:
    """Two segments side by side, with the edges whose share changed significantly: see
    :func:`graphs.compare_graphs`."""
    return graphs.compare_graphs(
        transition_graph(database, segment=first),
        transition_graph(database, segment=second),
        alpha=alpha,
    )


def pattern_hits(database: Database, pattern: str | None = None) -> pl.DataFrame:
    """``marts.patterns``: one row per (journey, pattern) with the evidence event ids.

    A ``pattern`` with no hit gives no rows (a rule may match nothing), unless it is another
    spelling of one that has hits (``"ROPO"`` for ``ropo``): then a NotFoundError says which.
    """
    hits = read_table(database, "marts.patterns")
    if pattern is None:
        return hits
    found = hits.filter(pl.col("pattern") == pattern)
    if found.is_empty():
        names = sorted(set(hits.get_column("pattern").to_list()))
        meant = [name for name in names if name.lower() == pattern.lower().replace("-", "_")]
        if meant:
            msg = (
                f"pattern {pattern!r}: no hits. Did you mean {meant[0]!r}? "
                f"Patterns with hits: {', '.join(names)}"
            )
            raise NotFoundError(msg)
    return found


def pattern_evidence(database: Database, journey_id: str) -> pl.DataFrame:
    """The steps of one journey, each marked with the patterns it is evidence of: what
    an analyst checks to believe a ROPO or click-and-collect hit."""
    steps = read_table(database, "journeys.steps").filter(pl.col("journey_id") == journey_id)
    if steps.is_empty():
        msg = f"No journey {journey_id!r} in {database}."
        raise NotFoundError(msg)
    evidence = (
        pattern_hits(database)
        .filter(pl.col("journey_id") == journey_id)
        .explode("evidence_event_ids")
        .group_by(pl.col("evidence_event_ids").alias("event_id"))
        .agg(pl.col("pattern").sort().alias("evidence_of"))
    )
    return (
        steps.join(evidence, on="event_id", how="left")
        .with_columns(pl.col("evidence_of").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select(
            "position",
            "occurred_at",
            "channel",
            "touchpoint",
            "stage",
            "is_conversion",
            "is_fulfilment",
            "store_id",
            "revenue",
            "event_id",
            "evidence_of",
        )
        .sort("position")
    )


def pattern_share(database: Database, *, by: str = "store") -> pl.DataFrame:
    """Per segment of one dimension (``store``, ``region``, ``first_channel``, ``cohort``,
    ``period``): its converted journeys, and for each pattern the converted journeys that
    carry it and their share."""
    memberships = read_table(database, "marts.journey_segments").filter(pl.col("dimension") == by)
    if memberships.is_empty():
        msg = f"No segments by {by!r} in {database}; see [graphs] segments in the config."
        raise NotFoundError(msg)
    converted = read_table(database, "journeys.journeys").filter("converted")
    in_segment = memberships.join(converted.select("journey_id"), on="journey_id")
    totals = in_segment.group_by("segment").agg(pl.len().cast(pl.Int64).alias("conversions"))
    hits = (
        in_segment.join(pattern_hits(database).select("journey_id", "pattern"), on="journey_id")
        .group_by("segment", "pattern")
        .agg(pl.len().cast(pl.Int64).alias("journeys"))
    )
    return (
        hits.join(totals, on="segment")
        .with_columns((pl.col("journeys") / pl.col("conversions")).alias("share"))
        .select("segment", "pattern", "journeys", "conversions", "share")
        .sort("segment", "pattern")
    )


def dropoffs(database: Database) -> pl.DataFrame:
    """``marts.dropoffs``: per touchpoint, journeys through, exits, drop-off and leakage
    rates, highest drop-off rate first."""
    return read_table(database, "marts.dropoffs").sort(
        ["dropoff_rate", "touchpoint"], descending=[True, False]
    )


def channel_leakage(database: Database) -> pl.DataFrame:
    """``marts.leakage``: where journeys that left online went to buy, most first."""
    return read_table(database, "marts.leakage").sort(
        ["journeys", "from_touchpoint"], descending=[True, False]
    )


def funnel(database: Database) -> pl.DataFrame:
    """``marts.funnel``: journeys reaching each stage and dropping off there."""
    return read_table(database, "marts.funnel").sort("stage_order")


def attribution_credit(
    database: Database, *, model: str | None = None, dimension: str = "channel"
) -> pl.DataFrame:
    """``marts.attribution`` for one dimension (``channel`` or ``touchpoint``), one model
    or all, most conversions first."""
    credit = read_table(database, "marts.attribution").filter(pl.col("dimension") == dimension)
    if model is not None:
        credit = credit.filter(pl.col("model") == model)
    return credit.sort(["model", "conversions", "value"], descending=[False, True, False])
