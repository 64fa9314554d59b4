"""The dashboard renders in headless Chromium with no network: every section, every Sankey node."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from journey_analytics.dashboards import (
    DashboardData,
    build_figures,
    render_dashboard,
    write_dashboard,
)

from ._browser import run_chromium as _run_chromium

pytestmark = pytest.mark.browser

SECTION_IDS = ("kpis", "sankey", "funnel", "dropoffs", "patterns", "attribution", "paths")


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
    page = render_dashboard(_data(), title="Journeys", generated_at="2026-04-01", min_group_size=5)
    return write_dashboard(page, tmp_path / "dashboard.html")


def test_sankey_nodes_and_sections_are_in_the_rendered_dom(
    chromium: str, dashboard: Path, tmp_path: Path
) -> None:
    (sankey,) = build_figures(_data(), min_group_size=5)["sankey"].data
    # The self-loop and the 3-move link are not drawn; START, email_click, product_view,
    # store_purchase, store_visit, CONVERSION, DROP_OFF remain.
    assert len(sankey.node.label) == 7
    dom = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", dashboard.as_uri()).stdout
    assert len(re.findall(r'<g class="sankey-node"', dom)) == len(sankey.node.label)
    for section_id in SECTION_IDS:
        assert f'<section id="{section_id}">' in dom
    # Every figure was drawn (plotly adds main-svg to each plot it renders).
    assert dom.count('class="main-svg"') >= 5


def test_screenshot_is_not_blank(chromium: str, dashboard: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "dashboard.png"
    _run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1400,3000",
        "--hide-scrollbars",
        dashboard.as_uri(),
    )
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1400x3000 page compresses to a few kB; the charts take far more.
    assert screenshot.stat().st_size > 100_000
