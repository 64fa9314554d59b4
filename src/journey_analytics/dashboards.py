"""The leadership dashboard: plotly figures and one self-contained HTML page from the marts.

Input: the marts tables (``marts.transitions``, ``marts.dropoffs``, ``marts.funnel``,
``marts.patterns``, ``marts.paths``, ``marts.attribution``, ``marts.period_kpis``,
``marts.pattern_periods``, ``marts.pattern_kpis``, ``marts.segment_kpis``, ``marts.leakage``)
as Polars frames in a :class:`DashboardData`.
Output: one figure per chart (:func:`build_figures`) and one HTML document
(:func:`render_dashboard`) with plotly.js inlined once, so the page opens with no network.

Privacy: the page shows aggregates only. Sankey links, paths, stores and regions with fewer
than ``min_group_size`` journeys are not shown individually, and no journey, customer or event
identifier from ``marts.patterns`` reaches a figure or the page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from journey_analytics.errors import JourneyError, format_problems

START = "START"
CONVERSION = "CONVERSION"
DROP_OFF = "DROP_OFF"

OMNICHANNEL_PATTERNS = ("ropo", "click_and_collect", "try_and_buy")

OTHER = "OTHER"  # the Sankey's node for the touchpoints it does not draw one by one
_SPECIAL_LABELS = {START: "Start", CONVERSION: "Conversion", DROP_OFF: "Drop-off", OTHER: "Other"}
_PATTERN_ORDER = ("ropo", "click_and_collect", "try_and_buy", "online_only", "offline_only")
_PATTERN_LABELS = {
    "ropo": "ROPO",
    "click_and_collect": "Click & collect",
    "try_and_buy": "Try & buy",
    "online_only": "Online only",
    "offline_only": "Offline only",
}
_VARIANT_LABELS = {"collected": "collected", "no_show": "no-show"}
_MODEL_ORDER = ("first_touch", "last_touch", "linear", "position_based", "markov")
_MODEL_COLOURS = {
    "first_touch": "#4c78a8",
    "last_touch": "#f58518",
    "linear": "#54a24b",
    "position_based": "#b279a2",
    "markov": "#e45756",
}
_STAGE_COLOURS = ("#1f4e79", "#2e6da4", "#3f86c6", "#5aa0d8", "#7fb8e3", "#a6cfee")

_BLUE = "#2e6da4"
_GREEN = "#2e9d5b"
_RED = "#d1495b"
_GREY = "#7f8c8d"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

# The marts the dashboard reads that older callers may not pass: empty by default.
_PERIOD_KPIS = {
    "period_start": pl.Date, "period": pl.String, "is_settled": pl.Boolean,
    "journeys": pl.Int64, "conversions": pl.Int64, "conversion_rate": pl.Float64,
    "revenue": pl.Float64, "omnichannel_share": pl.Float64,
    "median_seconds_to_convert": pl.Float64,
}  # fmt: skip
_PATTERN_PERIODS = {
    "period_start": pl.Date, "period": pl.String, "pattern": pl.String, "variant": pl.String,
    "journeys": pl.Int64, "revenue": pl.Float64,
}  # fmt: skip
_PATTERN_KPIS = {
    "pattern": pl.String, "variant": pl.String, "journeys": pl.Int64, "revenue": pl.Float64,
    "median_seconds_to_convert": pl.Float64, "p90_seconds_to_convert": pl.Float64,
}  # fmt: skip
_SEGMENT_KPIS = {
    "dimension": pl.String, "segment": pl.String, "journeys": pl.Int64,
    "conversions": pl.Int64, "conversion_rate": pl.Float64, "revenue": pl.Float64,
    "omnichannel_share": pl.Float64,
}  # fmt: skip
_LEAKAGE = {"from_stage": pl.String, "journeys": pl.Int64}
_PERSONAS = {
    "persona": pl.Int32, "name": pl.String, "description": pl.String, "customers": pl.Int64,
    "share_of_customers": pl.Float64, "conversion_rate": pl.Float64,
    "basket_value": pl.Float64, "typical_path": pl.String,
}  # fmt: skip
_SCORECARD = {
    "touchpoint": pl.String, "is_managed": pl.Boolean, "journeys_through": pl.Int64,
    "reach": pl.Float64, "lift": pl.Float64, "dropoff_rate": pl.Float64,
    "leakage_rate": pl.Float64, "removal_effect": pl.Float64,
    "median_seconds_to_next": pl.Float64, "reach_trend": pl.Float64,
    "is_strength": pl.Boolean, "is_weakness": pl.Boolean, "is_opportunity": pl.Boolean,
    "is_threat": pl.Boolean, "swot": pl.String,
}  # fmt: skip

_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "transitions": ("segment", "from_touchpoint", "to_touchpoint", "transitions", "probability"),
    "dropoffs": ("touchpoint", "journeys_through", "exits", "dropoff_rate"),
    "funnel": ("stage_order", "stage", "journeys", "share_of_journeys", "dropoffs", "dropoff_rate"),
    "patterns": ("journey_id", "pattern", "variant", "revenue"),
    "paths": ("path", "steps", "journeys", "conversions", "conversion_rate",
              "median_duration_seconds"),
    "attribution": ("model", "dimension", "value", "conversions", "revenue"),
    "period_kpis": tuple(_PERIOD_KPIS),
    "pattern_periods": tuple(_PATTERN_PERIODS),
    "pattern_kpis": tuple(_PATTERN_KPIS),
    "segment_kpis": tuple(_SEGMENT_KPIS),
    "leakage": ("from_stage", "journeys"),
    "personas": tuple(_PERSONAS),
    "scorecard": tuple(_SCORECARD),
}  # fmt: skip


class DashboardDataError(JourneyError):
    """A mart handed to the dashboard lacks columns the dashboard reads."""


@dataclass(frozen=True)
class DashboardData:
    """The marts the dashboard reads, one Polars frame per ``marts.*`` table."""

    transitions: pl.DataFrame
    dropoffs: pl.DataFrame
    funnel: pl.DataFrame
    patterns: pl.DataFrame
    paths: pl.DataFrame
    attribution: pl.DataFrame
    period_kpis: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_PERIOD_KPIS))
    pattern_periods: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=_PATTERN_PERIODS)
    )
    pattern_kpis: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_PATTERN_KPIS))
    segment_kpis: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_SEGMENT_KPIS))
    leakage: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_LEAKAGE))
    personas: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_PERSONAS))
    scorecard: pl.DataFrame = field(  # marts.touchpoint_scorecard
        default_factory=lambda: pl.DataFrame(schema=_SCORECARD)
    )


@dataclass(frozen=True)
class _SankeySelection:
    """The Sankey links to draw, and what was left out and why."""

    links: pl.DataFrame  # from_touchpoint, to_touchpoint, transitions, probability
    grouped_touchpoints: int  # drawn as one node, OTHER
    self_loops: int
    self_loop_transitions: int
    small_links: int
    small_link_transitions: int
    over_limit_links: int
    over_limit_transitions: int


@dataclass(frozen=True)
class _Kpis:
    """The KPI header: one period of ``marts.period_kpis`` and the one before it."""

    current: dict[str, Any] | None  # a row of marts.period_kpis
    previous: dict[str, Any] | None
    settled: bool  # the current period's drop-offs are all known


@dataclass(frozen=True)
class _Metric:
    column: str
    name: str
    note: str
    in_points: bool  # a share: its change in percentage points, not in per cent
    higher_is_better: bool | None


_METRICS = (
    _Metric("journeys", "Journeys", "closed journeys that ended in the period", False, True),
    _Metric("conversion_rate", "Conversion rate", "conversions / journeys", True, True),
    _Metric("revenue", "Revenue", "of the converted journeys", False, True),
    _Metric(
        "omnichannel_share",
        "Omnichannel share",
        "of conversions: ROPO, click &amp; collect or try &amp; buy",
        True,
        True,
    ),
    _Metric(
        "median_seconds_to_convert",
        "Median time to convert",
        "first touch to purchase",
        False,
        None,
    ),
)


# ── validation ──────────────────────────────────────────────────────────────────────────────


def _check_columns(data: DashboardData) -> None:
    """Raises one error listing every missing column of every mart."""
    problems = []
    for mart, required in _REQUIRED_COLUMNS.items():
        frame: pl.DataFrame = getattr(data, mart)
        missing = [column for column in required if column not in frame.columns]
        if missing:
            problems.append(
                f"marts.{mart}: missing column(s) {', '.join(missing)}; "
                f"found {', '.join(frame.columns) or 'no columns'}"
            )
    if problems:
        msg = format_problems("The marts cannot be drawn", problems)
        raise DashboardDataError(msg)


# ── labels and formats ──────────────────────────────────────────────────────────────────────


def _label(name: str) -> str:
    """A readable, HTML-escaped label: ``product_view`` → ``product view``, ``START`` → ``Start``.

    Plotly reads labels as pseudo-HTML, so they are escaped like any text put in the page.
    """
    return html.escape(_SPECIAL_LABELS.get(name, name.replace("_", " ")))


def _pattern_label(pattern: str, variant: str | None) -> str:
    label = _PATTERN_LABELS.get(pattern, pattern.replace("_", " "))
    if variant is not None:
        label = f"{label}: {_VARIANT_LABELS.get(variant, variant.replace('_', ' '))}"
    return html.escape(label)


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _fmt_duration(seconds: float) -> str:
    """``90061`` → ``1 d 1 h``; ``3900`` → ``1 h 5 min``; ``45`` → ``45 s``."""
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _path_label(path: str) -> str:
    return " → ".join(_label(step) for step in path.split(" > "))


def _style(fig: go.Figure, *, height: int) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 20, "r": 20, "t": 40, "b": 20},
        font={"family": _FONT, "size": 13, "color": "#1d2733"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "xanchor": "left", "x": 0},
        hoverlabel={"font": {"family": _FONT}},
    )
    return fig


# ── data preparation ────────────────────────────────────────────────────────────────────────


def _select_sankey_links(
    transitions: pl.DataFrame,
    *,
    min_group_size: int,
    max_sankey_links: int,
    max_sankey_nodes: int = 12,
    segment: str = "all",
) -> _SankeySelection:
    """Picks the links of ``segment`` that the Sankey draws.

    Touchpoints beyond the ``max_sankey_nodes`` with the most moves through them become one
    node, ``OTHER``, and their links are added up (a link's probability is then its share of
    its origin's moves). Then self-loops go (a plotly Sankey cannot draw them), then links
    with fewer than ``min_group_size`` transitions, then all but the ``max_sankey_links``
    largest links (ties broken by name so the choice is stable).
    """
    edges = transitions.filter(pl.col("segment") == segment).select(
        "from_touchpoint", "to_touchpoint", pl.col("transitions").cast(pl.Int64)
    )
    through = (
        pl.concat(
            [
                edges.select(pl.col("from_touchpoint").alias("node"), "transitions"),
                edges.select(pl.col("to_touchpoint").alias("node"), "transitions"),
            ]
        )
        .filter(~pl.col("node").is_in(list(_SPECIAL_LABELS)))
        .group_by("node")
        .agg(pl.col("transitions").sum())
        .sort(["transitions", "node"], descending=[True, False])
    )
    kept = [*through.head(max_sankey_nodes)["node"].to_list(), *_SPECIAL_LABELS]
    edges = (
        edges.with_columns(
            pl.when(pl.col(end).is_in(kept)).then(pl.col(end)).otherwise(pl.lit(OTHER)).alias(end)
            for end in ("from_touchpoint", "to_touchpoint")
        )
        .group_by("from_touchpoint", "to_touchpoint")
        .agg(pl.col("transitions").sum())
        .with_columns(
            probability=pl.col("transitions") / pl.col("transitions").sum().over("from_touchpoint")
        )
    )
    is_loop = pl.col("from_touchpoint") == pl.col("to_touchpoint")
    loops = edges.filter(is_loop)
    edges = edges.filter(~is_loop)
    is_small = pl.col("transitions") < min_group_size
    small = edges.filter(is_small)
    ranked = edges.filter(~is_small).sort(
        ["transitions", "from_touchpoint", "to_touchpoint"], descending=[True, False, False]
    )
    over_limit = ranked.slice(max_sankey_links)
    return _SankeySelection(
        links=ranked.head(max_sankey_links),
        grouped_touchpoints=max(0, through.height - max_sankey_nodes),
        self_loops=loops.height,
        self_loop_transitions=int(loops["transitions"].sum()),
        small_links=small.height,
        small_link_transitions=int(small["transitions"].sum()),
        over_limit_links=over_limit.height,
        over_limit_transitions=int(over_limit["transitions"].sum()),
    )


def _sankey_nodes(links: pl.DataFrame) -> list[str]:
    """Start first, touchpoints by name, then Other, Conversion and Drop-off last."""
    names = set(links["from_touchpoint"].to_list()) | set(links["to_touchpoint"].to_list())
    touchpoints = sorted(names - set(_SPECIAL_LABELS))
    head = [START] if START in names else []
    tail = [name for name in (OTHER, CONVERSION, DROP_OFF) if name in names]
    return head + touchpoints + tail


def _pattern_counts(patterns: pl.DataFrame) -> pl.DataFrame:
    """One row per (pattern, variant): journeys and revenue, in the dashboard's order.

    The variant is kept only where it means something (click-and-collect: collected or
    no-show), so a stray variant elsewhere does not split a bar.
    """
    order = {pattern: index for index, pattern in enumerate(_PATTERN_ORDER)}
    return (
        patterns.with_columns(
            pl.when(pl.col("pattern") == "click_and_collect")
            .then(pl.col("variant"))
            .alias("variant")
        )
        .group_by("pattern", "variant")
        .agg(
            pl.col("journey_id").n_unique().cast(pl.Int64).alias("journeys"),
            pl.col("revenue").cast(pl.Float64).sum().alias("revenue"),
        )
        .with_columns(
            pl.col("pattern")
            .replace_strict(order, default=len(order), return_dtype=pl.Int64)
            .alias("pattern_order")
        )
        .sort(["pattern_order", "pattern", "variant"], nulls_last=True)
        .drop("pattern_order")
    )


def _top_paths(paths: pl.DataFrame, *, min_group_size: int, limit: int = 10) -> pl.DataFrame:
    """The ``limit`` most followed paths among those with at least ``min_group_size`` journeys."""
    return (
        paths.filter(pl.col("journeys") >= min_group_size)
        .sort(["journeys", "conversions", "path"], descending=[True, True, False])
        .head(limit)
    )


def _compute_kpis(period_kpis: pl.DataFrame) -> _Kpis:
    """The latest settled period (all its drop-offs known; else the latest one) and the
    period before it."""
    rows = period_kpis.sort("period_start")
    settled = rows.filter(pl.col("is_settled"))
    candidates = settled if settled.height else rows
    if candidates.is_empty():
        return _Kpis(None, None, settled=False)
    current = candidates.row(-1, named=True)
    before = rows.filter(pl.col("period_start") < current["period_start"])
    previous = before.row(-1, named=True) if before.height else None
    return _Kpis(current, previous, settled=bool(settled.height))


def _metric_value(metric: _Metric, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric.in_points:
        return _fmt_pct(value)
    if metric.column == "median_seconds_to_convert":
        return _fmt_duration(value)
    return _fmt_int(value)


def _change(metric: _Metric, now: float | None, before: float | None) -> tuple[str, float] | None:
    """The change from ``before`` to ``now`` as text (``+12.5%``, ``-1.2 pts``) and its size
    relative to ``before`` (to rank changes); None when either is missing or ``before`` is 0."""
    if now is None or before is None or (before == 0 and not metric.in_points):
        return None
    # a share from 0: ranked by its change in points (0 to 25% ranks as +25%)
    relative = now / before - 1 if before else now - before
    text = f"{(now - before) * 100:+.1f} pts" if metric.in_points else f"{relative:+.1%}"
    return text.replace("-", "\N{MINUS SIGN}"), relative


def _pattern_change_sentences(
    pattern_periods: pl.DataFrame, current: str, previous: str
) -> list[tuple[float, str]]:
    """Per omnichannel pattern: its converted journeys in ``previous`` and ``current``."""
    counts = (
        pattern_periods.filter(pl.col("pattern").is_in(OMNICHANNEL_PATTERNS))
        .group_by("pattern", "period")
        .agg(pl.col("journeys").cast(pl.Int64).sum())
    )
    found = {(pattern, period): journeys for pattern, period, journeys in counts.iter_rows()}
    sentences = []
    for pattern in OMNICHANNEL_PATTERNS:
        now, before = found.get((pattern, current), 0), found.get((pattern, previous), 0)
        if now == before or not before:
            continue
        relative = now / before - 1
        verb = "rose" if now > before else "fell"
        sentences.append(
            (
                abs(relative),
                f"{_pattern_label(pattern, None)} purchases {verb} from {_fmt_int(before)} to "
                f"{_fmt_int(now)} ({relative:+.0%}).".replace("-", "\N{MINUS SIGN}"),
            )
        )
    return sentences


def _summary(kpis: _Kpis, pattern_periods: pl.DataFrame, *, limit: int = 4) -> list[str]:
    """The biggest changes from the previous period to the KPI period, as sentences, largest
    relative change first; a note when the period's drop-offs are not all known yet."""
    if kpis.current is None:
        return ["No journey has ended yet: there is nothing to compare."]
    current, previous = kpis.current, kpis.previous
    notes = []
    if not kpis.settled:
        notes.append(
            f"{html.escape(current['period'])} is still recent: it is not over, or journeys "
            "that will drop off are not all known yet, so its conversion rate reads high."
        )
    if previous is None:
        return [*notes, f"{html.escape(current['period'])} is the first period in the data."]
    ranked = []
    for metric in _METRICS:
        change = _change(metric, current[metric.column], previous[metric.column])
        if change is None or change[1] == 0:
            continue
        text, relative = change
        verb = "rose" if relative > 0 else "fell"
        before = _metric_value(metric, previous[metric.column])
        now = _metric_value(metric, current[metric.column])
        ranked.append((abs(relative), f"{metric.name} {verb} from {before} to {now} ({text})."))
    ranked += _pattern_change_sentences(pattern_periods, current["period"], previous["period"])
    ranked.sort(key=lambda item: -item[0])
    head = (
        f"{html.escape(current['period'])} against {html.escape(previous['period'])}: "
        if ranked
        else ""
    )
    changes = [sentence for _, sentence in ranked[:limit]]
    if not changes:
        changes = ["No key figure changed."]
    return [*notes, head + changes[0], *changes[1:]]


# ── figures ─────────────────────────────────────────────────────────────────────────────────


def _sankey_trace(
    selection: _SankeySelection, *, segment: str, position: int, visible: bool
) -> go.Sankey:
    links = selection.links
    nodes = _sankey_nodes(links)
    index = {name: position for position, name in enumerate(nodes)}
    node_colours = {START: _GREY, OTHER: "#b6bec8", CONVERSION: _GREEN, DROP_OFF: _RED}
    link_colours = {CONVERSION: "rgba(46,157,91,0.35)", DROP_OFF: "rgba(209,73,91,0.30)"}
    targets = links["to_touchpoint"].to_list()
    return go.Sankey(
        # a uid names a CSS class in plotly.js's image export: no "=" of a segment's name
        uid="sankey" if position == 0 else f"sankey-{position}",
        name=segment,
        visible=visible,
        arrangement="snap",
        valueformat=",d",
        node={
            "label": [_label(name) for name in nodes],
            "customdata": nodes,
            "color": [node_colours.get(name, _BLUE) for name in nodes],
            "pad": 18,
            "thickness": 16,
            "line": {"width": 0},
            "hovertemplate": "%{label}: %{value:,} transitions<extra></extra>",
        },
        link={
            "source": [index[name] for name in links["from_touchpoint"].to_list()],
            "target": [index[name] for name in targets],
            "value": links["transitions"].to_list(),
            "customdata": links["probability"].to_list(),
            "color": [link_colours.get(name, "rgba(127,140,141,0.30)") for name in targets],
            "hovertemplate": (
                "%{source.label} → %{target.label}<br>%{value:,} transitions"
                "<br>%{customdata:.0%} of the moves out of %{source.label}<extra></extra>"
            ),
        },
    )


def _segment_label(segment: str) -> str:
    """``all`` → ``All journeys``; ``first_channel=web`` → ``First channel: web``."""
    if segment == "all":
        return "All journeys"
    dimension, found, value = segment.partition("=")
    if not found:
        return html.escape(segment.capitalize())
    return html.escape(f"{dimension.replace('_', ' ').capitalize()}: {value}")


def _sankey_segments(transitions: pl.DataFrame, *, limit: int) -> list[str]:
    """The segments the Sankey's menu offers: ``all``, ``converted`` and ``dropped`` first,
    then the others by name, at most ``limit``."""
    present = transitions.get_column("segment").unique().to_list()
    head = [segment for segment in ("all", "converted", "dropped") if segment in present]
    return (head + sorted(set(present) - set(head)))[:limit]


def _sankey_figure(
    transitions: pl.DataFrame,
    *,
    min_group_size: int,
    max_sankey_links: int,
    max_sankey_nodes: int,
    max_segments: int,
) -> go.Figure:
    """The Sankey of segment ``all`` (the first trace), and a menu that shows another segment
    instead; each segment's links are chosen as for ``all``."""
    selections = {
        segment: _select_sankey_links(
            transitions,
            min_group_size=min_group_size,
            max_sankey_links=max_sankey_links,
            max_sankey_nodes=max_sankey_nodes,
            segment=segment,
        )
        for segment in ["all", *_sankey_segments(transitions, limit=max_segments)]
    }
    # a segment with no link to draw is not offered; without links in "all", no Sankey at all
    # (plotly.js fails on a Sankey without nodes)
    drawn = [segment for segment, selection in selections.items() if selection.links.height]
    if "all" not in drawn:
        drawn = []
    fig = go.Figure(
        [
            _sankey_trace(
                selections[segment], segment=segment, position=position, visible=position == 0
            )
            for position, segment in enumerate(drawn)
        ]
    )
    nodes = max((len(_sankey_nodes(selections[segment].links)) for segment in drawn), default=0)
    fig = _style(fig, height=max(460, 34 * nodes))
    if len(drawn) > 1:
        fig.update_layout(
            updatemenus=[
                {
                    "type": "dropdown",
                    "x": 0,
                    "xanchor": "left",
                    "y": 1.02,
                    "yanchor": "bottom",
                    "showactive": True,
                    "buttons": [
                        {
                            "label": _segment_label(segment),
                            "method": "restyle",
                            "args": [{"visible": [other == segment for other in drawn]}],
                        }
                        for segment in drawn
                    ],
                }
            ],
            margin={"t": 60},
        )
    if not selections["all"].links.height:
        fig.add_annotation(text="No link is large enough to draw.", showarrow=False)
    return fig


def _funnel_figure(
    funnel: pl.DataFrame, leakage: pl.DataFrame, *, min_group_size: int
) -> go.Figure:
    rows = funnel.sort("stage_order")
    leaked = {
        stage: journeys
        for stage, journeys in leakage.group_by("from_stage")
        .agg(pl.col("journeys").cast(pl.Int64).sum())
        .iter_rows()
        if journeys >= min_group_size
    }
    stages = [_label(stage).capitalize() for stage in rows["stage"].to_list()]
    dropped = rows["dropoffs"].cast(pl.Int64).to_list()
    dropped_rate = rows["dropoff_rate"].cast(pl.Float64).to_list()
    trace = go.Funnel(
        name="funnel",
        y=stages,
        x=rows["journeys"].cast(pl.Int64).to_list(),
        customdata=rows.select(
            pl.col("share_of_journeys").cast(pl.Float64),
            pl.col("dropoffs").cast(pl.Int64),
            pl.col("dropoff_rate").cast(pl.Float64),
        ).rows(),
        texttemplate="%{x:,} (%{customdata[0]:.0%})",
        textposition="auto",
        hovertemplate=(
            "%{y}: %{x:,} journeys reach this stage (%{customdata[0]:.1%})"
            "<br>%{customdata[1]:,} dropped out here (%{customdata[2]:.1%})<extra></extra>"
        ),
        marker={"color": [_STAGE_COLOURS[i % len(_STAGE_COLOURS)] for i in range(len(stages))]},
        connector={"fillcolor": "#e8eef5"},
    )
    fig = _style(go.Figure(trace), height=max(320, (80 if leaked else 64) * len(stages)))
    # The drop-offs of each stage sit under its name, so no text is cut by the plot's edge.
    ticks = [
        f"<b>{stage}</b><br><span style='font-size:11.5px;color:{_RED}'>"
        f"{_fmt_int(count)} dropped here ({_fmt_pct(rate)})</span>"
        if count
        else f"<b>{stage}</b><br><span style='font-size:11.5px;color:{_GREY}'>no drop-off</span>"
        for stage, count, rate in zip(stages, dropped, dropped_rate, strict=True)
    ]
    # leakage: journeys whose last online step was at this stage and that bought offline
    ticks = [
        f"{tick}<br><span style='font-size:11.5px;color:{_GREEN}'>"
        f"{_fmt_int(leaked[name])} left online, bought offline</span>"
        if leaked.get(name)
        else tick
        for tick, name in zip(ticks, rows["stage"].to_list(), strict=True)
    ]
    fig.update_yaxes(tickvals=stages, ticktext=ticks, automargin=True)
    fig.update_layout(margin={"l": 20, "r": 20, "t": 30, "b": 10})
    return fig


def _paired_bars(
    labels: list[str],
    left: go.Bar,
    right: go.Bar,
    *,
    titles: tuple[str, str],
) -> go.Figure:
    """Two horizontal bar charts side by side over the same categories, first at the top.

    Values are written at the end of each bar, so the x axes carry no ticks.
    """
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06, subplot_titles=titles
    )
    for col, bar in enumerate((left, right), start=1):
        bar.update(orientation="h", y=labels, textposition="outside", cliponaxis=False)
        fig.add_trace(bar, row=1, col=col)
    fig = _style(fig, height=max(260, 46 * len(labels) + 90))
    fig.update_layout(showlegend=False, margin={"l": 20, "r": 70, "t": 60, "b": 10})
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=True, rangemode="tozero")
    fig.update_yaxes(autorange="reversed", automargin=True, ticksuffix="  ", row=1, col=1)
    return fig


