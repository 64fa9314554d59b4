"""Audiences: named, rule-based segments of customers for marketing automation.

Input grain: one row per canonical event (``core.events``: customer_key, touchpoint, channel,
stage, is_managed, is_conversion, fulfilment, order_id, category, occurred_at) and the rules of
an audiences file (:class:`AudienceRules`). Output grain: one row per (audience, customer)
member (:func:`audience_members`), and one row per audience with its size and who entered and
left since the last run, counted (:func:`audience_changes`).

A rule is evaluated on the events of the ``within_days`` before ``as_of`` (the end of the
data, unless given). A customer is a member when every ``did`` condition holds (an event in
the window matches its filters; if it says ``older_than_days``, at least that long before
``as_of``; if it says ``not_followed_by``, with no later event of the same customer -- and of
the same order, by whoever, with ``same = "order_id"`` -- matching that) and no ``did_not``
condition does (no event in the window matches it). Only customers with an event in the window
are considered: an audience of ``did_not`` conditions alone is "active in the window, but not
...". A later event is one with a later ``occurred_at``: one at the same moment does not
follow. An audience file::

    [[audience]]
    name = "tried_in_store_no_purchase"
    description = "Tried a product on in a store in the last 14 days and bought nothing since"
    within_days = 14
    [[audience.did]]
    touchpoint = ["try_on"]
    not_followed_by = { is_conversion = true }
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from journey_analytics.config import load_toml_model, parse_toml_model

EVENT_COLUMNS = (
    "customer_key",
    "event_id",
    "touchpoint",
    "channel",
    "stage",
    "is_managed",
    "is_conversion",
    "fulfilment",
    "order_id",
    "category",
    "occurred_at",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventFilter(_Frozen):
    """Which events match: every given field must hold (lists: one of the values)."""

    touchpoint: tuple[str, ...] | None = None
    channel: tuple[str, ...] | None = None
    stage: tuple[str, ...] | None = None
    category: tuple[str, ...] | None = None
    fulfilment: tuple[str, ...] | None = None
    is_conversion: bool | None = None
    is_managed: bool | None = None

    def expression(self) -> pl.Expr:
        """The filter as a Polars expression over ``core.events`` columns."""
        conditions = [pl.lit(True)]
        for column in ("touchpoint", "channel", "stage", "category", "fulfilment"):
            values = getattr(self, column)
            if values is not None:
                conditions.append(pl.col(column).is_in(list(values)).fill_null(False))
        for column in ("is_conversion", "is_managed"):
            value = getattr(self, column)
            if value is not None:
                conditions.append(pl.col(column) == value)
        return pl.all_horizontal(conditions)


class FollowFilter(EventFilter):
    """Events that, coming later, undo a ``did`` condition: of the same customer (``same =
    "category"``: and in the same category); ``same = "order_id"``: of the same order, by
    whoever (a pick-up by someone else counts)."""

    same: Literal["order_id", "category"] | None = None


class Condition(EventFilter):
    """A ``did`` condition: an event in the window that matches."""

    older_than_days: float | None = Field(default=None, ge=0)
    not_followed_by: FollowFilter | None = None


class Audience(_Frozen):
    name: str = Field(description="lower case letters, digits, _ and -: the export's file name")
    description: str = ""
    within_days: float = Field(gt=0, description="the window before as_of the rules look at")
    did: tuple[Condition, ...] = ()
    did_not: tuple[EventFilter, ...] = ()

    @model_validator(mode="after")
    def _checked(self) -> Audience:
        if not _NAME.match(self.name):
            msg = f"name: expected lower case letters, digits, _ and -, found {self.name!r}"
            raise ValueError(msg)
        if not self.did and not self.did_not:
            msg = f"audience {self.name!r}: expected at least one did or did_not condition"
            raise ValueError(msg)
        return self


class AudienceRules(_Frozen):
    audience: tuple[Audience, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> AudienceRules:
        names = [audience.name for audience in self.audience]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            msg = f"audience names must be unique; repeated: {', '.join(repeated)}"
            raise ValueError(msg)
        return self


def default_audiences_path() -> Path:
    return Path(str(resources.files("journey_analytics") / "defaults" / "audiences.toml"))


def load_audiences(path: Path | None = None) -> AudienceRules:
    """Reads and validates an audiences file (None: the shipped examples).

    Raises:
        ConfigError: naming the file and every key that is wrong, with what was found.
    """
    return load_toml_model(
        default_audiences_path() if path is None else path, AudienceRules, what="Audiences file"
    )


def parse_audiences(text: str, *, source: str = "<text>") -> AudienceRules:
    """Audiences from the text of an audiences file (a notebook's draft of a new one).

    Raises:
        ConfigError: naming ``source`` and every key that is wrong, with what was found.
    """
    return parse_toml_model(text, AudienceRules, source=source)


def _holds(window: pl.DataFrame, condition: Condition, *, as_of: datetime) -> pl.DataFrame:
    """The customers for whom a ``did`` condition holds in ``window`` (the window's events)."""
    matches = window.filter(condition.expression())
    if condition.older_than_days is not None:
        matches = matches.filter(
            pl.col("occurred_at") <= as_of - timedelta(days=condition.older_than_days)
        )
    follow = condition.not_followed_by
    if follow is not None:
        # an order is followed by whoever picks it up (another customer, unstitched, too);
        # anything else by the same customer, in the same category if asked
        keys = (
            ["order_id"]
            if follow.same == "order_id"
            else ["customer_key", *([follow.same] if follow.same else [])]
        )
        later = window.filter(follow.expression()).select(
            *keys, pl.col("occurred_at").alias("followed_at")
        )
        undone = (
            matches.join(later, on=keys, how="inner")
            .filter(pl.col("followed_at") > pl.col("occurred_at"))
            .select("event_id")
            .unique()
        )
        matches = matches.join(undone, on="event_id", how="anti")
    return matches.select("customer_key").unique()


def audience_members(
    events: pl.DataFrame, rules: AudienceRules, *, as_of: datetime
) -> pl.DataFrame:
    """The members of every audience as of ``as_of``: columns audience, customer_key (sorted).
    ``events`` needs :data:`EVENT_COLUMNS`; events after ``as_of`` are not read."""
    keyed = events.filter(pl.col("customer_key").is_not_null())
    parts = []
    for audience in rules.audience:
        start = as_of - timedelta(days=audience.within_days)
        window = keyed.filter(pl.col("occurred_at").is_between(start, as_of))
        members = window.select("customer_key").unique()
        for condition in audience.did:
            members = members.join(
                _holds(window, condition, as_of=as_of), on="customer_key", how="semi"
            )
        for excluded in audience.did_not:
            members = members.join(
                window.filter(excluded.expression()).select("customer_key"),
                on="customer_key",
                how="anti",
            )
        parts.append(members.select(pl.lit(audience.name).alias("audience"), "customer_key"))
    return (
        pl.concat(parts)
        if parts
        else pl.DataFrame(schema={"audience": pl.String, "customer_key": pl.String})
    ).sort("audience", "customer_key")


def audience_changes(
    before: pl.DataFrame, after: pl.DataFrame, rules: AudienceRules
) -> pl.DataFrame:
    """Per audience of ``rules``: members now, and how many entered and left since
    ``before`` (the last run's members), counted, not named."""
    rows = []
    for audience in rules.audience:
        old = before.filter(pl.col("audience") == audience.name).get_column("customer_key")
        new = after.filter(pl.col("audience") == audience.name).get_column("customer_key")
        rows.append(
            {
                "audience": audience.name,
                "members": new.len(),
                "entered": new.filter(~new.is_in(old.implode())).len(),
                "exited": old.filter(~old.is_in(new.implode())).len(),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "audience": pl.String,
            "members": pl.Int64,
            "entered": pl.Int64,
            "exited": pl.Int64,
        },
    )


# what an export may carry: the pseudonymous key and keyed hashes, never a raw identifier
EXPORT_IDENTIFIERS = ("email_hash", "phone_hash")


def audience_export(members: pl.DataFrame, identifiers: pl.DataFrame) -> pl.DataFrame:
    """One audience's members for a CRM import: customer_key and every keyed e-mail and phone
    hash of the customer (``;``-joined, sorted; empty when none is known). ``identifiers``:
    ``core.customers`` rows (identifier_type, identifier_value, customer_key)."""
    hashes = (
        identifiers.filter(pl.col("identifier_type").is_in(list(EXPORT_IDENTIFIERS)))
        .join(members.select("customer_key").unique(), on="customer_key", how="semi")
        .group_by("customer_key", "identifier_type")
        .agg(pl.col("identifier_value").unique().sort().str.join(";"))
        .pivot("identifier_type", index="customer_key", values="identifier_value")
    )
    for column in EXPORT_IDENTIFIERS:
        if column not in hashes.columns:
            hashes = hashes.with_columns(pl.lit(None, pl.String).alias(column))
    return (
        members.select("customer_key")
        .join(hashes, on="customer_key", how="left")
        .select("customer_key", *EXPORT_IDENTIFIERS)
        .with_columns(pl.col(EXPORT_IDENTIFIERS).fill_null(""))
        .sort("customer_key")
    )
