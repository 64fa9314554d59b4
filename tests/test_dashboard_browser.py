"""The dashboard in headless Chromium with every network route closed: plotly draws every
figure with no console error, every section is there, the Sankey shows exactly the links of
marts.transitions it should, and a screenshot is kept as a test artefact.

The artefacts go to ``$JOURNEY_TEST_ARTEFACTS`` (``.ci/run`` sets it) or the test's tmp_path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import plotly.offline
import polars as pl
import pytest

from journey_analytics.dashboards import (
    DashboardData,
    build_figures,
    render_dashboard,
    write_dashboard,
)

from ._browser import PNG_SIGNATURE, png_size, read_probe, write_probed_copy
from ._browser import run_chromium as _run_chromium

pytestmark = pytest.mark.browser

MIN_GROUP_SIZE = 5


def _data() -> DashboardData:
    transitions = pl.DataFrame(
        {
            "segment": ["all"] * 8 + ["converted"],
            "from_touchpoint": [
                "START", "START", "product_view", "product_view", "product_view",
                "store_visit", "store_purchase", "email_click", "START",
            ],
            "to_touchpoint": [
                "product_view", "email_click", "product_view", "store_visit", "DROP_OFF",
                "store_purchase", "CONVERSION", "DROP_OFF", "product_view",
            ],
            "transitions": [10, 5, 6, 7, 3, 6, 6, 5, 6],
            "customers": [10, 5, 4, 7, 3, 6, 6, 5, 6],
            "probability": [0.67, 0.33, 0.38, 0.44, 0.18, 1.0, 1.0, 1.0, 1.0],
            "median_seconds": [60.0] * 9,
            "p90_seconds": [600.0] * 9,
        }
    )  # fmt: skip
    return DashboardData(
        transitions=transitions,
        dropoffs=pl.DataFrame(
            {
                "touchpoint": ["product_view", "email_click", "store_visit"],
                "journeys_through": [20, 5, 7],
                "exits": [3, 5, 0],
                "dropoff_rate": [0.15, 1.0, 0.0],
            }
        ),
        funnel=pl.DataFrame(
            {
                "stage_order": [1, 2, 3, 4, 5, 6],
                "stage": ["awareness", "interest", "consideration", "purchase", "usage", "loyalty"],
                "journeys": [15, 14, 10, 6, 3, 1],
                "share_of_journeys": [1.0, 0.933, 0.667, 0.4, 0.2, 0.067],
                "dropoffs": [1, 4, 4, 0, 0, 0],
                "dropoff_rate": [0.067, 0.286, 0.4, 0.0, 0.0, 0.0],
            }
        ),
        patterns=pl.DataFrame(
            {
                "journey_id": ["jrn-1", "jrn-2", "jrn-3", "jrn-4"],
                "customer_key": ["cust-1", "cust-2", "cust-3", "cust-4"],
                "pattern": ["ropo", "click_and_collect", "click_and_collect", "try_and_buy"],
                "variant": [None, "collected", "no_show", None],
                "evidence_event_ids": [["evt-1"], ["evt-2"], ["evt-3"], ["evt-4"]],
                "revenue": [120.0, 40.0, 35.0, 80.0],
            }
        ),
        paths=pl.DataFrame(
            {
                "path": ["product_view > store_visit > store_purchase", "email_click", "call"],
                "steps": [3, 1, 1],
                "journeys": [9, 5, 1],
                "conversions": [6, 0, 0],
                "conversion_rate": [0.667, 0.0, 0.0],
                "median_duration_seconds": [180_000.0, 0.0, 60.0],
            }
        ),
        attribution=pl.DataFrame(
            {
                "model": ["first_touch", "last_touch", "last_touch", "linear", "linear"],
                "dimension": ["channel"] * 5,
                "value": ["web", "web", "store", "web", "store"],
                "conversions": [6.0, 2.0, 4.0, 3.5, 2.5],
                "revenue": [275.0, 75.0, 200.0, 150.0, 125.0],
            }
        ),
    )


@pytest.fixture
def dashboard(tmp_path: Path) -> Path:
    page = render_dashboard(
        _data(), title="Journeys", generated_at="2026-04-01", min_group_size=MIN_GROUP_SIZE
    )
    return write_dashboard(page, tmp_path / "dashboard.html")


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("JOURNEY_TEST_ARTEFACTS") or tmp_path / "artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _expected_sankey_links(transitions: pl.DataFrame) -> set[tuple[str, str, int]]:
    """What the Sankey must draw, from the mart alone: segment ``all``, no self-loop (a Sankey
    cannot draw one), no link of fewer than MIN_GROUP_SIZE moves (privacy). Fewer than the
    40-link cap here, so the cap removes nothing."""
    kept = transitions.filter(
        (pl.col("segment") == "all")
        & (pl.col("from_touchpoint") != pl.col("to_touchpoint"))
        & (pl.col("transitions") >= MIN_GROUP_SIZE)
    )
    return set(kept.select("from_touchpoint", "to_touchpoint", "transitions").iter_rows())


def test_dashboard_renders_every_section_and_the_sankey_of_the_mart_without_errors(
    chromium: str, dashboard: Path, tmp_path: Path
) -> None:
    probed = write_probed_copy(dashboard, tmp_path / "probed.html")
    dom = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", probed.as_uri()).stdout
    probe = read_probe(dom)

    # plotly (the copy inlined in the page) drew every figure, and nothing went wrong: no
    # uncaught error, rejected promise, console.error or fetch blocked by the page's CSP.
    assert probe["ready"] is True
    assert probe["plotly"] == plotly.offline.get_plotlyjs_version()
    assert probe["problems"] == []
    # Every section of the navigation is on the page, in the same order; each figure of
    # build_figures is drawn in its own section.
    figures = build_figures(_data(), min_group_size=MIN_GROUP_SIZE)
    assert probe["nav"] == [f"#{section}" for section in probe["sections"]]
    assert {"kpis", "paths", *figures} <= set(probe["sections"])
    assert probe["drawn"] == [f"figure-{name}" for name in figures]

    # The visible Sankey trace is segment "all" of marts.transitions, link for link:
    # product_view -> product_view (a self-loop), product_view -> DROP_OFF (3 moves, under
    # MIN_GROUP_SIZE) and the "converted" segment's START -> product_view are not in it.
    sankey = probe["sankey"]
    names = sankey["names"]
    drawn_links = list(
        zip(
            [names[i] for i in sankey["source"]],
            [names[i] for i in sankey["target"]],
            sankey["value"],
            strict=True,
        )
    )
    expected = _expected_sankey_links(_data().transitions)
    assert len(expected) == 6
    assert sankey["visible"] is True
    assert len(drawn_links) == len(set(drawn_links))
    assert set(drawn_links) == expected
    assert sorted(names) == sorted({name for link in expected for name in link[:2]})
    # ... and the browser drew exactly those nodes (with their labels) and links.
    assert sankey["drawn_links"] == len(expected)
    assert sorted(sankey["drawn_nodes"]) == sorted(sankey["labels"])
    assert len(sankey["labels"]) == len(names) == 7


def test_the_probe_reports_errors_console_errors_and_blocked_fetches(
    chromium: str, tmp_path: Path
) -> None:
    """The check above is not vacuous: the same probe on a broken page lists each problem."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html>\n<html><head>\n"
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\">\n"
        "</head><body><main></main>\n<script>\n"
        'console.error("boom", 42);\n'
        'Promise.reject("nope");\n'
        'fetch("https://cdn.example.com/plotly.js").catch(() => {});\n'
        "notAFunction();\n"
        "</script></body></html>\n"
    )
    probed = write_probed_copy(page, tmp_path / "probed.html")
    dom = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", probed.as_uri()).stdout
    probe = read_probe(dom)
    assert probe["ready"] is False  # no plot on the page: the probe gave up waiting
    # the location of the uncaught error is the probed copy's line: not asserted
    problems = sorted(re.sub(r" \(file:.*\)$", "", problem) for problem in probe["problems"])
    assert problems == [
        "blocked by CSP: connect-src https://cdn.example.com/plotly.js",
        "console.error: boom 42",
        "uncaught: Uncaught ReferenceError: notAFunction is not defined",
        "unhandled rejection: nope",
    ]


def test_screenshot_is_kept_as_an_artefact_and_is_not_blank(
    chromium: str, dashboard: Path, artefacts: Path, tmp_path: Path
) -> None:
    screenshot = artefacts / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    _run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1400,3000",
        "--hide-scrollbars",
        dashboard.as_uri(),
    )
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE
    assert png_size(screenshot) == (1400, 3000)
    # A blank 1400x3000 page compresses to a few kB; the charts take far more.
    assert screenshot.stat().st_size > 100_000
