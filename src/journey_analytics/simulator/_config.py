"""Simulator settings: a frozen, typed object read from a TOML file (``defaults/simulator.toml``).

Input: a TOML file. Output: :class:`SimulatorConfig`, passed to ``generate_sample``. Rates are
probabilities in [0, 1]; journey and customer mixes are weights (normalised over the kinds a
customer can have).
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from journey_analytics.config import load_toml_model
from journey_analytics.errors import ConfigError, format_problems

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]

CATEGORIES = ("shoes", "jackets", "dresses", "jeans", "bags", "accessories")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeriodConfig(_Frozen):
    """The simulated period: first day (UTC / store-local calendar day) and its length."""

    start: date = date(2026, 1, 5)
    days: int = Field(default=180, ge=120)


class CustomerMix(_Frozen):
    """Customer kinds (weights) and how they identify themselves."""

    omnichannel: Weight = 0.42
    online: Weight = 0.24
    store_loyalty: Weight = 0.14
    store_anonymous: Weight = 0.08
    anonymous_browser: Weight = 0.12
    second_device: Rate = Field(0.4, description="customers with an account who use 2 devices")
    third_device: Rate = Field(0.1, description="of those, who use a third (work laptop)")
    device_never_signs_in: Rate = Field(
        0.02, description="extra devices on which the customer never signs in"
    )
    sign_in_per_session: Rate = Field(
        0.25, description="later sessions that sign in again (the first one always does)"
    )
    phone: Rate = Field(0.7, description="customers with an account or card who give a phone")
    email_consent: Rate = 0.7
    loyalty_card_shown: Rate = Field(0.85, description="store purchases with the card scanned")


class JourneyMix(_Frozen):
    """Journey kinds (weights; a customer draws among the kinds its kind allows)."""

    ropo: Weight = 0.15
    click_and_collect: Weight = 0.13
    try_and_buy: Weight = 0.10
    online_only: Weight = 0.20
    offline_only: Weight = 0.14
    dropoff_cart: Weight = Field(0.10, description="cart abandonment")
    dropoff_browse: Weight = Field(0.09, description="leaves after browsing")
    dropoff_store_visit: Weight = Field(0.05, description="leaves after a store visit")
    dropoff_call: Weight = Field(0.04, description="leaves after a call to the call centre")
    click_and_collect_no_show: Rate = 0.2
    try_and_buy_collect: Rate = Field(0.25, description="try-and-buy orders for click and collect")
    returns: Rate = Field(0.12, description="online orders returned in a store")
    reviews: Rate = Field(0.2, description="purchases reviewed online by customers with an account")
    repeat: Rate = Field(0.45, description="chance of another journey after each journey")
    max_journeys: int = Field(5, ge=1)


class ChannelMix(_Frozen):
    """Managed channels: devices, e-mail campaigns, call centre, chat."""

    app_share: Rate = Field(0.4, description="devices that are the app (else the web shop)")
    email_campaign: Rate = Field(0.35, description="journeys opened by an e-mail (if consent)")
    email_click: Rate = Field(0.6, description="e-mail opens followed by a click")
    call: Rate = Field(0.12, description="journeys with a call to the call centre (if phone)")
    chat: Rate = Field(0.10, description="online journeys with a chat (if e-mail known)")


class ReferralMix(_Frozen):
    """Unmanaged touchpoints: share of web/app sessions arriving from each kind of site."""

    review_site: Rate = 0.04
    forum: Rate = 0.02
    marketplace: Rate = 0.03
    social: Rate = 0.06


class SharedDevices(_Frozen):
    """Devices used by several customers (shares of customers)."""

    store_tablet: Rate = Field(0.01, description="customers who sign in on a store tablet")
    family_laptop: Rate = Field(0.01, description="customers sharing a laptop with a relative")
    tablet_block: int = Field(200, ge=2, description="customers per store-tablet roster")


class NoiseKnob(_Frozen):
    """One kind of noise: on or off, and its rate."""

    enabled: bool = True
    rate: Rate = 0.0


class NoiseKnobs(_Frozen):
    """The noise of the contract (docs/sample-format.md, "Noise")."""

    duplicates: NoiseKnob = NoiseKnob(rate=0.02)
    late_events: NoiseKnob = NoiseKnob(rate=0.03)
    malformed_rows: NoiseKnob = NoiseKnob(rate=0.004)
    clock_skew: NoiseKnob = NoiseKnob(rate=0.15)
    out_of_order_files: NoiseKnob = NoiseKnob(rate=0.05)


def _flat_seasonality() -> dict[str, tuple[float, ...]]:
    return {category: (1.0,) * 12 for category in CATEGORIES}


class SimulatorConfig(_Frozen):
    """Everything the simulator's behaviour depends on, besides customers and seed.

    Example:
        >>> config = load_simulator_config()
        >>> config.without_noise().noise_knobs.duplicates.enabled
        False
    """

    period: PeriodConfig = PeriodConfig()
    customers: CustomerMix = CustomerMix()
    journeys: JourneyMix = JourneyMix()
    channels: ChannelMix = ChannelMix()
    referrals: ReferralMix = ReferralMix()
    shared_devices: SharedDevices = SharedDevices()
    seasonality: dict[str, tuple[Weight, ...]] = Field(
        default_factory=_flat_seasonality,
        description="category -> 12 monthly demand weights (January first)",
    )
    noise: bool = Field(True, description="master switch: false turns every noise knob off")
    noise_knobs: NoiseKnobs = NoiseKnobs()

    def knob(self, name: str) -> float:
        """The effective rate of a noise knob: 0 when it or the master switch is off."""
        knob: NoiseKnob = getattr(self.noise_knobs, name)
        return knob.rate if self.noise and knob.enabled else 0.0

    def without_noise(self) -> SimulatorConfig:
        """A copy with the master switch and every noise knob off."""
        knobs = {
            name: knob.model_copy(update={"enabled": False}) for name, knob in self.noise_knobs
        }
        return self.model_copy(update={"noise": False, "noise_knobs": NoiseKnobs(**knobs)})


def default_config_path() -> Path:
    """The shipped defaults file."""
    return Path(str(resources.files("journey_analytics") / "defaults" / "simulator.toml"))


def _seasonality_problems(config: SimulatorConfig) -> list[str]:
    problems = []
    for category in CATEGORIES:
        weights = config.seasonality.get(category)
        if weights is None or len(weights) != 12 or sum(weights) <= 0:
            problems.append(f"seasonality.{category}: expected 12 monthly weights, not all 0")
    problems += [
        f"seasonality.{extra}: unknown category; expected one of {', '.join(CATEGORIES)}"
        for extra in sorted(set(config.seasonality) - set(CATEGORIES))
    ]
    return problems


def load_simulator_config(path: Path | None = None) -> SimulatorConfig:
    """Reads and validates a simulator TOML file (``None``: the shipped defaults).

    Raises:
        ConfigError: naming the file and every key that is missing or of the wrong type.
    """
    path = default_config_path() if path is None else Path(path)
    config = load_toml_model(path, SimulatorConfig, what="Simulator config")
    problems = _seasonality_problems(config)
    if problems:
        raise ConfigError(format_problems(f"{path} is not valid", problems))
    return config