def _dropoffs_figure(dropoffs: pl.DataFrame) -> go.Figure:
    rows = dropoffs.sort(["exits", "touchpoint"], descending=[True, False])
    labels = [_label(name) for name in rows["touchpoint"].to_list()]
    exits = rows["exits"].cast(pl.Int64).to_list()
    rates = rows["dropoff_rate"].cast(pl.Float64).to_list()
    through = rows["journeys_through"].cast(pl.Int64).to_list()
    left = go.Bar(
        name="exits",
        x=exits,
        customdata=through,
        text=[_fmt_int(value) for value in exits],
        marker={"color": _RED},
        hovertemplate="%{y}: %{x:,} exits of %{customdata:,} journeys through it<extra></extra>",
    )
    right = go.Bar(
        name="dropoff_rate",
        x=rates,
        customdata=through,
        text=[_fmt_pct(value) for value in rates],
        marker={"color": "#8c5a66"},
        hovertemplate="%{y}: %{x:.1%} of %{customdata:,} journeys end here<extra></extra>",
    )
    fig = _paired_bars(
        labels,
        left,
        right,
        titles=("Journeys ending here without a purchase", "Drop-off rate"),
    )
    fig.update_xaxes(range=[0, 1.0], row=1, col=2)
    return fig


def _patterns_figure(counts: pl.DataFrame) -> go.Figure:
    labels = [
        _pattern_label(pattern, variant)
        for pattern, variant in counts.select("pattern", "variant").iter_rows()
    ]
    journeys = counts["journeys"].to_list()
    revenue = counts["revenue"].to_list()
    left = go.Bar(
        name="journeys",
        x=journeys,
        text=[_fmt_int(value) for value in journeys],
        marker={"color": _BLUE},
        hovertemplate="%{y}: %{x:,} journeys<extra></extra>",
    )
    right = go.Bar(
        name="revenue",
        x=revenue,
        text=[_fmt_int(value) for value in revenue],
        marker={"color": _GREEN},
        hovertemplate="%{y}: revenue %{x:,.2f}<extra></extra>",
    )
    return _paired_bars(labels, left, right, titles=("Converted journeys", "Revenue"))


