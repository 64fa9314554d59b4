"""Evaluate: a finished run scored against the simulator's ground truth.

Input grain: the run's events (``core.events``: event -> customer), steps (event -> journey),
journeys and pattern hits, and the truth (``truth/events.csv``: event -> true customer, true
journey, identity group, status; ``truth/journeys.csv``: one row per true journey).
Output grain: one number per metric, grouped by what it scores (identity, journeys, patterns,
drop-offs, totals, accounting).

Scores are computed over the events both sides know: the truth's ``valid`` events that the run
loaded. Events the run could not load (malformed rows) count against coverage and against the
journeys and patterns they belonged to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

SOURCE_FOLDERS = ("clickstream/", "crm/", "pos/")
PATTERN_NAMES = ("ropo", "click_and_collect", "try_and_buy", "online_only", "offline_only")


@dataclass(frozen=True)
class RunTables:
    """What the evaluator reads from a finished run."""

    events: pl.DataFrame  # event_id, customer_key
    steps: pl.DataFrame  # event_id, journey_id
    journeys: pl.DataFrame  # journey_id, status, conversion_event_id, revenue, last_touchpoint
    patterns: pl.DataFrame  # journey_id, pattern, variant
    batches: pl.DataFrame  # ops.batches


@dataclass(frozen=True)
class Truth:
    """The simulator's answers."""

    events: pl.DataFrame  # event_id, customer_id, journey_id, identity_group, status
    journeys: pl.DataFrame  # journey_id, converted, patterns, variant, dropoff_touchpoint, ...
    rows_written: int | None  # data rows in the source files, from summary.json
    malformed_rows: int | None = None  # rows written broken on purpose, from summary.json


def read_truth(folder: Path) -> Truth:
    """Reads ``truth/``; a version-1 truth (no identity groups, no status) reads as all
    events valid and every link recoverable."""
    events = pl.read_csv(folder / "events.csv", infer_schema=False)
    if "status" not in events.columns:
        events = events.with_columns(pl.lit("valid").alias("status"))
    if "identity_group" not in events.columns:
        events = events.with_columns(pl.col("customer_id").alias("identity_group"))
    journeys = pl.read_csv(
        folder / "journeys.csv",
        infer_schema=False,
    ).with_columns(
        (pl.col("converted") == "true").alias("converted"),
        pl.col("revenue").cast(pl.Float64),
    )
    summary = folder / "summary.json"
    rows_written = malformed_rows = None
    if summary.exists():
        facts = json.loads(summary.read_text())
        malformed = facts.get("counts", {}).get("noise", {}).get("malformed_rows")
        malformed_rows = int(malformed) if malformed is not None else None
        rows = facts.get("rows_written", {})
        rows_written = (
            sum(int(n) for file, n in rows.items() if file.startswith(SOURCE_FOLDERS))
            if isinstance(rows, dict)
            else None
        )
    return Truth(events, journeys, rows_written, malformed_rows)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def b_cubed(pairs: pl.DataFrame, predicted: str, true: str) -> tuple[float | None, float | None]:
    """B-cubed precision and recall of a clustering of elements (one row each).

    Precision averages, over elements, the share of the element's predicted cluster that is in
    its true cluster; recall the share of its true cluster that is in its predicted cluster.
    """
    total = pairs.height
    if not total:
        return None, None
    counts = (
        pairs.group_by(predicted, true)
        .agg(pl.len().alias("both"))
        .with_columns(
            pl.col("both").sum().over(predicted).alias("in_predicted"),
            pl.col("both").sum().over(true).alias("in_true"),
        )
    )
    precision = counts.select((pl.col("both") ** 2 / pl.col("in_predicted")).sum()).item()
    recall = counts.select((pl.col("both") ** 2 / pl.col("in_true")).sum()).item()
    return precision / total, recall / total


