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


def load_taxonomy(path: Path | None = None) -> pl.DataFrame:
    """Reads and checks a taxonomy file (the default one when ``path`` is None).

    Raises:
        ConfigError: naming the file, the line and the problem for every bad row.
    """
    path = path or default_taxonomy_path()
    try:
        frame = pl.read_csv(path, schema=TAXONOMY_SCHEMA)
    except FileNotFoundError:
        msg = f"Taxonomy file {path} not found."
        raise ConfigError(msg) from None
    except pl.exceptions.PolarsError as error:
        msg = (
            f"{path}: expected the columns {', '.join(TAXONOMY_SCHEMA)} with is_managed and "
            f"is_conversion as true/false; could not read it: {error}"
        )
        raise ConfigError(msg) from None
    problems = []
    for line_no, row in enumerate(frame.iter_rows(named=True), start=2):
        for column in ("source_kind", "event_name", "touchpoint", "stage"):
            if not row[column]:
                problems.append(f"line {line_no}: {column} is empty")
        if row["stage"] and row["stage"] not in STAGES:
            problems.append(
                f"line {line_no}: stage {row['stage']!r} is not one of {', '.join(STAGES)}"
            )
    duplicated = frame.filter(pl.struct("source_kind", "event_name").is_duplicated())
    problems += [
        f"({kind}, {name}) is mapped more than once"
        for kind, name in duplicated.select("source_kind", "event_name").unique().iter_rows()
    ]
    if problems:
        raise ConfigError(format_problems(f"{path} is not a valid taxonomy", problems))
    return frame


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
    path = path or default_referrers_path()
    try:
        frame = pl.read_csv(path, schema=REFERRER_SCHEMA)
    except FileNotFoundError:
        msg = f"Referrer rules file {path} not found."
        raise ConfigError(msg) from None
    except pl.exceptions.PolarsError as error:
        msg = (
            f"{path}: expected the columns {', '.join(REFERRER_SCHEMA)} with is_managed as "
            f"true/false; could not read it: {error}"
        )
        raise ConfigError(msg) from None
    problems = []
    for line_no, row in enumerate(frame.iter_rows(named=True), start=2):
        for column in ("host", "touchpoint", "channel", "stage"):
            if not row[column]:
                problems.append(f"line {line_no}: {column} is empty")
        if row["stage"] and row["stage"] not in STAGES:
            problems.append(
                f"line {line_no}: stage {row['stage']!r} is not one of {', '.join(STAGES)}"
            )
    if problems:
        raise ConfigError(format_problems(f"{path} is not a valid referrer rules file", problems))
    return frame.with_columns(pl.col("host").str.to_lowercase())
