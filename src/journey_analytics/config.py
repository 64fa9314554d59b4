"""Settings: one frozen, typed object loaded once from a TOML file and the environment.

Relative paths in the file are resolved against the file's own folder, so
``journey run --config some/where/journey.toml`` works from any directory.
Functions elsewhere receive the pieces they need as arguments; nothing else
reads the file or the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from journey_analytics.errors import ConfigError, format_problems
from journey_analytics.graphs import SEGMENT_DIMENSIONS, SegmentDimension
from journey_analytics.identity import IDENTIFIER_TYPES

HASH_KEY_ENV = "JOURNEY_HASH_KEY"
Model = TypeVar("Model", bound=BaseModel)
DATABASE_ENV = "JOURNEY_DATABASE"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SegmentSource(_Frozen):
    """Segment-spec JSON lines (track/page/identify) from a web or app tracker."""

    kind: Literal["segment"]
    path: str = Field(description="glob of .jsonl files, relative to the config file")
    channel: str = Field(description="channel of these events: web or app")


class CrmSource(_Frozen):
    """CRM CSV exports: contacts (identity records) and interactions (events)."""

    kind: Literal["crm"]
    contacts: str
    interactions: str


class PosSource(_Frozen):
    """Point-of-sale CSV exports: receipts and receipt lines, in store-local time."""

    kind: Literal["pos"]
    receipts: str
    lines: str


class TableColumns(_Frozen):
    """Which column of the file holds each canonical field (only timestamp and event_name
    are required; map at least one identifier)."""

    timestamp: str
    event_name: str
    event_id: str | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    payment_token: str | None = None
    order_id: str | None = None
    store_id: str | None = None
    product_id: str | None = None
    category: str | None = None
    fulfilment: str | None = None
    revenue: str | None = None
    currency: str | None = None
    channel: str | None = None

    def identifiers(self) -> dict[str, str]:
        names = ("anonymous_id", "user_id", "email", "phone", "loyalty_id", "payment_token")
        return {name: column for name in names if (column := getattr(self, name))}

    def mapped(self) -> dict[str, str]:
        """canonical field -> source column, for every mapped field."""
        return {name: column for name, column in self.model_dump().items() if column}


class TableSource(_Frozen):
    """Bring your own table: any CSV, Parquet or JSON-lines file (optionally gzipped) described
    by a column mapping, no code. Event names become touchpoints through the taxonomy rows whose
    ``source_kind`` is this source's name, else as themselves in snake case."""

    kind: Literal["table"]
    path: str
    format: Literal["csv", "parquet", "jsonl"] | None = Field(
        default=None, description="default: from the file name (.csv, .parquet, .jsonl, .gz)"
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    columns: TableColumns
    channel: str = Field(default="web", description="channel of rows without a channel column")
    timezone: str | None = Field(
        default=None, description="IANA zone of timestamps written without an offset"
    )
    conversion_events: tuple[str, ...] = ()
    stage: str = "consideration"
    managed: bool = True

    @model_validator(mode="after")
    def _needs_an_identifier(self) -> TableSource:
        if not self.columns.identifiers():
            msg = (
                "columns: map at least one identifier column (anonymous_id, user_id, email, "
                'phone, loyalty_id or payment_token), e.g. user_id = "case_id"'
            )
            raise ValueError(msg)
        if self.timezone is not None and self.timezone not in available_timezones():
            msg = f"timezone: expected an IANA zone such as Europe/Rome, found {self.timezone!r}"
            raise ValueError(msg)
        return self


Source = Annotated[SegmentSource | CrmSource | PosSource | TableSource, Field(discriminator="kind")]


class PrivacySettings(_Frozen):
    hash_key: str | None = Field(
        default=None,
        description="key for HMAC hashing of e-mail, phone and card; the environment "
        f"variable {HASH_KEY_ENV} overrides it",
    )


class IngestSettings(_Frozen):
    max_reject_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="a file with a larger share of rejected rows fails the run (after its "
        "valid rows are loaded)",
    )
    commit_rows: int = Field(
        default=500_000,
        ge=1,
        description="files are written together, in one transaction, until this many rows "
        "wait (DuckDB writes big commits straight to the file, small ones through its log)",
    )


class SessionSettings(_Frozen):
    default_timeout_minutes: float = Field(default=30.0, ge=0)
    timeout_minutes: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"web": 30.0, "app": 30.0, "store": 120.0, "phone": 0.0}
    )
    max_session_minutes: float | None = Field(
        default=None,
        gt=0,
        description="a longer session is cut into windows of this length from its first "
        "event (none by default; Snowplow cuts at 3 days = 4320)",
    )


class JourneySettings(_Frozen):
    timeout_days: float = Field(default=30.0, gt=0)
    noise_touchpoints: tuple[str, ...] = Field(
        default=("sign_in",),
        description="touchpoints that open no journey on their own: in a session made only "
        "of them and of an order's fulfilment steps, they belong to that order's journey",
    )


# Card numbers that payment providers publish for tests: a POS in training mode pays with them.
TEST_CARDS = (
    "4111111111111111",
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "5105105105105100",
    "378282246310005",
    "6011111111111117",
)