def adjusted_rand_index(pairs: pl.DataFrame, predicted: str, true: str) -> float | None:
    """Adjusted Rand index (Hubert and Arabie) of two clusterings of the same elements."""
    n = pairs.height
    if n < 2:
        return None

    def pair_count(column: pl.Expr) -> pl.Expr:
        return (column * (column - 1) / 2).sum()

    both = pairs.group_by(predicted, true).len().select(pair_count(pl.col("len"))).item()
    rows = pairs.group_by(predicted).len().select(pair_count(pl.col("len"))).item()
    columns = pairs.group_by(true).len().select(pair_count(pl.col("len"))).item()
    expected = rows * columns / (n * (n - 1) / 2)
    maximum = (rows + columns) / 2
    if maximum == expected:
        return 1.0
    return float((both - expected) / (maximum - expected))


def score_identity(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Same-customer B-cubed precision and recall, against all true customers and against the
    links the data makes recoverable (same customer and same identity group)."""
    valid = truth.events.filter(pl.col("status") == "valid")
    pairs = valid.join(run.events.select("event_id", "customer_key"), on="event_id")
    precision, recall = b_cubed(pairs, "customer_key", "customer_id")
    recoverable = pairs.with_columns(
        pl.concat_str("customer_id", pl.lit("|"), "identity_group").alias("recoverable")
    )
    _, recall_recoverable = b_cubed(recoverable, "customer_key", "recoverable")
    return {
        "events_scored": pairs.height,
        "event_coverage": _ratio(pairs.height, valid.height),
        "precision": precision,
        "recall": recall,
        "recall_recoverable": recall_recoverable,
        "true_customers": valid.get_column("customer_id").n_unique(),
        "found_customers": pairs.get_column("customer_key").n_unique(),
    }


def score_journeys(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Share of true journeys whose loaded events form exactly one found journey, and the
    adjusted Rand index of event -> journey."""
    pairs = truth.events.filter(pl.col("status") == "valid").join(
        run.steps.select("event_id", pl.col("journey_id").alias("found_journey")), on="event_id"
    )
    per_true = pairs.group_by("journey_id").agg(
        pl.col("found_journey").n_unique().alias("found_journeys"),
        pl.len().alias("events"),
        pl.col("found_journey").first(),
    )
    sizes = pairs.group_by("found_journey").agg(pl.len().alias("found_events"))
    exact = per_true.join(sizes, on="found_journey").filter(
        (pl.col("found_journeys") == 1) & (pl.col("events") == pl.col("found_events"))
    )
    true_journeys = truth.journeys.height
    return {
        "true_journeys": true_journeys,
        "found_journeys": run.journeys.height,
        "exact": exact.height,
        "exact_share": _ratio(exact.height, true_journeys),
        "adjusted_rand_index": adjusted_rand_index(pairs, "found_journey", "journey_id"),
    }


def _found_true_journey(run: RunTables, truth: Truth) -> pl.DataFrame:
    """Each found journey's true journey: the one its conversion (or its first event) is in."""
    anchor = run.journeys.select(
        "journey_id",
        pl.coalesce("conversion_event_id", pl.col("journey_id").str.strip_prefix("j:")).alias(
            "event_id"
        ),
    )
    return anchor.join(
        truth.events.select("event_id", pl.col("journey_id").alias("true_journey")),
        on="event_id",
    ).select("journey_id", "true_journey")


def score_patterns(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Precision and recall per pattern, found journeys matched to true ones by their
    conversion event; and the share of click-and-collect hits with the right variant."""
    mapping = _found_true_journey(run, truth)
    found = run.patterns.join(mapping, on="journey_id")
    expected = (
        truth.journeys.select(
            "journey_id",
            "variant",
            pl.col("patterns").fill_null("").str.split(";").alias("pattern"),
        )
        .explode("pattern")
        .filter(pl.col("pattern") != "")
    )
    scores: dict[str, Any] = {}
    for name in PATTERN_NAMES:
        predicted = set(found.filter(pl.col("pattern") == name).get_column("true_journey"))
        actual = set(expected.filter(pl.col("pattern") == name).get_column("journey_id"))
        hits = len(predicted & actual)
        scores[name] = {
            "true": len(actual),
            "found": len(predicted),
            "precision": _ratio(hits, len(predicted)),
            "recall": _ratio(hits, len(actual)),
        }
    variants = found.filter(pl.col("pattern") == "click_and_collect").join(
        expected.filter(pl.col("pattern") == "click_and_collect").select(
            pl.col("journey_id").alias("true_journey"), pl.col("variant").alias("true_variant")
        ),
        on="true_journey",
    )
    scores["click_and_collect"]["variant_accuracy"] = _ratio(
        variants.filter(pl.col("variant") == pl.col("true_variant")).height, variants.height
    )
    return scores


def score_dropoffs(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Share of truly abandoned journeys found as dropped, ending at the right touchpoint.

    A true journey is looked up through its last loaded event."""
    dropped = truth.journeys.filter(~pl.col("converted")).select("journey_id", "dropoff_touchpoint")
    last_event = (
        truth.events.filter(pl.col("status") == "valid")
        .join(
            run.steps.select("event_id", "journey_id", "position").rename(
                {"journey_id": "found_journey"}
            ),
            on="event_id",
        )
        .sort("journey_id", "found_journey", "position")
        .group_by("journey_id")
        .agg(pl.col("found_journey").last())
    )
    found = dropped.join(last_event, on="journey_id", how="left").join(
        run.journeys.select(
            pl.col("journey_id").alias("found_journey"), "status", "last_touchpoint"
        ),
        on="found_journey",
        how="left",
    )
    right = found.filter(
        (pl.col("status") == "dropped")
        & (pl.col("last_touchpoint") == pl.col("dropoff_touchpoint"))
    )
    return {
        "true_dropoffs": dropped.height,
        "found_dropoffs": run.journeys.filter(pl.col("status") == "dropped").height,
        "right_touchpoint": right.height,
        "accuracy": _ratio(right.height, dropped.height),
    }


def score_totals(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Conversions and revenue found against the true totals."""
    converted = run.journeys.filter(pl.col("status") == "converted")
    true_revenue = truth.journeys.get_column("revenue").drop_nulls().sum()
    found_revenue = converted.get_column("revenue").cast(pl.Float64).drop_nulls().sum()
    return {
        "true_conversions": truth.journeys.filter("converted").height,
        "found_conversions": converted.height,
        "true_revenue": round(float(true_revenue), 2),
        "found_revenue": round(float(found_revenue), 2),
    }


def score_accounting(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Every source row accounted for: read = loaded + duplicates + rejected, and read equals
    what the simulator wrote."""
    totals = run.batches.select(
        pl.col("rows_read", "rows_loaded", "rows_duplicate", "rows_rejected").sum()
    ).row(0, named=True)
    balanced = totals["rows_read"] == (
        totals["rows_loaded"] + totals["rows_duplicate"] + totals["rows_rejected"]
    )
    return {
        **{name: int(value or 0) for name, value in totals.items()},
        "rows_written": truth.rows_written,
        "balanced": balanced,
        "nothing_lost": balanced
        and (truth.rows_written is None or truth.rows_written == totals["rows_read"]),
        "malformed_rows": truth.malformed_rows,
        "malformed_events": truth.events.filter(pl.col("status") == "malformed").height,
    }


def evaluate(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Every score of a run against the truth."""
    return {
        "identity": score_identity(run, truth),
        "journeys": score_journeys(run, truth),
        "patterns": score_patterns(run, truth),
        "dropoffs": score_dropoffs(run, truth),
        "totals": score_totals(run, truth),
        "accounting": score_accounting(run, truth),
    }


def score_rows(scores: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(area, metric, value) rows for printing, values as text."""

    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) <= 1 else f"{value:,.2f}"
        if value is None:
            return "n/a"
        return (
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )

    rows: list[tuple[str, str, str]] = []
    for area, metrics in scores.items():
        for metric, value in metrics.items():
            if isinstance(value, dict):
                rows.extend((area, f"{metric} {k}", show(v)) for k, v in value.items())
            else:
                rows.append((area, metric, show(value)))
    return rows