def _pattern_trend_figure(pattern_periods: pl.DataFrame, *, min_group_size: int) -> go.Figure:
    """Per omnichannel pattern and period: converted journeys (top) and revenue (bottom); a
    period with fewer than ``min_group_size`` of a pattern's journeys is a gap in its line."""
    rows = (
        pattern_periods.filter(pl.col("pattern").is_in(OMNICHANNEL_PATTERNS))
        .group_by("period_start", "period", "pattern")
        .agg(pl.col("journeys").cast(pl.Int64).sum(), pl.col("revenue").cast(pl.Float64).sum())
        .sort("period_start")
    )
    periods = rows.select("period_start", "period").unique().sort("period_start")
    labels = periods["period"].to_list()
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=("Converted journeys", "Revenue"),
    )
    colours = dict(zip(OMNICHANNEL_PATTERNS, (_BLUE, _GREEN, "#b279a2"), strict=True))
    for pattern in OMNICHANNEL_PATTERNS:
        of = dict(
            (period, (journeys, revenue))
            for period, journeys, revenue in rows.filter(pl.col("pattern") == pattern)
            .select("period", "journeys", "revenue")
            .iter_rows()
        )
        if not of:
            continue
        for row, position, unit in ((1, 0, "journeys"), (2, 1, "revenue")):
            fig.add_trace(
                go.Scatter(
                    name=_pattern_label(pattern, None),
                    legendgroup=pattern,
                    showlegend=row == 1,
                    mode="lines+markers",
                    x=labels,
                    y=[
                        value[position] if value[0] >= min_group_size else None
                        for value in (of.get(period, (0, 0.0)) for period in labels)
                    ],
                    line={"color": colours[pattern], "width": 2.5},
                    hovertemplate=f"%{{x}}: %{{y:,.0f}} {unit} (%{{fullData.name}})<extra></extra>",
                ),
                row=row,
                col=1,
            )
    fig = _style(fig, height=520)
    fig.update_xaxes(type="category")
    fig.update_yaxes(rangemode="tozero")
    if not labels:
        fig.add_annotation(text="No omnichannel purchase yet.", showarrow=False)
    return fig