class IdentitySettings(_Frozen):
    blocked_values: tuple[str, ...] = (
        "",
        "0",
        "-1",
        "null",
        "none",
        "nan",
        "undefined",
        "anonymous",
        "unknown",
        "test",
        *TEST_CARDS,
    )
    shared_limits: dict[str, int] = Field(
        default_factory=lambda: {
            "loyalty_id": 1,
            "email_hash": 1,
            "phone_hash": 1,
            "payment_hash": 1,
            "anonymous_id": 1,
        },
        description="an identifier linked with more than this many distinct identifiers of "
        "one stronger type (a store tablet signed in to by two user ids, a phone on two "
        "loyalty cards) is shared and links no one; a type left out is never shared",
    )
    customer_limits: dict[str, int] = Field(
        default_factory=lambda: {"user_id": 1},
        description="a customer holds at most this many values of a type; the weakest link "
        "that would pass the limit is dropped",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_user_ids_per_device" in data:
            msg = (
                "max_user_ids_per_device was replaced by shared_limits on 2026-12-01: write "
                "shared_limits = { anonymous_id = "
                f"{data['max_user_ids_per_device']!r} }} (see CHANGELOG.md)"
            )
            raise ValueError(msg)
        return data

    @model_validator(mode="after")
    def _known_types(self) -> IdentitySettings:
        for name, limits in (
            ("shared_limits", self.shared_limits),
            ("customer_limits", self.customer_limits),
        ):
            for kind, limit in limits.items():
                if kind not in IDENTIFIER_TYPES:
                    msg = (
                        f"{name}.{kind}: expected one of {', '.join(IDENTIFIER_TYPES)}, "
                        f"found {kind!r}"
                    )
                    raise ValueError(msg)
                if limit < 1:
                    msg = f"{name}.{kind}: expected a whole number >= 1, found {limit!r}"
                    raise ValueError(msg)
        if "user_id" in self.shared_limits:
            msg = (
                "shared_limits.user_id: a user id has no stronger type to be shared with; "
                "limit it with customer_limits.user_id"
            )
            raise ValueError(msg)
        return self


class PathSettings(_Frozen):
    drop_touchpoints: tuple[str, ...] = ("sign_in",)
    collapse_repeats: bool = True
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="regular expression (whole touchpoint name) -> the name paths and "
        'transition graphs show instead, first match wins: { "search_.*" = "search" }',
    )
    max_length: int | None = Field(
        default=None,
        ge=3,
        description="paths longer than this show their start, … and their end",
    )

    @model_validator(mode="after")
    def _patterns_compile(self) -> PathSettings:
        for pattern in self.aliases:
            try:
                re.compile(pattern)
            except re.error as error:
                msg = f"aliases: {pattern!r} is not a regular expression ({error})"
                raise ValueError(msg) from None
        return self


class GraphSettings(_Frozen):
    segments: tuple[SegmentDimension, ...] = Field(
        default=SEGMENT_DIMENSIONS,
        description="what marts.transitions is split by besides segment all: status "
        "(converted / dropped), first_channel, store, region, cohort (period of a customer's "
        "first journey), period (of the journey's start)",
    )
    period: Literal["month", "week", "day"] = "month"


class LeakageSettings(_Frozen):
    online_channels: tuple[str, ...] = Field(
        default=("web", "app"),
        description="channels where a journey can be abandoned and leak to another channel",
    )
    offline_channels: tuple[str, ...] = Field(
        default=("store", "phone"),
        description="a conversion here after online steps is leakage, not a loss online",
    )
    window_days: float = Field(
        default=30.0,
        gt=0,
        description="at most this long from the last online step to the offline conversion",
    )


class PersonaSettings(_Frozen):
    """Buyer personas: customers clustered by behaviour (``personas.py``), rebuilt with the
    marts."""

    k: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="the number of personas; none: the one of 2..max_k with the highest "
        "silhouette score",
    )
    max_k: int = Field(default=8, ge=2, le=20, description="most personas tried when k is none")
    seed: int = Field(default=0, ge=0, description="same data and seed, same personas")
    sample: int = Field(
        default=10_000,
        ge=100,
        description="customers the clustering is fitted on (drawn with the seed); all are "
        "then given the nearest persona",
    )


class ScorecardSettings(_Frozen):
    """The thresholds of the touchpoint scorecard's SWOT rules
    (``sql/marts/touchpoint_scorecard.sql`` states them)."""

    strong_lift: float = Field(
        default=1.2, gt=0, description="lift (converted / dropped share) of a touchpoint that works"
    )
    min_reach: float = Field(
        default=0.1, ge=0, le=1, description="share of journeys a strength must reach"
    )
    weak_dropoff_rate: float = Field(
        default=0.25, ge=0, le=1, description="drop-off rate that makes a weakness"
    )
    weak_lift: float = Field(
        default=0.8, gt=0, description="lift at or below which it is a weakness"
    )
    leakage_rate: float = Field(
        default=0.1, ge=0, le=1, description="leakage rate that makes an opportunity"
    )
    min_trend_journeys: int = Field(
        default=20,
        ge=1,
        description="journeys through a touchpoint in the period before that its reach trend needs",
    )
    falling_reach: float = Field(
        default=-0.2,
        ge=-1,
        le=0,
        description="change of reach since the period before that makes a threat (-0.2: lost 20%)",
    )


