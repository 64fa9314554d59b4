"""Patterns: journey steps to omnichannel pattern hits (ROPO, click-and-collect, try-and-buy,
online-only, offline-only, and any rule an analyst adds).

Input grain: one step of a journey, with the event's business keys (``product_id``,
``category``, ``order_id``, ``fulfilment``). Output grain: one row per (journey, pattern)
with the event ids that matched as evidence (``marts.patterns``).

Rules are data (``defaults/patterns.toml``); see that file for the three kinds of rule.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from journey_analytics.config import load_toml_model

PATTERN_SCHEMA: dict[str, pl.DataType] = {
    "journey_id": pl.String(),
    "customer_key": pl.String(),
    "pattern": pl.String(),
    "variant": pl.String(),
    "evidence_event_ids": pl.List(pl.String()),
    "converted_at": pl.Datetime("us", "UTC"),
    "revenue": pl.Decimal(18, 2),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepSelector(_Frozen):
    touchpoints: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    fulfilment: tuple[str, ...] = ()

    def expr(self) -> pl.Expr:
        """True for the steps this selector matches."""
        condition = pl.lit(True)
        for column, allowed in (
            ("touchpoint", self.touchpoints),
            ("channel", self.channels),
            ("fulfilment", self.fulfilment),
        ):
            if allowed:
                condition &= pl.col(column).is_in(list(allowed))
        return condition


class SequenceRule(_Frozen):
    name: str
    description: str = ""
    kind: Literal["sequence"]
    first: StepSelector
    then: StepSelector
    window_days: float = Field(gt=0)
    match: Literal["product", "category", "any"] = "any"


class FulfilmentRule(_Frozen):
    name: str
    description: str = ""
    kind: Literal["fulfilment"]
    conversion: StepSelector
    follow_up: StepSelector
    found: str
    missing: str


class ChannelsOnlyRule(_Frozen):
    name: str
    description: str = ""
    kind: Literal["channels_only"]
    channels: tuple[str, ...]
    exclude_fulfilment: tuple[str, ...] = ()


Rule = Annotated[SequenceRule | FulfilmentRule | ChannelsOnlyRule, Field(discriminator="kind")]


class RuleSet(_Frozen):
    rules: tuple[Rule, ...]


def default_rules_path() -> Path:
    return Path(str(resources.files("journey_analytics") / "defaults" / "patterns.toml"))


def load_rules(path: Path | None = None) -> tuple[Rule, ...]:
    """Reads pattern rules from a TOML file (the default rules when ``path`` is None).

    Raises:
        ConfigError: naming the file and every rule key that is wrong.
    """
    return load_toml_model(path or default_rules_path(), RuleSet, what="Pattern rules file").rules


def _hits(frame: pl.LazyFrame, rule_name: str, variant: pl.Expr | None = None) -> pl.LazyFrame:
    return frame.select(
        "journey_id",
        "customer_key",
        pl.lit(rule_name).alias("pattern"),
        (variant if variant is not None else pl.lit(None, dtype=pl.String)).alias("variant"),
        "evidence_event_ids",
        "converted_at",
        "revenue",
    )


def _conversions(steps: pl.LazyFrame) -> pl.LazyFrame:
    return steps.filter("is_conversion").select(
        "journey_id",
        "customer_key",
        "position",
        "fulfilment",
        "order_id",
        "product_id",
        "category",
        "occurred_at",
        pl.col("occurred_at").alias("converted_at"),
        "revenue",
        pl.col("event_id").alias("conversion_event_id"),
    )


def _sequence_hits(steps: pl.LazyFrame, rule: SequenceRule) -> pl.LazyFrame:
    keys = {"product": ["product_id"], "category": ["category"], "any": []}[rule.match]
    then = _conversions(steps.filter(rule.then.expr()))
    first = steps.filter(rule.first.expr() & ~pl.col("is_fulfilment")).select(
        "journey_id",
        *keys,
        pl.col("position").alias("first_position"),
        pl.col("occurred_at").alias("first_at"),
        pl.col("event_id").alias("first_event_id"),
    )
    window = timedelta(days=rule.window_days)
    matched = then.join(first, on=["journey_id", *keys]).filter(
        (pl.col("first_position") < pl.col("position"))
        & (pl.col("converted_at") - pl.col("first_at") <= window)
    )
    grouped = (
        matched.sort("journey_id", "first_position")
        .group_by("journey_id", maintain_order=True)
        .agg(
            pl.col("customer_key", "converted_at", "revenue", "conversion_event_id").first(),
            pl.col("first_event_id"),
        )
        .with_columns(
            pl.concat_list("first_event_id", pl.col("conversion_event_id")).alias(
                "evidence_event_ids"
            )
        )
    )
    return _hits(grouped, rule.name)


def _fulfilment_hits(steps: pl.LazyFrame, rule: FulfilmentRule) -> pl.LazyFrame:
    conversions = _conversions(steps.filter(rule.conversion.expr()))
    follow_ups = (
        steps.filter(pl.col("is_fulfilment") & rule.follow_up.expr())
        .sort("journey_id", "position")
        .group_by("journey_id", "order_id", maintain_order=True)
        .agg(pl.col("event_id").alias("follow_up_ids"))
    )
    joined = conversions.join(follow_ups, on=["journey_id", "order_id"], how="left")
    found = pl.col("follow_up_ids").is_not_null()
    return _hits(
        joined.with_columns(
            pl.concat_list(
                pl.col("conversion_event_id"), pl.col("follow_up_ids").fill_null([])
            ).alias("evidence_event_ids")
        ),
        rule.name,
        pl.when(found).then(pl.lit(rule.found)).otherwise(pl.lit(rule.missing)),
    )


def _channels_only_hits(steps: pl.LazyFrame, rule: ChannelsOnlyRule) -> pl.LazyFrame:
    conversions = _conversions(steps).filter(
        ~pl.col("fulfilment").is_in(list(rule.exclude_fulfilment)).fill_null(True)
    )
    before = steps.filter(~pl.col("is_fulfilment"))
    outside = before.filter(~pl.col("channel").is_in(list(rule.channels)))
    # the converted journeys with no step before the sale outside the channels; the evidence
    # (every such step, in order) listed for those journeys only
    hits = conversions.join(outside, on="journey_id", how="anti")
    evidence = (
        before.join(hits, on="journey_id", how="semi")
        .sort("journey_id", "position")
        .group_by("journey_id", maintain_order=True)
        .agg(pl.col("event_id").alias("evidence_event_ids"))
    )
    return _hits(hits.join(evidence, on="journey_id"), rule.name)


def detect_patterns(steps: pl.DataFrame, rules: tuple[Rule, ...]) -> pl.DataFrame:
    """Every (journey, pattern) hit of every rule, with evidence, sorted by journey and rule.

    The rules run as one lazy query: each reads only the columns it needs of ``steps``."""
    lazy = steps.lazy()
    frames = [pl.DataFrame(schema=PATTERN_SCHEMA).lazy()]
    for rule in rules:
        if isinstance(rule, SequenceRule):
            frames.append(_sequence_hits(lazy, rule))
        elif isinstance(rule, FulfilmentRule):
            frames.append(_fulfilment_hits(lazy, rule))
        else:
            frames.append(_channels_only_hits(lazy, rule))
    hits = pl.concat([frame.cast(PATTERN_SCHEMA) for frame in frames])  # type: ignore[arg-type]
    return hits.sort("journey_id", "pattern", maintain_order=True).collect()


def with_patterns(journeys: pl.DataFrame, hits: pl.DataFrame) -> pl.DataFrame:
    """Adds to each journey the sorted list of its patterns (empty when it has none)."""
    per_journey = hits.group_by("journey_id").agg(pl.col("pattern").sort().alias("patterns"))
    return journeys.join(
        per_journey, on="journey_id", how="left", maintain_order="left"
    ).with_columns(pl.col("patterns").fill_null(pl.lit([], dtype=pl.List(pl.String))))