def _time_to_convert_figure(pattern_kpis: pl.DataFrame, *, min_group_size: int) -> go.Figure:
    """Per pattern (and variant) with at least ``min_group_size`` journeys: the median days
    from the first touch to the purchase."""
    order = {pattern: index for index, pattern in enumerate(_PATTERN_ORDER)}
    rows = (
        pattern_kpis.filter(
            pl.col("median_seconds_to_convert").is_not_null()
            & (pl.col("journeys") >= min_group_size)
        )
        .with_columns(
            pl.col("pattern")
            .replace_strict(order, default=len(order), return_dtype=pl.Int64)
            .alias("pattern_order")
        )
        .sort(["pattern_order", "pattern", "variant"], nulls_last=True)
    )
    days = (rows["median_seconds_to_convert"].cast(pl.Float64) / 86_400).to_list()
    p90 = (rows["p90_seconds_to_convert"].cast(pl.Float64) / 86_400).to_list()
    labels = [_pattern_label(p, v) for p, v in rows.select("pattern", "variant").iter_rows()]
    bar = go.Bar(
        name="median_days",
        orientation="h",
        y=labels,
        x=days,
        customdata=list(zip(p90, rows["journeys"].cast(pl.Int64).to_list(), strict=True)),
        text=[f"{value:.1f} d" for value in days],
        textposition="outside",
        cliponaxis=False,
        marker={"color": _BLUE},
        hovertemplate=(
            "%{y}: median %{x:.1f} days, 90% within %{customdata[0]:.1f} days"
            "<br>%{customdata[1]:,} journeys<extra></extra>"
        ),
    )
    fig = _style(go.Figure(bar), height=max(240, 46 * len(labels) + 60))
    fig.update_layout(showlegend=False, margin={"l": 20, "r": 70, "t": 20, "b": 30})
    fig.update_xaxes(title_text="days from the first touch to the purchase", rangemode="tozero")
    fig.update_yaxes(autorange="reversed", automargin=True, ticksuffix="  ")
    return fig