class ScheduleSettings(_Frozen):
    """When ``journey serve`` runs the pipeline (a Prefect deployment with a cron schedule)."""

    cron: str = Field(
        default="0 6 * * *",
        description="standard five-field cron (minute hour day month weekday), checked by "
        "Prefect when the deployment is registered",
    )
    timezone: str = Field(
        default="UTC",
        description="IANA zone the cron is read in, so 06:00 stays 06:00 across DST changes",
    )
    name: str = Field(default="daily", min_length=1, description="the deployment's name")

    @model_validator(mode="after")
    def _known_zone(self) -> ScheduleSettings:
        if self.timezone not in available_timezones():
            msg = f"timezone: expected an IANA zone such as Europe/Rome, found {self.timezone!r}"
            raise ValueError(msg)
        return self


class ScaleSettings(_Frozen):
    """How the per-customer stages run: in this process, or per customer shard on Dask."""

    executor: Literal["local", "dask"] = Field(
        default="local",
        description="local: sessions and journeys in this process (all cores); dask: one "
        "Prefect task per customer shard on a Dask cluster (journey run --executor)",
    )
    dask_address: str | None = Field(
        default=None,
        description="scheduler of an existing Dask cluster (tcp://host:8786); none: a local "
        "cluster with one worker per core",
    )
    work_dir: str = Field(
        default="work",
        description="where the shards' Parquet files go; on a cluster, a folder every worker "
        "sees at the same path (a shared file system)",
    )
    events_per_shard: int = Field(default=1_000_000, ge=1)
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description='most memory DuckDB may use ("8GB"); beyond it, it writes its large '
        "sorts, joins and aggregates to <work_dir>/duckdb-spill; none: 80% of the machine",
    )


class OutputSettings(_Frozen):
    database: str = "journeys.duckdb"
    reports_dir: str = "reports"


class Settings(_Frozen):
    """Everything a run needs, with paths already resolved."""

    base_dir: Path
    sources: dict[str, Source] = Field(min_length=1)
    stores: str
    taxonomy: str | None = None
    referrers: str | None = None
    patterns: str | None = None
    audiences: str | None = None  # default: the package's defaults/audiences.toml
    privacy: PrivacySettings = PrivacySettings()
    ingest: IngestSettings = IngestSettings()
    sessions: SessionSettings = SessionSettings()
    journeys: JourneySettings = JourneySettings()
    identity: IdentitySettings = IdentitySettings()
    paths: PathSettings = PathSettings()
    graphs: GraphSettings = GraphSettings()
    leakage: LeakageSettings = LeakageSettings()
    personas: PersonaSettings = PersonaSettings()
    scorecard: ScorecardSettings = ScorecardSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    scale: ScaleSettings = ScaleSettings()
    output: OutputSettings = OutputSettings()

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_path(self) -> Path:
        return self.resolve(os.environ.get(DATABASE_ENV, self.output.database))

    @property
    def work_path(self) -> Path:
        return self.resolve(self.scale.work_dir)

    @property
    def reports_path(self) -> Path:
        return self.resolve(self.output.reports_dir)

    def hash_key(self) -> str:
        """The key for hashing identifiers, from the environment or the config file."""
        key = os.environ.get(HASH_KEY_ENV) or self.privacy.hash_key
        if not key:
            msg = (
                f"No key for hashing e-mail, phone and card numbers: set the environment "
                f"variable {HASH_KEY_ENV} or [privacy] hash_key in the config file."
            )
            raise ConfigError(msg)
        return key


def load_toml_model(
    path: Path, model: type[Model], *, what: str, extra: dict[str, Any] | None = None
) -> Model:
    """Reads a TOML file into a pydantic model.

    Raises:
        ConfigError: naming the file, and every key that is missing or of the wrong type with
            what was found there.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{what} {path} not found."
        raise ConfigError(msg) from None
    return parse_toml_model(text, model, source=str(path), extra=extra)


def parse_toml_model(
    text: str, model: type[Model], *, source: str, extra: dict[str, Any] | None = None
) -> Model:
    """TOML text into a pydantic model (``source``: where the text came from, for errors).

    Raises:
        ConfigError: naming ``source``, and every key that is missing or of the wrong type
            with what was found there.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        msg = f"{source}: not valid TOML: {error}"
        raise ConfigError(msg) from None
    try:
        return model.model_validate({**data, **(extra or {})})
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            f" (found {item['input']!r})"
            for item in error.errors()
        ]
        raise ConfigError(format_problems(f"{source} is not valid", problems)) from None


def load_settings(path: Path | str) -> Settings:
    """Reads and validates a TOML config file.

    Raises:
        ConfigError: naming the file and every key that is missing or of the wrong type.
    """
    path = Path(path)
    return load_toml_model(
        path,
        Settings,
        what="Config file (pass --config or create journey.toml)",
        extra={"base_dir": path.resolve().parent},
    )
