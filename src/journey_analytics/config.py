"""Settings: one frozen, typed object loaded once from a TOML file and the environment.

Relative paths in the file are resolved against the file's own folder, so
``journey run --config some/where/journey.toml`` works from any directory.
Functions elsewhere receive the pieces they need as arguments; nothing else
reads the file or the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from journey_analytics.errors import ConfigError, format_problems

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


Source = Annotated[SegmentSource | CrmSource | PosSource, Field(discriminator="kind")]


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


class SessionSettings(_Frozen):
    default_timeout_minutes: float = Field(default=30.0, ge=0)
    timeout_minutes: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"web": 30.0, "app": 30.0, "store": 120.0, "phone": 0.0}
    )


class JourneySettings(_Frozen):
    timeout_days: float = Field(default=30.0, gt=0)
    noise_touchpoints: tuple[str, ...] = Field(
        default=("sign_in",),
        description="touchpoints that open no journey on their own: in a session made only "
        "of them and of an order's fulfilment steps, they belong to that order's journey",
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
    )
    max_user_ids_per_device: int = Field(
        default=1,
        ge=1,
        description="an anonymous id seen with more user ids than this is a shared device "
        "and links no one",
    )


class PathSettings(_Frozen):
    drop_touchpoints: tuple[str, ...] = ("sign_in",)
    collapse_repeats: bool = True


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
    privacy: PrivacySettings = PrivacySettings()
    ingest: IngestSettings = IngestSettings()
    sessions: SessionSettings = SessionSettings()
    journeys: JourneySettings = JourneySettings()
    identity: IdentitySettings = IdentitySettings()
    paths: PathSettings = PathSettings()
    output: OutputSettings = OutputSettings()

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_path(self) -> Path:
        return self.resolve(os.environ.get(DATABASE_ENV, self.output.database))

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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{what} {path} not found."
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as error:
        msg = f"{path}: not valid TOML: {error}"
        raise ConfigError(msg) from None
    try:
        return model.model_validate({**data, **(extra or {})})
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            f" (found {item['input']!r})"
            for item in error.errors()
        ]
        raise ConfigError(format_problems(f"{path} is not valid", problems)) from None


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