def _has_hidden_store(segment_kpis: pl.DataFrame, min_group_size: int) -> bool:
    """Some store has too few journeys to be shown: then no region is shown either, since a
    region's figures less those of its shown stores would give the hidden one away."""
    stores = segment_kpis.filter(pl.col("dimension") == "store")
    return bool((stores["journeys"] < min_group_size).any())


def _stores_figure(segment_kpis: pl.DataFrame, *, min_group_size: int) -> go.Figure:
    """Per region, then per store, with at least ``min_group_size`` closed journeys: journeys
    and conversion rate."""
    rows = (
        segment_kpis.filter(
            pl.col("dimension").is_in(["region", "store"])
            & (pl.col("journeys") >= min_group_size)
            & (
                (pl.col("dimension") == "store")
                | pl.lit(not _has_hidden_store(segment_kpis, min_group_size))
            )
        )
        .with_columns((pl.col("dimension") == "store").alias("is_store"))
        .sort(["is_store", "journeys", "segment"], descending=[False, True, False])
    )
    return _counts_and_rates(
        [_segment_label(segment) for segment in rows["segment"].to_list()],
        rows.select(
            pl.col("journeys").alias("count"),
            "conversion_rate",
            pl.col("revenue").alias("detail_0"),
            pl.col("omnichannel_share").alias("detail_1"),
        ),
        noun="journeys",
        count_hover="%{y}: %{x:,} journeys, revenue %{customdata[0]:,.0f}",
        rate_hover="%{y}: %{x:.1%} converted; omnichannel %{customdata[1]:.0%} of purchases",
        count_title="Closed journeys",
    )


def _counts_and_rates(
    labels: list[str],
    rows: pl.DataFrame,
    *,
    noun: str,
    count_hover: str,
    rate_hover: str,
    count_title: str,
) -> go.Figure:
    """Paired bars: a count per row (``count``) and its conversion rate
    (``conversion_rate``), each hover with the row's two details (``detail_0``,
    ``detail_1``, as ``customdata[0]`` and ``[1]``)."""
    counts = rows["count"].cast(pl.Int64).to_list()
    rates = rows["conversion_rate"].cast(pl.Float64).to_list()
    details = rows.select(pl.col("detail_0", "detail_1").cast(pl.Float64)).rows()
    left = go.Bar(
        name=noun,
        x=counts,
        text=[_fmt_int(value) for value in counts],
        customdata=details,
        marker={"color": _BLUE},
        hovertemplate=count_hover + "<extra></extra>",
    )
    right = go.Bar(
        name="conversion_rate",
        x=rates,
        text=[_fmt_pct(value) for value in rates],
        customdata=details,
        marker={"color": _GREEN},
        hovertemplate=rate_hover + "<extra></extra>",
    )
    fig = _paired_bars(labels, left, right, titles=(count_title, "Conversion rate"))
    fig.update_xaxes(range=[0, 1.0], row=1, col=2)
    return fig


