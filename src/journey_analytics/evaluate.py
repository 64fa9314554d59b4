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

from dataclasses import dataclass
from typing import Any

import polars as pl

from journey_analytics.errors import JourneyError

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
    personas: pl.DataFrame | None = None  # customer_key, persona (marts.customer_personas)


@dataclass(frozen=True)
class Truth:
    """The simulator's answers."""

    events: pl.DataFrame  # event_id, customer_id, journey_id, identity_group, status
    journeys: pl.DataFrame  # journey_id, converted, patterns, variant, dropoff_touchpoint, ...
    rows_written: int | None  # data rows in the source files, from summary.json
    malformed_rows: int | None = None  # rows written broken on purpose, from summary.json
    customers: pl.DataFrame | None = None  # customer_id, kind (truth/customers.csv)


def truth_from(
    events: pl.DataFrame, journeys: pl.DataFrame, summary: dict[str, Any] | None
) -> Truth:
    """The truth from ``truth/events.csv``, ``truth/journeys.csv`` and ``summary.json`` (all
    read as text); a version-1 truth (no identity groups, no status) reads as all events valid
    and every link recoverable."""
    if "status" not in events.columns:
        events = events.with_columns(pl.lit("valid").alias("status"))
    if "identity_group" not in events.columns:
        events = events.with_columns(pl.col("customer_id").alias("identity_group"))
    journeys = journeys.with_columns(
        (pl.col("converted") == "true").alias("converted"),
        pl.col("revenue").cast(pl.Float64),
    )
    rows_written = malformed_rows = None
    if summary is not None:
        malformed = summary.get("counts", {}).get("noise", {}).get("malformed_rows")
        malformed_rows = int(malformed) if malformed is not None else None
        rows = summary.get("rows_written", {})
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
    if valid.height and pairs.height < valid.height / 2:
        msg = (
            f"Only {pairs.height:,} of the truth's {valid.height:,} events are in this run: "
            "is --truth the simulation this database was loaded from?"
        )
        raise JourneyError(msg)
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
    """Share of true journeys found exactly, and the adjusted Rand index of event -> journey.

    A true journey is found exactly when every one of its events was loaded and they make up
    one found journey with nothing else in it; a journey that lost an event to a malformed row
    is not (``exact_loaded`` counts those whose loaded events alone match). A true event the
    run loaded but left out of every journey counts as a journey of its own.
    """
    events = truth.events.join(
        run.steps.select("event_id", pl.col("journey_id").alias("found_journey")),
        on="event_id",
        how="left",
    )
    loaded = events.filter(pl.col("status") == "valid").with_columns(
        pl.coalesce("found_journey", pl.lit("missing:") + pl.col("event_id")).alias("found_journey")
    )
    per_true = events.group_by("journey_id").agg(
        (pl.col("status") == "malformed").any().alias("lost_an_event")
    )
    matched = (
        loaded.group_by("journey_id")
        .agg(
            pl.col("found_journey").n_unique().alias("found_journeys"),
            pl.len().alias("events"),
            pl.col("found_journey").first(),
        )
        .join(
            loaded.group_by("found_journey").agg(pl.len().alias("found_events")), on="found_journey"
        )
        .filter(
            (pl.col("found_journeys") == 1)
            & (pl.col("events") == pl.col("found_events"))
            & ~pl.col("found_journey").str.starts_with("missing:")
        )
        .join(per_true, on="journey_id")
    )
    exact = matched.filter(~pl.col("lost_an_event")).height
    true_journeys = truth.journeys.height
    return {
        "true_journeys": true_journeys,
        "found_journeys": run.journeys.height,
        "exact": exact,
        "exact_share": _ratio(exact, true_journeys),
        "exact_loaded": matched.height,
        "step_coverage": _ratio(
            loaded.filter(~pl.col("found_journey").str.starts_with("missing:")).height,
            loaded.height,
        ),
        "adjusted_rand_index": adjusted_rand_index(loaded, "found_journey", "journey_id"),
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
    conversion (or first) event; and the share of click-and-collect hits with the right
    variant.

    Precision counts every found (journey, pattern) row: a hit is right once per true journey
    that has the pattern; a second hit on the same true journey, or one that maps to no true
    journey, is wrong.
    """
    mapping = _found_true_journey(run, truth)
    found = run.patterns.join(mapping, on="journey_id", how="left")
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
        rows = found.filter(pl.col("pattern") == name)
        actual = set(expected.filter(pl.col("pattern") == name).get_column("journey_id"))
        right = {journey for journey in rows.get_column("true_journey") if journey in actual}
        scores[name] = {
            "true": len(actual),
            "found": rows.height,
            "precision": _ratio(len(right), rows.height),
            "recall": _ratio(len(right), len(actual)),
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
    """Of the truly abandoned journeys, the share found dropped at the right touchpoint
    (recall); of the journeys found dropped, the share that are such a journey (precision).

    A true journey is looked up through its last loaded event in true time."""
    dropped = truth.journeys.filter(~pl.col("converted")).select("journey_id", "dropoff_touchpoint")
    order = "occurred_at" if "occurred_at" in truth.events.columns else "event_id"
    last_event = (
        truth.events.filter(pl.col("status") == "valid")
        .join(
            run.steps.select("event_id", pl.col("journey_id").alias("found_journey")), on="event_id"
        )
        .sort("journey_id", order)
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
    found_dropoffs = run.journeys.filter(pl.col("status") == "dropped").height
    right_journeys = right.get_column("found_journey").n_unique()
    return {
        "true_dropoffs": dropped.height,
        "found_dropoffs": found_dropoffs,
        "right_touchpoint": right.height,
        "accuracy": _ratio(right.height, dropped.height),
        "precision": _ratio(right_journeys, found_dropoffs),
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


def score_personas(run: RunTables, truth: Truth) -> dict[str, Any] | None:
    """How well the personas recover the simulator's planted customer kinds: the adjusted Rand
    index over the run's customers with a persona, each taken as the kind of the true customer
    most of its events belong to (ties: the first customer id). None without personas or
    without the truth's customers."""
    if run.personas is None or truth.customers is None:
        return None
    valid = truth.events.filter(pl.col("status") == "valid")
    owners = (
        valid.join(run.events.select("event_id", "customer_key"), on="event_id")
        .group_by("customer_key", "customer_id")
        .len()
        .sort("customer_key", "len", "customer_id", descending=[False, True, False])
        .unique("customer_key", keep="first")
    )
    pairs = run.personas.join(owners, on="customer_key").join(
        truth.customers.select("customer_id", "kind"), on="customer_id"
    )
    return {
        "customers_scored": pairs.height,
        "personas": run.personas.get_column("persona").n_unique(),
        "kinds": pairs.get_column("kind").n_unique(),
        "adjusted_rand_index": adjusted_rand_index(pairs, "persona", "kind"),
    }


def evaluate(run: RunTables, truth: Truth) -> dict[str, Any]:
    """Every score of a run against the truth."""
    scores = {
        "identity": score_identity(run, truth),
        "journeys": score_journeys(run, truth),
        "patterns": score_patterns(run, truth),
        "dropoffs": score_dropoffs(run, truth),
        "totals": score_totals(run, truth),
        "accounting": score_accounting(run, truth),
    }
    personas = score_personas(run, truth)
    if personas is not None:
        scores["personas"] = personas
    return scores


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
