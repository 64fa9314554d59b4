"""How accurate is it: the simulator's default (noisy) retailer, run and scored.

A seeded sample small enough for CI goes through the jobs the flow calls (ingest, stitching,
journeys, marts), then ``evaluate`` scores it against the truth with the targets of the
product: identity precision >= 0.99 and recall >= 0.97 on recoverable links, exact journeys
>= 0.95, precision and recall >= 0.95 for ROPO, click-and-collect and try-and-buy, and no
source row lost.
"""

from __future__ import annotations

from typing import Any

import pytest

from journey_analytics import jobs
from journey_analytics.config import load_settings
from journey_analytics.sample import generate_sample

from ._project import sample_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("accuracy")
    generate_sample(tmp / "sample", customers=3000, seed=7)
    settings = load_settings(sample_config(tmp / "sample", tmp))
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    jobs.build_journeys(settings)
    jobs.build_marts(settings)
    return jobs.evaluate_run(settings.database_path, tmp / "sample" / "truth", None)


def test_identity(scores: dict[str, Any]) -> None:
    assert scores["identity"]["precision"] >= 0.99
    assert scores["identity"]["recall_recoverable"] >= 0.97


def test_journeys(scores: dict[str, Any]) -> None:
    assert scores["journeys"]["exact_share"] >= 0.95


@pytest.mark.parametrize("pattern", ["ropo", "click_and_collect", "try_and_buy"])
def test_omnichannel_patterns(scores: dict[str, Any], pattern: str) -> None:
    assert scores["patterns"][pattern]["precision"] >= 0.95
    assert scores["patterns"][pattern]["recall"] >= 0.95


def test_no_row_lost(scores: dict[str, Any]) -> None:
    accounting = scores["accounting"]
    assert accounting["rows_written"] == accounting["rows_read"]
    assert accounting["nothing_lost"] is True
    # the simulator's malformed rows are exactly what was quarantined
    assert accounting["rows_rejected"] == accounting["malformed_rows"]


def test_dropoffs_and_totals(scores: dict[str, Any]) -> None:
    assert scores["dropoffs"]["accuracy"] >= 0.95
    assert scores["dropoffs"]["precision"] >= 0.95
    totals = scores["totals"]
    assert totals["found_conversions"] / totals["true_conversions"] >= 0.99
    # all links, shared devices and never-linked cookies included
    assert scores["identity"]["recall"] >= 0.99