def _personas_figure(personas: pl.DataFrame, *, min_group_size: int) -> go.Figure:
    """Per persona with at least ``min_group_size`` customers, the largest first: customers
    and the conversion rate of their closed journeys."""
    rows = personas.filter(pl.col("customers") >= min_group_size).sort("persona")
    return _counts_and_rates(
        [html.escape(name) for name in rows["name"].to_list()],
        rows.select(
            pl.col("customers").alias("count"),
            "conversion_rate",
            pl.col("share_of_customers").alias("detail_0"),
            pl.col("basket_value").alias("detail_1"),
        ),
        noun="customers",
        count_hover="%{y}: %{x:,} customers, %{customdata[0]:.0%} of all",
        rate_hover="%{y}: %{x:.1%} of closed journeys converted, average basket "
        "%{customdata[1]:,.2f}",
        count_title="Customers",
    )


def _attribution_figure(attribution: pl.DataFrame) -> go.Figure:
    rows = attribution.filter(pl.col("dimension") == "channel").with_columns(
        pl.col("conversions").cast(pl.Float64), pl.col("revenue").cast(pl.Float64)
    )
    channels = (
        rows.group_by("value")
        .agg(pl.col("conversions").sum())
        .sort(["conversions", "value"], descending=[True, False])["value"]
        .to_list()
    )
    present = set(rows["model"].to_list())
    models = [m for m in _MODEL_ORDER if m in present] + sorted(present - set(_MODEL_ORDER))
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.08,
        subplot_titles=("Conversions credited", "Revenue credited"),
    )
    for model in models:
        credit = {
            value: (conversions, revenue)
            for value, conversions, revenue in rows.filter(pl.col("model") == model)
            .select("value", "conversions", "revenue")
            .iter_rows()
        }
        colour = _MODEL_COLOURS.get(model, _GREY)
        for col, position, unit in ((1, 0, "conversions"), (2, 1, "revenue")):
            fig.add_trace(
                go.Bar(
                    name=_label(model).capitalize(),
                    legendgroup=model,
                    showlegend=col == 1,
                    x=[_label(channel) for channel in channels],
                    y=[credit.get(channel, (0.0, 0.0))[position] for channel in channels],
                    marker={"color": colour},
                    hovertemplate=f"%{{x}}: %{{y:,.1f}} {unit} (%{{fullData.name}})<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig = _style(fig, height=440)
    fig.update_layout(
        barmode="group",
        margin={"l": 20, "r": 20, "t": 90, "b": 10},
        legend={"y": 1.16, "title": {"text": "Model: "}},
    )
    return fig


def build_figures(
    data: DashboardData,
    *,
    min_group_size: int = 5,
    max_sankey_links: int = 40,
    max_sankey_nodes: int = 12,
    max_sankey_segments: int = 24,
) -> dict[str, go.Figure]:
    """Builds one plotly figure per chart of the dashboard.

    Args:
        data: The marts.
        min_group_size: Sankey links with fewer transitions than this, and stores and regions
            with fewer closed journeys, are not drawn.
        max_sankey_links: The Sankey draws at most this many links per segment, the largest.
        max_sankey_nodes: The Sankey draws this many touchpoints with the most moves one by
            one; the others become one node, ``OTHER`` (labelled "Other").
        max_sankey_segments: The Sankey's menu offers at most this many segments of
            ``marts.transitions`` (``all``, ``converted``, ``dropped`` first).

    Returns:
        Figures keyed by section id: ``sankey``, ``funnel``, ``dropoffs``, ``patterns``,
        ``pattern_trend``, ``time_to_convert``, ``attribution``, ``stores``, in page order.
        The Sankey's first trace (``uid="sankey"``, visible) is segment ``all``, one hidden
        trace per other segment with links follows, shown by the figure's menu; node labels
        are for people and the mart's node names are in ``node.customdata``. With no link to
        draw in ``all`` the Sankey figure has no trace, only a note.

    Raises:
        DashboardDataError: A mart lacks a column the dashboard reads (all are listed).
        ValueError: ``min_group_size`` or ``max_sankey_links`` is below 1.

    Example::

        figures = build_figures(data, min_group_size=5)
        figures["sankey"].data[0].node.customdata  # ('START', 'product_view', ...)
    """
    if min_group_size < 1 or max_sankey_links < 1:
        msg = (
            f"min_group_size and max_sankey_links must be at least 1; "
            f"found {min_group_size} and {max_sankey_links}"
        )
        raise ValueError(msg)
    _check_columns(data)
    return {
        "sankey": _sankey_figure(
            data.transitions,
            min_group_size=min_group_size,
            max_sankey_links=max_sankey_links,
            max_sankey_nodes=max_sankey_nodes,
            max_segments=max_sankey_segments,
        ),
        "funnel": _funnel_figure(data.funnel, data.leakage, min_group_size=min_group_size),
        "dropoffs": _dropoffs_figure(data.dropoffs),
        "patterns": _patterns_figure(_pattern_counts(data.patterns)),
        "pattern_trend": _pattern_trend_figure(data.pattern_periods, min_group_size=min_group_size),
        "time_to_convert": _time_to_convert_figure(
            data.pattern_kpis, min_group_size=min_group_size
        ),
        "attribution": _attribution_figure(data.attribution),
        "stores": _stores_figure(data.segment_kpis, min_group_size=min_group_size),
        "personas": _personas_figure(data.personas, min_group_size=min_group_size),
    }


# ── HTML ────────────────────────────────────────────────────────────────────────────────────

_CSS = """
:root { --ink: #1d2733; --muted: #5b6776; --line: #dde3ea; --bg: #f4f6f9; --accent: #2e6da4; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
header { background: #1d2733; color: #fff; padding: 22px 0 14px; }
header .wrap, main { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; }
header p { margin: 0; color: #c5cfdb; font-size: 13px; }
nav { margin-top: 12px; display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 14px; }
nav a { color: #fff; text-decoration: none; border-bottom: 1px solid #5b6f86; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px;
          margin: 20px 0; padding: 18px 22px 14px; }
h2 { margin: 0 0 4px; font-size: 19px; font-weight: 650; }
p.caption { margin: 0 0 10px; color: var(--muted); font-size: 13.5px; max-width: 900px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 14px;
        margin-top: 10px; }
.kpi { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; background: #fbfcfd; }
.kpi .name { color: var(--muted); font-size: 13px; }
.kpi .value { font-size: 28px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi .note { color: var(--muted); font-size: 12.5px; }
.kpi .change { font-size: 13px; font-weight: 600; color: var(--muted); }
.kpi .change.up { color: #2e9d5b; } .kpi .change.down { color: #d1495b; }
#summary ul { margin: 6px 0 4px; padding-left: 20px; } #summary li { margin: 3px 0; }
table { width: 100%; border-collapse: collapse; font-size: 14px;
        font-variant-numeric: tabular-nums; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 13px; background: #fbfcfd; }
td.num, th.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
footer { max-width: 1180px; margin: 0 auto 30px; padding: 0 24px; color: var(--muted);
         font-size: 12.5px; }
@media print { body { background: #fff; } section { break-inside: avoid; } nav { display: none; } }
"""

# Nothing on the page may reach the network: scripts and styles are inline, images are data.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)

_SECTION_TITLES = {
    "kpis": "Key figures",
    "summary": "What changed",
    "sankey": "Main paths between touchpoints",
    "funnel": "Funnel by stage",
    "dropoffs": "Where journeys drop off",
    "patterns": "Omnichannel patterns",
    "pattern_trend": "Omnichannel patterns over time",
    "time_to_convert": "Time to convert by pattern",
    "attribution": "Attribution by channel",
    "stores": "By region and store",
    "personas": "Buyer personas",
    "scorecard": "Touchpoint scorecard",
    "paths": "Top 10 paths",
}


def _section(section_id: str, caption: str, body: str) -> str:
    return (
        f'<section id="{section_id}">\n<h2>{html.escape(_SECTION_TITLES[section_id])}</h2>\n'
        f'<p class="caption">{caption}</p>\n{body}\n</section>'
    )


def _kpi_change_html(metric: _Metric, kpis: _Kpis) -> str:
    if kpis.current is None or kpis.previous is None:
        return '<div class="change">no earlier period</div>'
    change = _change(metric, kpis.current[metric.column], kpis.previous[metric.column])
    if change is None:
        return '<div class="change">n/a</div>'
    text, relative = change
    tone = (
        "flat"
        if relative == 0 or metric.higher_is_better is None
        else ("up" if (relative > 0) == metric.higher_is_better else "down")
    )
    arrow = "▲" if relative > 0 else ("▼" if relative < 0 else "=")
    previous = html.escape(kpis.previous["period"])
    return f'<div class="change {tone}">{arrow} {text} vs {previous}</div>'


def _kpis_html(kpis: _Kpis) -> str:
    current = kpis.current or {}
    cards = [
        (metric.name, _metric_value(metric, current.get(metric.column)), metric.note, metric)
        for metric in _METRICS
    ]
    return (
        '<div class="kpis">\n'
        + "\n".join(
            f'<div class="kpi" id="kpi-{metric.column}"><div class="name">{name}</div>'
            f'<div class="value">{value}</div>{_kpi_change_html(metric, kpis)}'
            f'<div class="note">{note}</div></div>'
            for name, value, note, metric in cards
        )
        + "\n</div>"
    )


def _kpis_caption(kpis: _Kpis) -> str:
    if kpis.current is None:
        return "No journey has ended yet."
    period = html.escape(kpis.current["period"])
    if kpis.settled:
        return (
            f"{period}, the latest period that is over and whose drop-offs are all known (a "
            "journey counts as dropped only after the journey timeout without events), "
            "against the period before it."
        )
    return (
        f"{period}, the latest period; it is not over yet, or its journeys that will drop "
        "off are not all known yet."
    )


def _summary_html(sentences: list[str]) -> str:
    return "<ul>\n" + "\n".join(f"<li>{sentence}</li>" for sentence in sentences) + "\n</ul>"


def _stores_caption(segment_kpis: pl.DataFrame, *, min_group_size: int) -> str:
    places = segment_kpis.filter(pl.col("dimension").is_in(["region", "store"]))
    hidden = places.filter(pl.col("journeys") < min_group_size).height
    text = (
        "Closed journeys with a store (the store of their purchase or their last store "
        "visit), by region and by store, and their conversion rate."
    )
    if places.is_empty():
        return text + " No journey has a store yet."
    if hidden:
        text += (
            f" Not shown: {_count(hidden, 'store or region')} with fewer than "
            f"{min_group_size} journeys."
        )
    if _has_hidden_store(segment_kpis, min_group_size):
        text += " Regions are not shown either: with them a hidden store could be worked out."
    return text


def _count(value: int, noun: str) -> str:
    """``1, "link"`` → ``1 link``; ``3, "link"`` → ``3 links``."""
    return f"{_fmt_int(value)} {noun}{'' if value == 1 else 's'}"


def _sankey_caption(selection: _SankeySelection, *, min_group_size: int) -> str:
    notes = [
        "Moves from one touchpoint to the next over all closed journeys; "
        "the width of a link is the number of moves."
    ]
    if selection.grouped_touchpoints:
        notes.append(
            f"The {_count(selection.grouped_touchpoints, 'touchpoint')} with the fewest moves "
            "are drawn as one node, Other."
        )
    if selection.small_links:
        notes.append(
            f"Not drawn: {_count(selection.small_links, 'link')} with fewer than "
            f"{min_group_size} moves ({_count(selection.small_link_transitions, 'move')} in all)."
        )
    if selection.over_limit_links:
        notes.append(
            f"Only the {_fmt_int(selection.links.height)} largest links are drawn; "
            f"{_count(selection.over_limit_links, 'smaller link')} "
            f"({_count(selection.over_limit_transitions, 'move')}) are left out."
        )
    if selection.self_loops:
        notes.append(
            f"Repeats of the same touchpoint ({_count(selection.self_loops, 'self-loop')}, "
            f"{_count(selection.self_loop_transitions, 'move')}) are left out: "
            "a Sankey cannot draw a link from a node to itself."
        )
    return " ".join(notes)


def _personas_table(personas: pl.DataFrame, *, min_group_size: int) -> str:
    rows = personas.filter(pl.col("customers") >= min_group_size).sort("persona")
    if rows.is_empty():
        return "<p>No persona has enough customers to be shown.</p>"
    header = (
        "<tr><th>Persona</th><th>Who they are</th><th>Typical path</th>"
        '<th class="num">Customers</th></tr>'
    )
    body = "\n".join(
        f"<tr><td><b>{html.escape(row['name'])}</b></td>"
        f"<td>{html.escape(row['description'])}</td>"
        f"<td>{_path_label(row['typical_path']) if row['typical_path'] else ''}</td>"
        f'<td class="num">{_fmt_int(row["customers"])}</td></tr>'
        for row in rows.iter_rows(named=True)
    )
    return f"<table>\n<thead>{header}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


_SWOT_BADGES = (
    ("is_strength", "S", "strength", _GREEN),
    ("is_weakness", "W", "weakness", _RED),
    ("is_opportunity", "O", "opportunity", _BLUE),
    ("is_threat", "T", "threat", "#b7791f"),
)


def _swot_badges(row: dict[str, Any]) -> str:
    return " ".join(
        f'<span title="{title}" style="display:inline-block;min-width:1.4em;text-align:center;'
        f'border-radius:4px;color:#fff;font-weight:650;background:{colour}">{letter}</span>'
        for column, letter, title, colour in _SWOT_BADGES
        if row[column]
    )


def _scorecard_table(scorecard: pl.DataFrame, *, min_group_size: int) -> str:
    rows = scorecard.filter(pl.col("journeys_through") >= min_group_size).sort(
        ["reach", "touchpoint"], descending=[True, False]
    )
    if rows.is_empty():
        return "<p>No touchpoint is passed by enough journeys to be scored.</p>"
    header = (
        '<tr><th>Touchpoint</th><th class="num">Reach</th><th class="num">Lift</th>'
        '<th class="num">Drop-off rate</th><th class="num">Leakage</th>'
        '<th class="num">Removal effect</th><th class="num">To next step</th>'
        '<th class="num">Reach trend</th><th>SWOT</th></tr>'
    )

    def lift(value: float | None) -> str:
        return "no drop-off" if value is None else f"{value:.2f}"

    def trend(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.0%}"

    def seconds(value: float | None) -> str:
        return "n/a" if value is None else _fmt_duration(value)

    body = "\n".join(
        f"<tr><td>{_label(row['touchpoint'])}"
        f"{'' if row['is_managed'] is not False else ' <small>(unmanaged)</small>'}</td>"
        f'<td class="num">{_fmt_pct(row["reach"])}</td>'
        f'<td class="num">{lift(row["lift"])}</td>'
        f'<td class="num">{_fmt_pct(row["dropoff_rate"])}</td>'
        f'<td class="num">{_fmt_pct(row["leakage_rate"])}</td>'
        f'<td class="num">{_fmt_pct(row["removal_effect"])}</td>'
        f'<td class="num">{seconds(row["median_seconds_to_next"])}</td>'
        f'<td class="num">{trend(row["reach_trend"])}</td>'
        f"<td>{_swot_badges(row)} <small>{html.escape(row['swot'])}</small></td></tr>"
        for row in rows.iter_rows(named=True)
    )
    return f"<table>\n<thead>{header}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _paths_table(paths: pl.DataFrame) -> str:
    if paths.is_empty():
        return "<p>No path is followed by enough journeys to be shown.</p>"
    header = (
        '<tr><th class="num">#</th><th>Path</th><th class="num">Steps</th>'
        '<th class="num">Journeys</th><th class="num">Conversions</th>'
        '<th class="num">Conversion rate</th><th class="num">Median duration</th></tr>'
    )
    body = "\n".join(
        f'<tr><td class="num">{rank}</td><td>{_path_label(row["path"])}</td>'
        f'<td class="num">{_fmt_int(row["steps"])}</td>'
        f'<td class="num">{_fmt_int(row["journeys"])}</td>'
        f'<td class="num">{_fmt_int(row["conversions"])}</td>'
        f'<td class="num">{_fmt_pct(row["conversion_rate"])}</td>'
        f'<td class="num">{_fmt_duration(row["median_duration_seconds"])}</td></tr>'
        for rank, row in enumerate(paths.iter_rows(named=True), start=1)
    )
    return f"<table>\n<thead>{header}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def render_dashboard(
    data: DashboardData, *, title: str, generated_at: str, min_group_size: int = 5
) -> str:
    """Renders the whole dashboard as one self-contained HTML document.

    plotly.js is inlined once, with the first figure; there is no CDN, no external URL, and
    a Content-Security-Policy forbids any fetch, so the page opens offline.

    Args:
        data: The marts.
        title: The page title (escaped).
        generated_at: When the marts were built, as the caller wants it shown (escaped); the
            function reads no clock.
        min_group_size: Sankey links and paths with fewer journeys than this are not shown.

    Returns:
        The HTML document.

    Example::

        page = render_dashboard(data, title="Q1", generated_at="2026-05-01")
        write_dashboard(page, Path("reports/dashboard.html"))
    """
    figures = build_figures(data, min_group_size=min_group_size)
    selection = _select_sankey_links(
        data.transitions, min_group_size=min_group_size, max_sankey_links=40
    )
    config = {
        "displaylogo": False,
        "responsive": True,
        "modeBarButtonsToRemove": ["select2d", "lasso2d"],
    }
    charts = {
        name: fig.to_html(
            full_html=False,
            include_plotlyjs=position == 0,
            config=config,
            div_id=f"figure-{name}",
        )
        for position, (name, fig) in enumerate(figures.items())
    }
    top_paths = _top_paths(data.paths, min_group_size=min_group_size)
    kpis = _compute_kpis(data.period_kpis)
    sankey_caption = _sankey_caption(selection, min_group_size=min_group_size)
    if len(figures["sankey"].data) > 1:
        sankey_caption += " The menu shows one segment instead of all journeys."
    sections = [
        _section("kpis", _kpis_caption(kpis), _kpis_html(kpis)),
        _section(
            "summary",
            "The largest changes against the period before, written from the numbers.",
            _summary_html(_summary(kpis, data.pattern_periods)),
        ),
        _section("sankey", sankey_caption, charts["sankey"]),
        _section(
            "funnel",
            "Journeys reaching each stage (or a later one), and the dropped journeys whose "
            "furthest stage it was; in green, converted journeys whose last online step was "
            "at that stage and that bought in a store or by phone (channel leakage, not loss).",
            charts["funnel"],
        ),
        _section(
            "dropoffs",
            "Left: dropped journeys whose last touchpoint was this one. Right: the share of "
            "the journeys through the touchpoint that ended there without a purchase.",
            charts["dropoffs"],
        ),
        _section(
            "patterns",
            "Converted journeys matching each pattern, and their revenue. Click &amp; collect "
            "is split into orders collected in store and no-shows. A journey can match more "
            "than one pattern.",
            charts["patterns"],
        ),
        _section(
            "pattern_trend",
            "ROPO (research online, purchase offline), click &amp; collect and try &amp; buy "
            "purchases per period of the purchase, and their revenue.",
            charts["pattern_trend"],
        ),
        _section(
            "time_to_convert",
            "Median days from a journey's first touch to its purchase, per pattern (hover: "
            "the 90th percentile and the journeys).",
            charts["time_to_convert"],
        ),
        _section(
            "attribution",
            "Credit for conversions and revenue given to each channel by five models: the "
            "first touch, the last touch, shared equally along the journey (linear), 40% to "
            "the first and the last touch and 20% to those between (position-based), and in "
            "proportion to how many conversions would be lost without the channel, on the "
            "Markov chain of all finished journeys (Markov removal effect).",
            charts["attribution"],
        ),
        _section(
            "stores",
            _stores_caption(data.segment_kpis, min_group_size=min_group_size),
            charts["stores"],
        ),
        _section(
            "personas",
            "Customers grouped by how they behave (channels, conversion, basket, patterns, "
            "time to convert, recency, frequency), each named and described from its numbers; "
            f"personas of fewer than {min_group_size} customers are not shown.",
            charts["personas"] + _personas_table(data.personas, min_group_size=min_group_size),
        ),
        _section(
            "scorecard",
            "Every touchpoint passed by at least "
            f"{min_group_size} closed journeys: the share of journeys through it (reach); "
            "lift, how much more often converted journeys pass it than dropped ones; the "
            "journeys ending there, and leaving there to buy offline; its share of the Markov "
            "removal effect; the median time to the next step; the change of its reach since "
            "the period before. S, W, O, T: strength, weakness, opportunity, threat, by the "
            "rules of the README (Touchpoint scorecard).",
            _scorecard_table(data.scorecard, min_group_size=min_group_size),
        ),
        _section(
            "paths",
            f"The most common complete paths followed by at least {min_group_size} journeys.",
            _paths_table(top_paths),
        ),
    ]
    nav = " ".join(
        f'<a href="#{section_id}">{html.escape(heading)}</a>'
        for section_id, heading in _SECTION_TITLES.items()
    )
    safe_title = html.escape(title)
    body = "\n".join(sections)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{safe_title}</title>
<style>{_CSS}</style>
</head>
<body>
<header><div class="wrap">
<h1>{safe_title}</h1>
<p>Generated {html.escape(generated_at)}. Groups smaller than {min_group_size} journeys are not
shown individually.</p>
<nav>{nav}</nav>
</div></header>
<main>
{body}
</main>
<footer>journey-analytics · aggregates only: no customer, journey or event identifier is shown.
</footer>
</body>
</html>
"""


def write_dashboard(html: str, path: Path) -> Path:
    """Writes the dashboard HTML to ``path`` (UTF-8), creating parent folders.

    Returns:
        The path written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
