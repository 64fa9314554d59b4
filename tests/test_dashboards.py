"""Tests of the dashboard: exact figure data from small marts, and an HTML page that is offline
and shows aggregates only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest
from plotly.offline import get_plotlyjs

from journey_analytics.dashboards import (
    DashboardData,
    DashboardDataError,
    build_figures,
    render_dashboard,
    write_dashboard,
)

SECTION_IDS = (
    "kpis",
    "summary",
    "sankey",
    "funnel",
    "dropoffs",
    "patterns",
    "pattern_trend",
    "time_to_convert",
    "attribution",
    "stores",
    "personas",
    "scorecard",
    "paths",
)
# Identifiers that live in marts.patterns and must never reach the page.
JOURNEY_IDS = [f"jrn-7c1e{n:04d}" for n in range(1, 7)]
CUSTOMER_KEYS = [f"cust-9a7b{n:04d}" for n in range(1, 7)]
EVENT_IDS = [f"evt-web-{n:06d}" for n in range(1, 13)]


def _transitions() -> pl.DataFrame:
    rows = [
        ("all", "START", "product_view", 10, 0.67),
        # Self-loop: a plotly Sankey cannot draw it, so it is dropped (and said in the caption).
        ("all", "product_view", "product_view", 6, 0.38),
        ("all", "product_view", "store_visit", 7, 0.44),
        # 3 < min_group_size 5: not drawn; DROP_OFF stays a node through email_click.
        ("all", "product_view", "DROP_OFF", 3, 0.18),
        ("all", "store_visit", "store_purchase", 6, 1.0),
        ("all", "store_purchase", "CONVERSION", 6, 1.0),
        # Exactly min_group_size: drawn (the filter is "fewer than").
        ("all", "START", "email_click", 5, 0.33),
        ("all", "email_click", "DROP_OFF", 5, 1.0),
        # Other segments are hidden traces that the Sankey's menu shows instead of "all".
        ("converted", "START", "product_view", 6, 1.0),
        ("dropped", "START", "call", 50, 1.0),
        # A segment with no link large enough is not offered.
        ("store=S09", "START", "call", 2, 1.0),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "segment": pl.String,
            "from_touchpoint": pl.String,
            "to_touchpoint": pl.String,
            "transitions": pl.Int64,
            "probability": pl.Float64,
        },
        orient="row",
    ).with_columns(
        customers=pl.col("transitions"),
        median_seconds=pl.lit(60.0),
        p90_seconds=pl.lit(600.0),
    )


def _dropoffs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "touchpoint": ["product_view", "email_click", "store_visit", "store_purchase"],
            "journeys_through": [20, 5, 7, 6],
            "exits": [3, 5, 0, 0],
            "dropoff_rate": [0.15, 1.0, 0.0, 0.0],
        }
    )


def _funnel() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "stage_order": pl.Series([1, 2, 3, 4, 5, 6], dtype=pl.Int32),
            "stage": ["awareness", "interest", "consideration", "purchase", "usage", "loyalty"],
            "journeys": [32, 30, 20, 8, 4, 1],
            "share_of_journeys": [1.0, 0.9375, 0.625, 0.25, 0.125, 0.03125],
            "dropoffs": [2, 10, 12, 0, 0, 0],
            "dropoff_rate": [0.0625, 0.3333, 0.6, 0.0, 0.0, 0.0],
        }
    )


def _patterns() -> pl.DataFrame:
    j, c, e = JOURNEY_IDS, CUSTOMER_KEYS, EVENT_IDS
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [
        (j[0], c[0], "ropo", None, [e[0], e[1]], at, Decimal("100.00")),
        (j[1], c[1], "ropo", None, [e[2], e[3]], at, Decimal("50.50")),
        # jrn 3 is both ROPO and click-and-collect: one omnichannel conversion, not two.
        (j[2], c[2], "ropo", None, [e[4], e[5]], at, Decimal("20.00")),
        (j[2], c[2], "click_and_collect", "collected", [e[5], e[6]], at, Decimal("20.00")),
        (j[3], c[3], "click_and_collect", "no_show", [e[7]], at, Decimal("35.00")),
        (j[4], c[4], "try_and_buy", None, [e[8], e[9]], at, Decimal("80.25")),
        # Online-only is not an omnichannel pattern; a null revenue counts as nothing.
        (j[5], c[5], "online_only", None, [e[10], e[11]], at, None),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "journey_id": pl.String,
            "customer_key": pl.String,
            "pattern": pl.String,
            "variant": pl.String,
            "evidence_event_ids": pl.List(pl.String),
            "converted_at": pl.Datetime("us", "UTC"),
            "revenue": pl.Decimal(18, 2),
        },
        orient="row",
    )


EVIL_PATH = "product_view > <img src=x onerror=alert(1)>"


def _paths() -> pl.DataFrame:
    rows = [
        ("product_view > store_visit > store_purchase", 3, 12, 6, 0.5, 2 * 86_400 + 3_600.0),
        ("email_click", 1, 9, 0, 0.0, 0.0),
        # Exactly min_group_size: shown; ties on journeys are broken by conversions.
        ("product_view > add_to_cart > order_placed", 3, 5, 2, 0.4, 3_900.0),
        (EVIL_PATH, 2, 5, 0, 0.0, 45.0),
        # One journey: below min_group_size, never shown (a rare path can identify a person).
        ("call > return_in_store", 2, 1, 0, 0.0, 7_200.0),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "path": pl.String,
            "steps": pl.Int64,
            "journeys": pl.Int64,
            "conversions": pl.Int64,
            "conversion_rate": pl.Float64,
            "median_duration_seconds": pl.Float64,
        },
        orient="row",
    )


def _attribution() -> pl.DataFrame:
    rows = [
        ("first_touch", "channel", "web", 6.0, 2000.0),
        ("first_touch", "channel", "email", 2.0, 1345.75),
        ("last_touch", "channel", "web", 3.0, 1000.50),
        ("last_touch", "channel", "store", 5.0, 2345.25),
        ("linear", "channel", "web", 4.5, 1500.0),
        ("linear", "channel", "store", 2.5, 1345.75),
        ("linear", "channel", "email", 1.0, 500.0),
        # Another dimension: never in the revenue KPI nor in the channel chart.
        ("last_touch", "touchpoint", "store_purchase", 5.0, 99_999.0),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "model": pl.String,
            "dimension": pl.String,
            "value": pl.String,
            "conversions": pl.Float64,
            "revenue": pl.Float64,
        },
        orient="row",
    )


def _period_kpis() -> pl.DataFrame:
    rows = [
        # (start, period, settled, journeys, conversions, rate, revenue, omni share, median s)
        (datetime(2026, 1, 1), "2026-01", True, 40, 10, 0.25, 1000.0, 0.4, 86_400.0),
        (datetime(2026, 2, 1), "2026-02", True, 50, 15, 0.30, 1500.0, 0.4, 43_200.0),
        # The latest period is not settled: the KPIs show February against January.
        (datetime(2026, 3, 1), "2026-03", False, 10, 9, 0.90, 900.0, 0.5, 3_600.0),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "period_start": pl.Datetime,
            "period": pl.String,
            "is_settled": pl.Boolean,
            "journeys": pl.Int64,
            "conversions": pl.Int64,
            "conversion_rate": pl.Float64,
            "revenue": pl.Decimal(18, 2),
            "omnichannel_share": pl.Float64,
            "median_seconds_to_convert": pl.Float64,
        },
        orient="row",
    ).with_columns(pl.col("period_start").cast(pl.Date))


def _pattern_periods() -> pl.DataFrame:
    rows = [
        (datetime(2026, 1, 1), "2026-01", "ropo", None, 4, 400.0),
        (datetime(2026, 2, 1), "2026-02", "ropo", None, 2, 150.0),
        # click-and-collect's variants add up to one line: 2 + 1 in January, 6 in February
        (datetime(2026, 1, 1), "2026-01", "click_and_collect", "collected", 2, 100.0),
        (datetime(2026, 1, 1), "2026-01", "click_and_collect", "no_show", 1, 50.0),
        (datetime(2026, 2, 1), "2026-02", "click_and_collect", "collected", 6, 300.0),
        # not an omnichannel pattern: in no line and no sentence
        (datetime(2026, 2, 1), "2026-02", "online_only", None, 9, 900.0),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "period_start": pl.Datetime,
            "period": pl.String,
            "pattern": pl.String,
            "variant": pl.String,
            "journeys": pl.Int64,
            "revenue": pl.Float64,
        },
        orient="row",
    ).with_columns(pl.col("period_start").cast(pl.Date))


def _pattern_kpis() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pattern": ["try_and_buy", "ropo", "click_and_collect"],
            "variant": [None, None, "collected"],
            "journeys": [3, 6, 8],
            "revenue": [300.0, 550.0, 400.0],
            "median_seconds_to_convert": [86_400.0, 2.5 * 86_400, 43_200.0],
            "p90_seconds_to_convert": [2 * 86_400.0, 5 * 86_400.0, 86_400.0],
        }
    )


def _segment_kpis() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dimension": ["store", "store", "store", "region", "first_channel"],
            "segment": ["store=S01", "store=S02", "store=S03", "region=Italy", "first_channel=web"],
            # S03 has fewer journeys than min_group_size 5: not shown (a small store can point
            # at a person); first_channel is not a place
            "journeys": [12, 20, 4, 32, 30],
            "conversions": [6, 5, 1, 11, 9],
            "conversion_rate": [0.5, 0.25, 0.25, 11 / 32, 0.3],
            "revenue": [600.0, 500.0, 100.0, 1100.0, 900.0],
            "omnichannel_share": [0.5, 0.2, 0.0, 4 / 11, 0.1],
        }
    )


def _leakage() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "from_stage": ["consideration", "consideration", "interest"],
            "journeys": [3, 1, 2],
        }
    )


def _personas() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "persona": [1, 2, 3],
            "name": ["Online buyers", "In-store <b>buyers</b>", "Online browsers"],
            "description": ["50% of customers; ...", "40% of customers; ...", "10% of ..."],
            # persona 3 has fewer customers than min_group_size 5: not shown
            "customers": [10, 8, 2],
            "share_of_customers": [0.5, 0.4, 0.1],
            "conversion_rate": [0.9, 0.8, 0.0],
            "basket_value": [120.0, 80.0, 0.0],
            "typical_path": ["product_view > order_placed", "store_purchase", None],
        },
        schema_overrides={"persona": pl.Int32},
    )


def _scorecard() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "touchpoint": ["product_view", "review", "order_placed", "call"],
            "is_managed": [True, False, True, True],
            # call: 3 journeys, under min_group_size 5: not shown
            "journeys_through": [30, 6, 20, 3],
            "reach": [0.75, 0.15, 0.5, 0.075],
            "lift": [1.5, 0.5, None, 1.0],
            "dropoff_rate": [0.1, 0.5, 0.0, 0.0],
            "leakage_rate": [0.2, 0.0, 0.0, 0.0],
            "removal_effect": [0.6, None, 0.4, None],
            "median_seconds_to_next": [3600.0, 90.0, None, None],
            "reach_trend": [-0.25, None, 0.1, None],
            "is_strength": [True, False, True, False],
            "is_weakness": [False, True, False, False],
            "is_opportunity": [True, False, False, False],
            "is_threat": [True, True, False, False],
            "swot": [
                "strength: ...; opportunity: ...; threat: ...",
                "weakness: ...",
                "strength: ...",
                "",
            ],
        }
    )


@pytest.fixture
def data() -> DashboardData:
    return DashboardData(
        transitions=_transitions(),
        dropoffs=_dropoffs(),
        funnel=_funnel(),
        patterns=_patterns(),
        paths=_paths(),
        attribution=_attribution(),
        period_kpis=_period_kpis(),
        pattern_periods=_pattern_periods(),
        pattern_kpis=_pattern_kpis(),
        segment_kpis=_segment_kpis(),
        leakage=_leakage(),
        personas=_personas(),
        scorecard=_scorecard(),
    )


@pytest.fixture
def page(data: DashboardData) -> str:
    return render_dashboard(
        data, title="Journeys <Q1> & more", generated_at="2026-04-01 06:00 UTC", min_group_size=5
    )


def _sankey(figures: dict[str, go.Figure]) -> go.Sankey:
    trace = figures["sankey"].data[0]  # segment "all", shown first
    assert trace.uid == "sankey"
    assert trace.visible is True
    return trace


def _links(trace: go.Sankey) -> list[tuple[str, str, int]]:
    names = trace.node.customdata
    return [
        (names[s], names[t], v)
        for s, t, v in zip(trace.link.source, trace.link.target, trace.link.value, strict=True)
    ]


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, flags=re.DOTALL)
    assert match is not None, section_id
    return match.group(1)


# ── figures ─────────────────────────────────────────────────────────────────────────────────


def test_figures_are_keyed_by_section_in_page_order(data: DashboardData) -> None:
    figures = build_figures(data)
    # every section but those written as HTML (key figures, summary, scorecard, paths table)
    html_only = ("kpis", "summary", "scorecard", "paths")
    assert list(figures) == [s for s in SECTION_IDS if s not in html_only]


def test_personas_show_customers_and_conversion_above_the_minimum_group(
    data: DashboardData, page: str
) -> None:
    left, right = build_figures(data)["personas"].data
    assert list(left.y) == ["Online buyers", "In-store &lt;b&gt;buyers&lt;/b&gt;"]
    assert (list(left.x), list(right.x)) == ([10, 8], [0.9, 0.8])
    section = _section(page, "personas")
    assert "Online browsers" not in section  # 2 customers
    assert "product view → order placed" in section
    assert "<b>buyers</b>" not in section  # escaped


def test_scorecard_lists_touchpoints_by_reach_with_their_swot(page: str) -> None:
    section = _section(page, "scorecard")
    rows = re.findall(r"<tr><td>(.*?)</td>", section)
    assert rows == ["product view", "order placed", "review <small>(unmanaged)</small>"]
    cells = re.findall(r'<td class="num">([^<]*)</td>', section)
    # reach, lift, drop-off, leakage, removal effect, to next step, trend; per row
    assert cells == [
        "75.0%", "1.50", "10.0%", "20.0%", "60.0%", "1 h 0 min", "-25%",
        "50.0%", "no drop-off", "0.0%", "0.0%", "40.0%", "n/a", "+10%",
        "15.0%", "0.50", "50.0%", "0.0%", "n/a", "1 min", "n/a",
    ]  # fmt: skip
    assert section.count('title="strength"') == 2
    assert section.count('title="threat"') == 2


def test_sankey_draws_segment_all_without_small_links_and_self_loops(
    data: DashboardData,
) -> None:
    trace = _sankey(build_figures(data, min_group_size=5))
    assert trace.node.customdata == (
        "START",
        "email_click",
        "product_view",
        "store_purchase",
        "store_visit",
        "CONVERSION",
        "DROP_OFF",
    )
    assert trace.node.label == (
        "Start",
        "email click",
        "product view",
        "store purchase",
        "store visit",
        "Conversion",
        "Drop-off",
    )
    # Largest first; equal counts ordered by (from, to).
    assert _links(trace) == [
        ("START", "product_view", 10),
        ("product_view", "store_visit", 7),
        ("store_purchase", "CONVERSION", 6),
        ("store_visit", "store_purchase", 6),
        ("START", "email_click", 5),
        ("email_click", "DROP_OFF", 5),
    ]
    assert trace.link.source == (0, 2, 3, 4, 0, 1)
    assert trace.link.target == (2, 4, 5, 3, 1, 6)
    assert trace.link.value == (10, 7, 6, 6, 5, 5)


def test_sankey_link_values_equal_the_mart(data: DashboardData) -> None:
    trace = _sankey(build_figures(data, min_group_size=1))
    expected = (
        data.transitions.filter(
            (pl.col("segment") == "all") & (pl.col("from_touchpoint") != pl.col("to_touchpoint"))
        )
        .select("from_touchpoint", "to_touchpoint", "transitions")
        .rows()
    )
    # With min_group_size 1 only the self-loop is missing.
    assert sorted(_links(trace)) == sorted(expected)
    assert ("product_view", "DROP_OFF", 3) in _links(trace)


def test_sankey_keeps_only_the_largest_links(data: DashboardData) -> None:
    trace = _sankey(build_figures(data, max_sankey_links=2))
    assert trace.node.customdata == ("START", "product_view", "store_visit")
    assert _links(trace) == [("START", "product_view", 10), ("product_view", "store_visit", 7)]


def test_sankey_with_nothing_to_draw_has_no_trace(data: DashboardData) -> None:
    # no link of "all" reaches 11 moves: no Sankey at all (plotly.js fails on one without
    # nodes), even though segment "dropped" has one
    figure = build_figures(data, min_group_size=11)["sankey"]
    assert figure.data == ()
    assert [note.text for note in figure.layout.annotations] == ["No link is large enough to draw."]


def test_sankey_groups_the_touchpoints_with_fewest_moves_as_other(data: DashboardData) -> None:
    # moves through each: product view 32, store visit 13, store purchase 12, email click 10;
    # with 2 touchpoints drawn one by one, store purchase and email click become Other
    trace = _sankey(build_figures(data, min_group_size=5, max_sankey_nodes=2))
    assert trace.node.customdata == (
        "START",
        "product_view",
        "store_visit",
        "OTHER",
        "CONVERSION",
        "DROP_OFF",
    )
    assert trace.node.label[3] == "Other"
    assert _links(trace) == [
        ("START", "product_view", 10),
        ("product_view", "store_visit", 7),
        ("OTHER", "CONVERSION", 6),  # store purchase's 6
        ("store_visit", "OTHER", 6),
        ("OTHER", "DROP_OFF", 5),  # email click's 5
        ("START", "OTHER", 5),
    ]
    # a link's probability: its share of its origin's moves, after grouping
    assert trace.link.customdata[2] == 6 / 11
    assert trace.link.customdata[5] == 5 / 15


def test_sankey_menu_shows_one_segment_at_a_time(data: DashboardData) -> None:
    figure = build_figures(data, min_group_size=5)["sankey"]
    # all first; converted and dropped next; store=S09 has no link of 5 or more: not offered
    assert [trace.name for trace in figure.data] == ["all", "converted", "dropped"]
    assert [trace.visible for trace in figure.data] == [True, False, False]
    (menu,) = figure.layout.updatemenus
    assert [button.label for button in menu.buttons] == ["All journeys", "Converted", "Dropped"]
    assert [button.args[0]["visible"] for button in menu.buttons] == [
        [True, False, False],
        [False, True, False],
        [False, False, True],
    ]
    assert _links(figure.data[2]) == [("START", "call", 50)]


def test_pattern_trend_has_a_line_per_omnichannel_pattern(data: DashboardData) -> None:
    # below min_group_size 5 a point is a gap: only click & collect's 6 in February is drawn
    gaps = build_figures(data)["pattern_trend"]
    assert [trace.y for trace in gaps.data] == [
        (None, None),
        (None, None),
        (None, 6),
        (None, 300.0),
    ]
    figure = build_figures(data, min_group_size=1)["pattern_trend"]
    lines = [(trace.name, trace.x, trace.y) for trace in figure.data]
    assert lines == [
        ("ROPO", ("2026-01", "2026-02"), (4, 2)),  # journeys
        ("ROPO", ("2026-01", "2026-02"), (400.0, 150.0)),  # revenue
        ("Click &amp; collect", ("2026-01", "2026-02"), (3, 6)),
        ("Click &amp; collect", ("2026-01", "2026-02"), (150.0, 300.0)),
    ]
    assert [trace.showlegend for trace in figure.data] == [True, False, True, False]


def test_time_to_convert_shows_median_days_per_pattern(data: DashboardData) -> None:
    # try & buy has 3 journeys: below min_group_size 5, its median is one customer's own time
    (bar,) = build_figures(data)["time_to_convert"].data
    assert bar.y == ("ROPO", "Click &amp; collect: collected")
    (bar,) = build_figures(data, min_group_size=1)["time_to_convert"].data
    assert bar.y == ("ROPO", "Click &amp; collect: collected", "Try &amp; buy")
    assert bar.x == (2.5, 0.5, 1.0)
    assert bar.text == ("2.5 d", "0.5 d", "1.0 d")
    assert [row[0] for row in bar.customdata] == [5.0, 1.0, 2.0]  # p90 in days


def test_stores_show_regions_then_stores_above_the_minimum_group(data: DashboardData) -> None:
    journeys, rates = build_figures(data, min_group_size=4)["stores"].data
    assert journeys.y == ("Region: Italy", "Store: S02", "Store: S01", "Store: S03")
    assert journeys.x == (32, 20, 12, 4)
    assert rates.x == (11 / 32, 0.25, 0.5, 0.25)
    # S03 hidden at 5: so is Italy, else Italy less S01 and S02 would show S03
    journeys, _ = build_figures(data, min_group_size=5)["stores"].data
    assert journeys.y == ("Store: S02", "Store: S01")


def test_stores_caption_counts_what_is_hidden(page: str) -> None:
    stores = _section(page, "stores")
    assert "Not shown: 1 store or region with fewer than 5 journeys." in stores
    assert "Regions are not shown either" in stores
    assert "S03" not in page


def test_funnel_leakage_below_the_minimum_group_is_not_written(data: DashboardData) -> None:
    ticks = build_figures(data)["funnel"].layout.yaxis.ticktext  # 2 and 4 journeys: under 5
    assert not [tick for tick in ticks if "bought offline" in tick]


def test_funnel_shows_journeys_and_dropoffs_per_stage(data: DashboardData) -> None:
    (trace,) = build_figures(data)["funnel"].data
    assert trace.type == "funnel"
    assert trace.y == ("Awareness", "Interest", "Consideration", "Purchase", "Usage", "Loyalty")
    assert trace.x == (32, 30, 20, 8, 4, 1)
    assert [row[1] for row in trace.customdata] == [2, 10, 12, 0, 0, 0]
    assert [row[2] for row in trace.customdata] == [0.0625, 0.3333, 0.6, 0.0, 0.0, 0.0]
    # The drop-offs are written under each stage's name on the axis.
    ticktext = build_figures(data, min_group_size=1)["funnel"].layout.yaxis.ticktext
    assert [re.sub(r"<[^>]+>", " ", tick).split() for tick in ticktext] == [
        ["Awareness", "2", "dropped", "here", "(6.2%)"],
        # leakage: 2 journeys last online at interest, 3 + 1 at consideration, bought offline
        [
            "Interest",
            "10",
            "dropped",
            "here",
            "(33.3%)",
            *["2", "left", "online,", "bought", "offline"],
        ],
        [
            "Consideration",
            "12",
            "dropped",
            "here",
            "(60.0%)",
            *["4", "left", "online,", "bought", "offline"],
        ],
        ["Purchase", "no", "drop-off"],
        ["Usage", "no", "drop-off"],
        ["Loyalty", "no", "drop-off"],
    ]


def test_funnel_follows_stage_order_not_row_order(data: DashboardData) -> None:
    shuffled = DashboardData(**{**data.__dict__, "funnel": data.funnel.reverse()})
    (trace,) = build_figures(shuffled)["funnel"].data
    assert trace.x == (32, 30, 20, 8, 4, 1)


def test_dropoffs_show_exits_and_rate_per_touchpoint(data: DashboardData) -> None:
    exits, rate = build_figures(data)["dropoffs"].data
    # Most exits first; equal exits by name.
    assert exits.y == ("email click", "product view", "store purchase", "store visit")
    assert exits.x == (5, 3, 0, 0)
    assert exits.customdata == (5, 20, 6, 7)
    assert rate.y == exits.y
    assert rate.x == (1.0, 0.15, 0.0, 0.0)
    assert rate.text == ("100.0%", "15.0%", "0.0%", "0.0%")


def test_patterns_count_journeys_per_pattern_and_variant(data: DashboardData) -> None:
    journeys, revenue = build_figures(data)["patterns"].data
    assert journeys.y == (
        "ROPO",
        "Click &amp; collect: collected",
        "Click &amp; collect: no-show",
        "Try &amp; buy",
        "Online only",
    )
    assert journeys.x == (3, 1, 1, 1, 1)
    assert revenue.y == journeys.y
    # The null revenue of the online-only journey sums to 0.
    assert revenue.x == (170.5, 20.0, 35.0, 80.25, 0.0)


def test_attribution_groups_channels_per_model(data: DashboardData) -> None:
    traces = build_figures(data)["attribution"].data
    conversions = [t for t in traces if t.xaxis == "x"]
    revenue = [t for t in traces if t.xaxis == "x2"]
    assert [t.name for t in conversions] == ["First touch", "Last touch", "Linear"]
    assert [t.name for t in revenue] == ["First touch", "Last touch", "Linear"]
    # Channels by total credited conversions (web 13.5, store 7.5, email 3); a model that
    # gives a channel no credit shows 0.
    assert {t.name: t.x for t in conversions}["Linear"] == ("web", "store", "email")
    assert {t.name: t.y for t in conversions} == {
        "First touch": (6.0, 0.0, 2.0),
        "Last touch": (3.0, 5.0, 0.0),
        "Linear": (4.5, 2.5, 1.0),
    }
    assert {t.name: t.y for t in revenue}["Last touch"] == (1000.5, 2345.25, 0.0)


def test_missing_columns_are_all_reported(data: DashboardData) -> None:
    broken = DashboardData(
        **{
            **data.__dict__,
            "paths": data.paths.drop("journeys", "conversions"),
            "funnel": data.funnel.drop("stage"),
        }
    )
    with pytest.raises(DashboardDataError) as error:
        build_figures(broken)
    message = str(error.value)
    assert "marts.paths: missing column(s) journeys, conversions" in message
    assert "marts.funnel: missing column(s) stage;" in message


@pytest.mark.parametrize(("min_group_size", "max_links"), [(0, 40), (5, 0)])
def test_limits_below_one_are_refused(
    data: DashboardData, min_group_size: int, max_links: int
) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        build_figures(data, min_group_size=min_group_size, max_sankey_links=max_links)


# ── HTML ────────────────────────────────────────────────────────────────────────────────────


def test_page_has_every_section_with_a_heading(page: str) -> None:
    for section_id in SECTION_IDS:
        assert re.search(rf'<section id="{section_id}">\s*<h2>[^<]+</h2>', page), section_id


def test_page_shows_the_kpis_of_the_latest_settled_period_against_the_one_before(
    page: str,
) -> None:
    kpis = _section(page, "kpis")
    cards = re.findall(
        r'<div class="name">([^<]+)</div><div class="value">([^<]+)</div>'
        r'<div class="change ?(\w*)">([^<]+)</div>',
        kpis,
    )
    assert cards == [
        ("Journeys", "50", "up", "▲ +25.0% vs 2026-01"),  # 2026-03 is not settled
        ("Conversion rate", "30.0%", "up", "▲ +5.0 pts vs 2026-01"),
        ("Revenue", "1,500", "up", "▲ +50.0% vs 2026-01"),
        ("Omnichannel share", "40.0%", "flat", "= +0.0 pts vs 2026-01"),
        # shorter is neither good nor bad: no colour
        ("Median time to convert", "12 h 0 min", "flat", "▼ \N{MINUS SIGN}50.0% vs 2026-01"),
    ]
    assert "2026-02, the latest period that is over and whose drop-offs are all known" in kpis


def test_summary_writes_the_largest_changes_first(page: str) -> None:
    summary = re.findall(r"<li>(.*?)</li>", _section(page, "summary"))
    assert summary == [
        # click & collect 3 -> 6 (+100%) and ROPO 4 -> 2 (-50%) rank with the KPIs
        "2026-02 against 2026-01: Click &amp; collect purchases rose from 3 to 6 (+100%).",
        "Revenue rose from 1,000 to 1,500 (+50.0%).",
        "Median time to convert fell from 1 d 0 h to 12 h 0 min (\N{MINUS SIGN}50.0%).",
        "ROPO purchases fell from 4 to 2 (\N{MINUS SIGN}50%).",
    ]


def test_a_share_rising_from_zero_is_a_change_in_points(data: DashboardData) -> None:
    kpis = data.period_kpis.with_columns(
        omnichannel_share=pl.when(pl.col("period") == "2026-01").then(0.0).otherwise(0.25)
    )
    page = render_dashboard(
        DashboardData(**{**data.__dict__, "period_kpis": kpis}), title="t", generated_at="g"
    )
    assert "▲ +25.0 pts vs 2026-01" in _section(page, "kpis")


def test_kpis_of_the_only_period_say_it_is_recent(data: DashboardData) -> None:
    recent = data.period_kpis.filter(pl.col("period") == "2026-03")
    page = render_dashboard(
        DashboardData(**{**data.__dict__, "period_kpis": recent}),
        title="t",
        generated_at="g",
    )
    assert "2026-03, the latest period; it is not over yet, or its journeys" in page
    assert re.findall(r"<li>(.*?)</li>", _section(page, "summary")) == [
        "2026-03 is still recent: it is not over, or journeys that will drop off are not all "
        "known yet, so its conversion rate reads high.",
        "2026-03 is the first period in the data.",
    ]
    assert _section(page, "kpis").count("no earlier period") == 5


def test_page_lists_top_paths_of_large_enough_groups(page: str) -> None:
    paths = _section(page, "paths")
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>(.*?)</td>", paths)
    assert rows == [
        ("1", "product view → store visit → store purchase"),
        ("2", "email click"),
        ("3", "product view → add to cart → order placed"),
        ("4", "product view → &lt;img src=x onerror=alert(1)&gt;"),
    ]
    assert "return in store" not in page  # one journey: below min_group_size
    assert "2 d 1 h" in paths
    assert "1 h 5 min" in paths


def test_sankey_caption_says_what_is_left_out(page: str) -> None:
    sankey = _section(page, "sankey")
    assert "Not drawn: 1 link with fewer than 5 moves (3 moves in all)." in sankey
    assert "Repeats of the same touchpoint (1 self-loop, 6 moves) are left out" in sankey
    assert "largest links are drawn" not in sankey  # 6 links, fewer than max_sankey_links


def test_page_inlines_plotly_js_once_and_fetches_nothing(page: str) -> None:
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1
    outside_bundle = page.replace(bundle, "")
    # plotly.js itself holds "https://cdn.plot.ly/un/" as the default topojsonURL, read only by
    # geo traces (none here); outside the bundle no URL may appear at all.
    assert page.count("cdn.plot.ly") == bundle.count("cdn.plot.ly")
    assert "cdn.plot.ly" not in outside_bundle
    assert "https://" not in outside_bundle
    assert "http://" not in outside_bundle
    script_tags = re.findall(r"<script\b[^>]*>", page)
    assert len(script_tags) > 5
    assert not [tag for tag in script_tags if "src" in tag]
    assert "<link" not in outside_bundle
    assert "Content-Security-Policy" in page


def test_page_shows_no_identifier(page: str) -> None:
    for identifier in JOURNEY_IDS + CUSTOMER_KEYS + EVENT_IDS:
        assert identifier not in page
    for prefix in ("jrn-", "cust-", "evt-"):
        assert prefix not in page


def test_page_escapes_inserted_text(page: str) -> None:
    assert "<title>Journeys &lt;Q1&gt; &amp; more</title>" in page
    assert "<Q1>" not in page
    assert "<img src=x" not in page


def test_page_is_deterministic(data: DashboardData, page: str) -> None:
    again = render_dashboard(
        data, title="Journeys <Q1> & more", generated_at="2026-04-01 06:00 UTC", min_group_size=5
    )
    assert again == page


def test_write_dashboard_creates_folders(page: str, tmp_path: Path) -> None:
    target = tmp_path / "reports" / "q1" / "dashboard.html"
    assert write_dashboard(page, target) == target
    assert target.read_text(encoding="utf-8") == page


def test_empty_marts_render_a_page_without_rates(data: DashboardData) -> None:
    # A first run before any journey closes: nothing to divide by, so rates read "n/a".
    empty = DashboardData(**{name: frame.clear() for name, frame in data.__dict__.items()})
    page = render_dashboard(empty, title="Empty", generated_at="2026-04-01")
    values = re.findall(r'<div class="value">([^<]+)</div>', _section(page, "kpis"))
    assert values == ["n/a"] * 5
    assert "No journey has ended yet" in _section(page, "summary")
    assert "No path is followed by enough journeys to be shown." in page
    assert build_figures(empty)["sankey"].data == ()
