"""The real flow on the committed sample, checked against the generator's ground truth.

Runs ``journey run`` (the CLI, the Prefect flow, DuckDB) twice on ``data/sample/`` into a
temporary folder, then compares the tables with ``data/sample/truth/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from journey_analytics.dashboards import build_figures
from journey_analytics.jobs import MARTS
from journey_analytics.warehouse import Warehouse

from ._browser import run_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
TRUTH = SAMPLE / "truth"
PUBLIC_TABLES = (
    "journeys.sessions",
    "journeys.journeys",
    "journeys.steps",
    *MARTS,
    "ops.batches",
    "core.events",
    "core.identity_links",
    "core.customers",
)


def _config(tmp: Path) -> Path:
    """journey.toml with the sample's paths made absolute and the outputs in ``tmp``."""
    text = (REPO / "journey.toml").read_text()
    text = text.replace('"data/sample/', f'"{SAMPLE.as_posix()}/')
    text = text.replace('database = "journeys.duckdb"', f'database = "{tmp}/journeys.duckdb"')
    text = text.replace('reports_dir = "reports"', f'reports_dir = "{tmp}/reports"')
    path = tmp / "journey.toml"
    path.write_text(text)
    return path


def _journey(*args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "journey"
    result = subprocess.run(
        [str(cli), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _snapshot(database: Path) -> dict[str, pl.DataFrame]:
    with Warehouse.open(database, read_only=True) as wh:
        return {table: wh.read(table) for table in (*PUBLIC_TABLES, "quarantine.rejects")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("e2e")
    config = _config(tmp)
    first = _journey("run", "--config", str(config))
    first_tables = _snapshot(tmp / "journeys.duckdb")
    second = _journey("run", "--config", str(config))
    return {
        "tmp": tmp,
        "first": first,
        "second": second,
        "tables": first_tables,
        "again": _snapshot(tmp / "journeys.duckdb"),
    }


def _partition(frame: pl.DataFrame, key: str) -> set[frozenset[str]]:
    groups = frame.group_by(key).agg(pl.col("event_id"))
    return {frozenset(ids) for ids in groups.get_column("event_id").to_list()}


def test_every_public_table_is_present_and_non_empty(runs: dict) -> None:  # type: ignore[type-arg]
    tables = runs["tables"]
    assert {name: tables[name].height > 0 for name in PUBLIC_TABLES} == dict.fromkeys(
        PUBLIC_TABLES, True
    )


def test_customers_journeys_conversions_and_patterns_equal_the_ground_truth(
    runs: dict,  # type: ignore[type-arg]
) -> None:
    tables = runs["tables"]
    truth_events = pl.read_csv(TRUTH / "events.csv")
    truth_journeys = pl.read_csv(TRUTH / "journeys.csv", schema_overrides={"revenue": pl.String})
    events = tables["core.events"]
    journeys = tables["journeys.journeys"]
    steps = tables["journeys.steps"]

    # Counts the generator promises for seed 42 (see data/sample/README.md).
    assert events.height == truth_events.height == 4578
    assert events.get_column("customer_key").n_unique() == 500
    assert journeys.height == truth_journeys.height == 827
    assert journeys.filter("converted").height == 539
    assert dict(Counter(journeys.get_column("status").to_list())) == {
        "converted": 539,
        "dropped": 288,
    }

    # Exactly the true customers and the true journeys: same partitions of the events.
    assert _partition(events, "customer_key") == _partition(truth_events, "customer_id")
    assert _partition(steps, "journey_id") == _partition(truth_events, "journey_id")

    # Patterns per journey, variant included, equal the truth; so do the counts.
    journey_of = dict(
        zip(
            *truth_events.select("event_id", "journey_id").to_dict(as_series=False).values(),
            strict=True,
        )
    )
    found = {
        (journey_of[journey_id.removeprefix("j:")], pattern, variant)
        for journey_id, pattern, variant in tables["marts.patterns"]
        .select("journey_id", "pattern", "variant")
        .iter_rows()
    }
    expected = {
        (journey_id, pattern, variant if pattern == "click_and_collect" else None)
        for journey_id, patterns, variant in truth_journeys.select(
            "journey_id", pl.col("patterns").fill_null(""), "variant"
        ).iter_rows()
        for pattern in patterns.split(";")
        if pattern
    }
    assert found == expected
    assert dict(Counter(p for _, p, _ in found)) == {
        "online_only": 189,
        "offline_only": 183,
        "ropo": 60,
        "click_and_collect": 68,
        "try_and_buy": 52,
    }
    assert dict(Counter(v for _, p, v in found if p == "click_and_collect")) == {
        "collected": 55,
        "no_show": 13,
    }

    # Drop-off touchpoints and revenue.
    ours = {
        journey_of[j.removeprefix("j:")]: t
        for j, t in journeys.filter(pl.col("status") == "dropped")
        .select("journey_id", "last_touchpoint")
        .iter_rows()
    }
    theirs = dict(
        truth_journeys.filter(~pl.col("converted"))
        .select("journey_id", "dropoff_touchpoint")
        .iter_rows()
    )
    assert ours == theirs
    assert sum(journeys.get_column("revenue").drop_nulls().to_list(), Decimal(0)) == sum(
        (Decimal(v) for v in truth_journeys.get_column("revenue").drop_nulls()), Decimal(0)
    )


def test_every_source_row_is_accounted_for(runs: dict) -> None:  # type: ignore[type-arg]
    batches = runs["tables"]["ops.batches"]
    data_rows = sum(
        sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
        - (path.suffix == ".csv")  # header
        for pattern in ("clickstream/*.jsonl", "crm/*.csv", "pos/*.csv")
        for path in SAMPLE.glob(pattern)
    )
    # 13 clickstream files (3,616 messages), CRM contacts 400 and interactions 664,
    # POS receipts 298 and lines 402.
    assert batches.height == 17
    assert batches.get_column("rows_read").sum() == data_rows == 3616 + 400 + 664 + 298 + 402
    assert (
        batches.filter(
            pl.col("rows_read")
            != pl.col("rows_loaded") + pl.col("rows_duplicate") + pl.col("rows_rejected")
        ).height
        == 0
    )
    # The sample is clean: nothing rejected, nothing duplicated.
    assert batches.select(pl.col("rows_duplicate", "rows_rejected").sum()).row(0) == (0, 0)
    assert runs["tables"]["quarantine.rejects"].height == 0


def test_second_run_loads_nothing_and_gives_the_same_marts(runs: dict) -> None:  # type: ignore[type-arg]
    assert re.search(r"skipped", runs["second"].stdout)
    assert "loaded" not in {
        line.split("│")[3].strip()
        for line in runs["second"].stdout.splitlines()
        if line.count("│") > 4
    }
    first, again = runs["tables"], runs["again"]
    for table in (*MARTS, "journeys.journeys", "journeys.steps", "core.events", "ops.batches"):
        columns = first[table].columns
        ordered = [c for c in columns if first[table].schema[c] != pl.List(pl.String)]
        assert first[table].sort(ordered).equals(again[table].sort(ordered)), table


def test_dashboard_renders_offline_with_every_sankey_node(
    runs: dict,
    chromium: str,  # type: ignore[type-arg]
) -> None:
    tmp: Path = runs["tmp"]
    dashboard = tmp / "reports" / "dashboard.html"
    html = dashboard.read_text()
    # No person in the page: no customer key, no event or journey id.
    keys = runs["tables"]["core.customers"].get_column("customer_key").unique().to_list()
    assert not [key for key in keys if key in html]
    assert "j:web:" not in html and "pos:R-" not in html
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    data = jobs.read_dashboard_data(load_settings(tmp / "journey.toml"))
    (sankey,) = build_figures(data)["sankey"].data
    dom = run_chromium(chromium, tmp / "profile", "--dump-dom", dashboard.as_uri()).stdout
    assert len(re.findall(r'<g class="sankey-node"', dom)) == len(sankey.node.label) > 5
