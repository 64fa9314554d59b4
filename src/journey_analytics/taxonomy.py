"""The taxonomy: how each source's own event names map to canonical touchpoints, and which
referring sites are unmanaged touchpoints.

It is data, not code: a CSV with one row per (source kind, event name) giving the
touchpoint, channel (empty = the source's own channel), stage, whether the company manages
the touchpoint, and whether it is a conversion. The default ships with the package; an
analyst points ``taxonomy = "my_taxonomy.csv"`` in the config at an edited copy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from journey_analytics.errors import ConfigError, format_problems

STAGES = ("awareness", "interest", "consideration", "purchase", "usage", "loyalty")
TAXONOMY_SCHEMA = {
    "source_kind": pl.String,
    "event_name": pl.String,
    "touchpoint": pl.String,
    "channel": pl.String,
    "stage": pl.String,
    "is_managed": pl.Boolean,
    "is_conversion": pl.Boolean,
}


def default_taxonomy_path() -> Path:
    return Path(str(resources.files("journey_analytics") / "defaults" / "taxonomy.csv"))


def _read_mapping(
    path: Path,
    schema: dict[str, Any],
    *,
    what: str,
    required: tuple[str, ...],
    keys: tuple[str, ...],
) -> pl.DataFrame:
    """Reads a mapping CSV and checks it: required columns filled, stages known, each key
    mapped once.

    Raises:
        ConfigError: naming the file, the line and the problem for every bad row.
    """
    try:
        frame = pl.read_csv(path, schema=schema)
    except FileNotFoundError:
        msg = f"{what} {path} not found."
        raise ConfigError(msg) from None
    except pl.exceptions.PolarsError as error:
        booleans = [name for name, dtype in schema.items() if dtype == pl.Boolean]
        msg = (
            f"{path}: expected the columns {', '.join(schema)} with {' and '.join(booleans)} "
            f"as true/false; could not read it: {error}"
        )
        raise ConfigError(msg) from None
    problems = []
    for line_no, row in enumerate(frame.iter_rows(named=True), start=2):
        problems += [f"line {line_no}: {column} is empty" for column in required if not row[column]]
        if row["stage"] and row["stage"] not in STAGES:
            problems.append(
                f"line {line_no}: stage {row['stage']!r} is not one of {', '.join(STAGES)}"
            )
    duplicated = frame.filter(pl.struct(keys).is_duplicated()).select(keys).unique()
    problems += [f"{key} is mapped more than once" for key in duplicated.iter_rows()]
    if problems:
        raise ConfigError(format_problems(f"{path} is not a valid {what.lower()}", problems))
    return frame


def load_taxonomy(path: Path | None = None) -> pl.DataFrame:
    """Reads and checks a taxonomy file (the default one when ``path`` is None).

    Raises:
        ConfigError: naming the file, the line and the problem for every bad row.
    """
    return _read_mapping(
        path or default_taxonomy_path(),
        TAXONOMY_SCHEMA,
        what="Taxonomy file",
        required=("source_kind", "event_name", "touchpoint", "stage"),
        keys=("source_kind", "event_name"),
    )


REFERRER_SCHEMA = {
    "host": pl.String,
    "touchpoint": pl.String,
    "channel": pl.String,
    "stage": pl.String,
    "is_managed": pl.Boolean,
}


def default_referrers_path() -> Path:
    return Path(str(resources.files("journey_analytics") / "defaults" / "referrers.csv"))


def load_referrers(path: Path | None = None) -> pl.DataFrame:
    """Reads the referrer rules: a visit arriving from ``host`` (or a subdomain of it) is the
    rule's touchpoint, e.g. ``trustpilot.com`` -> ``review_site_visit``, unmanaged.

    Raises:
        ConfigError: naming the file, the line and the problem for every bad row.
    """
    frame = _read_mapping(
        path or default_referrers_path(),
        REFERRER_SCHEMA,
        what="Referrer rules file",
        required=("host", "touchpoint", "channel", "stage"),
        keys=("host",),
    )
    return frame.with_columns(pl.col("host").str.to_lowercase())
