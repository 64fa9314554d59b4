"""Seeded, deterministic sample data for the whole pipeline, with its ground truth.

Input: a number of customers, a seed and a period. Output: the files described in
``docs/sample-format.md`` -- reference files (one row per store / product), clickstream JSON
lines (one row per Segment message), CRM contacts (one row per contact) and interactions (one row
per interaction), POS receipts (one row per receipt) and receipt lines (one row per line), and
``truth/`` (one row per customer, identifier, canonical event and journey).

Every customer is planned as a list of journeys, each a list of visits (a web/app session, an
e-mail, a call or a store visit) on distinct days; the visits are then turned into source rows.
The plan obeys the journey rules of the contract, and :func:`generate_sample` re-derives the
patterns and the timing rules from the produced events before writing anything, so the truth is
exactly what the contract's rules give on the data.

Example:
    >>> summary = generate_sample(Path("data/sample"), customers=500, seed=42)  # doctest: +SKIP
    >>> summary.files["pos/receipts.csv"]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from journey_analytics.ingest import (
    CONTACT_COLUMNS,
    INTERACTION_COLUMNS,
    LINE_COLUMNS,
    RECEIPT_COLUMNS,
)

__all__ = ["PATTERNS", "SampleSummary", "generate_sample"]

PATTERNS = ("click_and_collect", "offline_only", "online_only", "ropo", "try_and_buy")
"""Pattern names of ``truth/journeys.csv``, sorted."""

_CURRENCY = "EUR"
_SITE = "https://shop.example"
_APP_CONTEXT = {"name": "Shop", "version": "4.2.0"}
_CONVERSIONS = ("order_placed", "store_purchase")
_CLICK_TOUCHPOINTS = (
    "home_view",
    "search",
    "product_view",
    "add_to_cart",
    "sign_in",
    "order_placed",
    "review",
)
_CRM_TYPES = {
    "email_open": "email",
    "email_click": "email",
    "call": "phone",
    "store_visit": "store",
    "try_on": "store",
}
_ONLINE_CHANNELS = frozenset({"web", "app", "email", "chat"})
_OFFLINE_CHANNELS = frozenset({"store", "phone"})
_OPENING_S = 10 * 3600
_CLOSING_S = 19 * 3600 + 30 * 60
_MAX_GAP = timedelta(days=12)
_DROPOFF_QUIET = timedelta(days=35)
_AFTER_CONVERSION_QUIET = timedelta(days=7)
_PATTERN_WINDOW = timedelta(days=30)
# Plan in whole days: visits of a journey are 1-4 days apart, so consecutive events are < 12 days
# apart; these margins keep the >= 7 / >= 35 day rules true whatever the time of day.
_DROPOFF_END_MARGIN_DAYS = 38
_CONVERTED_END_MARGIN_DAYS = 8
_MIN_DAYS = 120


@dataclass(frozen=True)
class SampleSummary:
    """What :func:`generate_sample` wrote.

    Attributes:
        customers: Customers in ``truth/customers.csv``.
        journeys: Journeys in ``truth/journeys.csv``.
        events: Canonical events (rows of ``truth/events.csv``).
        conversions: Converted journeys.
        patterns: Pattern name -> journeys carrying it (all pattern names present).
        files: Path relative to the output directory -> rows written (header excluded).
        journey_kinds: Generator journey kind -> journeys.
        dropoff_touchpoints: Last touchpoint of a dropped journey -> journeys.
        variants: Click-and-collect variant (``collected``/``no_show``) -> journeys.
    """

    customers: int
    journeys: int
    events: int
    conversions: int
    patterns: dict[str, int]
    files: dict[str, int]
    journey_kinds: dict[str, int]
    dropoff_touchpoints: dict[str, int]
    variants: dict[str, int]


# --- reference data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Store:
    store_id: str
    name: str
    region: str
    timezone: str
    phone_prefix: str
    mobile_lead: str


@dataclass(frozen=True)
class _Product:
    product_id: str
    name: str
    category: str
    price_cents: int


_STORES = (
    _Store("S01", "Milano Duomo", "Italy", "Europe/Rome", "+39", "3"),
    _Store("S02", "Roma Termini", "Italy", "Europe/Rome", "+39", "3"),
    _Store("S03", "Lisboa Chiado", "Portugal", "Europe/Lisbon", "+351", "9"),
    _Store("S04", "Helsinki Kamppi", "Finland", "Europe/Helsinki", "+358", "4"),
)

_PRODUCT_NAMES = {
    "shoes": (
        "Leather Sneaker",
        "Suede Loafer",
        "Chelsea Boot",
        "Running Shoe",
        "Canvas Slip-On",
        "Ankle Boot",
        "Ballet Flat",
        "Derby Shoe",
        "Hiking Boot",
        "Espadrille",
    ),
    "jackets": (
        "Denim Jacket",
        "Wool Coat",
        "Puffer Jacket",
        "Trench Coat",
        "Leather Biker",
        "Rain Shell",
        "Quilted Vest",
        "Bomber Jacket",
        "Linen Blazer",
        "Parka",
    ),
    "dresses": (
        "Wrap Dress",
        "Slip Dress",
        "Shirt Dress",
        "Maxi Dress",
        "Knit Dress",
        "Midi Dress",
        "Sundress",
        "Pleated Dress",
        "Tunic Dress",
        "Evening Dress",
    ),
    "jeans": (
        "Slim Jeans",
        "Straight Jeans",
        "Wide-Leg Jeans",
        "Bootcut Jeans",
        "Mom Jeans",
        "Skinny Jeans",
        "Relaxed Jeans",
        "Cropped Jeans",
        "Black Jeans",
        "Carpenter Jeans",
    ),
    "bags": (
        "Tote Bag",
        "Crossbody Bag",
        "Backpack",
        "Clutch",
        "Weekender",
        "Bucket Bag",
        "Belt Bag",
        "Shopper",
        "Messenger Bag",
        "Laptop Sleeve",
    ),
    "accessories": (
        "Wool Scarf",
        "Leather Belt",
        "Beanie",
        "Sunglasses",
        "Leather Gloves",
        "Silk Scarf",
        "Card Holder",
        "Baseball Cap",
        "Socks 3-Pack",
        "Keyring",
    ),
}
_PRICE_RANGES = {
    "shoes": (49, 179),
    "jackets": (79, 299),
    "dresses": (39, 159),
    "jeans": (39, 119),
    "bags": (29, 249),
    "accessories": (9, 59),
}
_CATALOGUE_SEED = 20260105  # the catalogue is the same for every sample seed

_FIRST_NAMES = (
    "giulia", "marco", "sofia", "luca", "chiara", "matteo", "ana", "joao", "ines", "tiago",
    "mariana", "pedro", "aino", "mikko", "emilia", "juho", "laura", "ville", "elena", "paolo",
)  # fmt: skip
_LAST_NAMES = (
    "rossi", "bianchi", "romano", "colombo", "ricci", "silva", "santos", "ferreira", "costa",
    "oliveira", "korhonen", "virtanen", "makinen", "nieminen", "laine", "greco", "bruno",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_CAMPAIGNS = ("winter-sale", "spring-new-in", "summer-sale", "loyalty-days")

# customer kind -> share of customers (the remainder goes to omnichannel)
_CUSTOMER_KIND_SHARES = (
    ("online", 0.24),
    ("store_loyalty", 0.14),
    ("store_anonymous", 0.08),
    ("anonymous_browser", 0.12),
)
# customer kind -> (journey kind, weight); drop-off kinds are "dropoff_<last touchpoint>"
_JOURNEY_WEIGHTS: dict[str, tuple[tuple[str, int], ...]] = {
    "omnichannel": (
        ("ropo", 18),
        ("click_and_collect", 16),
        ("try_and_buy", 12),
        ("online_only", 12),
        ("offline_only", 10),
        ("dropoff_add_to_cart", 10),
        ("dropoff_product_view", 8),
        ("dropoff_store_visit", 7),
        ("dropoff_call", 5),
    ),
    "online": (
        ("online_only", 55),
        ("dropoff_add_to_cart", 20),
        ("dropoff_product_view", 15),
        ("dropoff_call", 10),
    ),
    "store_loyalty": (("offline_only", 65), ("dropoff_store_visit", 20), ("dropoff_call", 15)),
    "store_anonymous": (("offline_only", 1),),
    "anonymous_browser": (("dropoff_product_view", 1),),
}


def _catalogue() -> tuple[_Product, ...]:
    rng = random.Random(_CATALOGUE_SEED)
    products = []
    for category, names in _PRODUCT_NAMES.items():
        low, high = _PRICE_RANGES[category]
        for name in names:
            euros = rng.randrange(low, high + 1, 10)
            products.append(_Product("", name, category, euros * 100 - 10))
    return tuple(
        _Product(f"P{number:03d}", p.name, p.category, p.price_cents)
        for number, p in enumerate(products, start=1)
    )


# --- plan ----------------------------------------------------------------------------------------


@dataclass
class _Device:
    channel: str  # "web" or "app"
    anonymous_id: str


@dataclass
class _Customer:
    customer_id: str
    kind: str
    store: _Store
    devices: list[_Device]
    user_id: str = ""
    email: str = ""
    phone: str = ""
    loyalty_id: str = ""
    payment_token: str = ""
    consent_email: bool = False
    phone_in_traits: bool = False
    contact_email: str = ""
    contact_phone: str = ""
    created_at: str = ""

    @property
    def has_account(self) -> bool:
        return bool(self.user_id)


@dataclass
class _Step:
    touchpoint: str
    gap_s: int  # seconds after the previous step of the visit
    product: _Product | None = None
    quantity: int = 1
    lines: tuple[tuple[_Product, int], ...] = ()
    query: str = ""
    search_category: str = ""
    fulfilment: str = ""
    store_id: str = ""  # click-and-collect orders: the collecting store
    conv_ref: int = -1  # conversion: its own ref; pickup/review: the ref of the conversion
    rating: int = 0

    @property
    def category(self) -> str:
        if self.search_category:
            return self.search_category
        if self.product is not None:
            return self.product.category
        return self.lines[0][0].category if self.lines else ""


@dataclass
class _Visit:
    day: int
    start_s: int  # seconds after midnight on the visit's clock
    steps: list[_Step]
    device: _Device | None = None
    store: _Store | None = None
    campaign: str = ""

    @property
    def clock(self) -> str:
        return self.store.timezone if self.store is not None else "UTC"


@dataclass
class _Journey:
    kind: str
    patterns: tuple[str, ...]
    visits: list[_Visit]
    variant: str = ""
    journey_id: str = ""

    @property
    def converted(self) -> bool:
        return not self.kind.startswith("dropoff")

    @property
    def first_day(self) -> int:
        return self.visits[0].day

    @property
    def last_day(self) -> int:
        return self.visits[-1].day

    def shift(self, days: int) -> None:
        for visit in self.visits:
            visit.day += days


@dataclass
class _Planner:
    rng: random.Random
    products: tuple[_Product, ...]
    used_ids: set[str] = field(default_factory=set)
    next_conv_ref: int = 0

    def unique(self, make: _IdMaker) -> str:
        while True:
            value = make(self.rng)
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def conv_ref(self) -> int:
        self.next_conv_ref += 1
        return self.next_conv_ref

    def product_in(self, category: str) -> _Product:
        return self.rng.choice([p for p in self.products if p.category == category])

    def category(self) -> str:
        return self.rng.choice(tuple(_PRODUCT_NAMES))


class _IdMaker:
    """A callable drawing one candidate identifier from the generator's random stream."""

    def __init__(self, kind: str, store: _Store | None = None) -> None:
        self.kind = kind
        self.store = store

    def __call__(self, rng: random.Random) -> str:
        if self.kind == "anonymous_id":
            return f"a-{rng.getrandbits(64):016x}"
        if self.kind == "user_id":
            return f"u-{rng.randrange(10**7):07d}"
        if self.kind == "loyalty_id":
            return f"L{rng.randrange(10**9):09d}"
        if self.kind == "payment_token":
            return f"tok_{rng.getrandbits(64):016x}"
        if self.kind == "email":
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            return f"{first}.{last}{rng.randrange(10, 1000)}@{rng.choice(_EMAIL_DOMAINS)}"
        assert self.store is not None
        digits = 9 if self.store.phone_prefix == "+39" else 8
        number = "".join(str(rng.randrange(10)) for _ in range(digits))
        return f"{self.store.phone_prefix}{self.store.mobile_lead}{number}"


def _customer_kinds(rng: random.Random, customers: int) -> list[str]:
    kinds: list[str] = []
    for kind, share in _CUSTOMER_KIND_SHARES:
        kinds += [kind] * round(customers * share)
    kinds = kinds[:customers]
    kinds += ["omnichannel"] * (customers - len(kinds))
    rng.shuffle(kinds)
    return kinds


def _contact_email_variant(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.2:
        local, domain = email.split("@")
        return f"{local.title()}@{domain.title()}"
    if roll < 0.3:
        return f" {email} "
    return email


def _contact_phone_variant(rng: random.Random, phone: str, prefix: str) -> str:
    national = phone[len(prefix) :]
    groups = [national[:3], national[3:6], national[6:]]
    roll = rng.random()
    if roll < 0.4:
        return " ".join([prefix, *groups])
    if roll < 0.6:
        return "-".join([prefix, *groups])
    return phone


def _build_customer(planner: _Planner, number: int, kind: str) -> _Customer:
    rng = planner.rng
    store = rng.choice(_STORES)
    customer = _Customer(f"K{number:05d}", kind, store, [])
    if kind in ("omnichannel", "online", "anonymous_browser"):
        two = kind != "anonymous_browser" and rng.random() < 0.4
        channels = ["web", "app"] if two else [rng.choice(("web", "web", "app"))]
        customer.devices = [_Device(c, planner.unique(_IdMaker("anonymous_id"))) for c in channels]
    if kind in ("omnichannel", "online"):
        customer.user_id = planner.unique(_IdMaker("user_id"))
        customer.email = planner.unique(_IdMaker("email"))
        customer.consent_email = rng.random() < 0.7
    if kind in ("omnichannel", "store_loyalty"):
        customer.loyalty_id = planner.unique(_IdMaker("loyalty_id"))
    if kind == "store_loyalty" and rng.random() < 0.6:
        customer.email = planner.unique(_IdMaker("email"))
    phone_share = {"omnichannel": 0.8, "online": 0.5, "store_loyalty": 1.0}.get(kind, 0.0)
    if rng.random() < phone_share:
        customer.phone = planner.unique(_IdMaker("phone", store))
    if kind in ("omnichannel", "store_loyalty", "store_anonymous"):
        customer.payment_token = planner.unique(_IdMaker("payment_token"))
    customer.phone_in_traits = bool(customer.phone) and rng.random() < 0.5
    if customer.email:
        customer.contact_email = _contact_email_variant(rng, customer.email)
    if customer.phone:
        customer.contact_phone = _contact_phone_variant(rng, customer.phone, store.phone_prefix)
    created = datetime(2023, 1, 1, 9, tzinfo=UTC) + timedelta(seconds=rng.randrange(86400 * 1000))
    customer.created_at = _utc_iso(created)
    return customer


# --- journey builders (visit days relative to the journey start) ---------------------------------


def _click_gap(rng: random.Random) -> int:
    return rng.randint(15, 200)


def _utc_start(rng: random.Random) -> int:
    return rng.randint(7 * 3600, 20 * 3600)


def _store_start(rng: random.Random) -> int:
    return rng.randint(_OPENING_S, 18 * 3600 + 30 * 60)


def _browse_steps(
    planner: _Planner, category: str, *, views: int, end_with_view: bool = True
) -> list[_Step]:
    rng = planner.rng
    steps: list[_Step] = []
    if rng.random() < 0.5:
        steps.append(_Step("home_view", 0))
    if rng.random() < 0.5:
        product = planner.product_in(category)
        query = rng.choice((category, product.name.lower()))
        steps.append(_Step("search", _click_gap(rng), query=query, search_category=category))
    steps += [
        _Step("product_view", _click_gap(rng), product=planner.product_in(category))
        for _ in range(views)
    ]
    if not end_with_view and rng.random() < 0.3:
        steps.append(_Step("home_view", _click_gap(rng)))
    steps[0].gap_s = 0
    return steps


def _session(planner: _Planner, customer: _Customer, day: int, steps: list[_Step]) -> _Visit:
    device = planner.rng.choice(customer.devices)
    return _Visit(day, _utc_start(planner.rng), steps, device=device)


def _email_visit(planner: _Planner, customer: _Customer, category: str) -> _Visit:
    """An e-mail open, and often a click leading to a campaign web/app session."""
    rng = planner.rng
    steps = [_Step("email_open", 0)]
    if rng.random() < 0.6:
        steps.append(_Step("email_click", rng.randint(60, 3600)))
        browse = _browse_steps(planner, category, views=rng.randint(1, 2))
        browse[0].gap_s = rng.randint(5, 30)
        steps += browse
    visit = _session(planner, customer, 0, steps)
    visit.campaign = rng.choice(_CAMPAIGNS)
    if len(steps) == 1:
        visit.device = None  # an open without a click never reaches the shop
    return visit


def _maybe_email(planner: _Planner, customer: _Customer, category: str) -> list[_Visit]:
    if customer.consent_email and planner.rng.random() < 0.35:
        return [_email_visit(planner, customer, category)]
    return []


def _order_lines(planner: _Planner, category: str) -> tuple[tuple[_Product, int], ...]:
    rng = planner.rng
    lines = [(planner.product_in(category), rng.choice((1, 1, 1, 2)))]
    if rng.random() < 0.35:
        lines.append((planner.product_in(planner.category()), 1))
    return tuple(lines)


def _order_session(
    planner: _Planner,
    customer: _Customer,
    category: str,
    fulfilment: str,
    *,
    view_first: bool,
) -> tuple[_Visit, _Step]:
    """A session that signs in, fills the cart and places an order of ``category`` first."""
    rng = planner.rng
    lines = _order_lines(planner, category)
    steps: list[_Step] = []
    if view_first:
        steps.append(_Step("product_view", 0, product=lines[0][0]))
    steps.append(_Step("sign_in", _click_gap(rng)))
    steps += [
        _Step("add_to_cart", _click_gap(rng), product=product, quantity=quantity)
        for product, quantity in lines
    ]
    order = _Step(
        "order_placed",
        _click_gap(rng),
        lines=lines,
        fulfilment=fulfilment,
        conv_ref=planner.conv_ref(),
    )
    steps.append(order)
    steps[0].gap_s = 0
    return _session(planner, customer, 0, steps), order


def _store_purchase_visit(
    planner: _Planner, customer: _Customer, category: str, *, visit_first: bool, try_on: bool
) -> _Visit:
    rng = planner.rng
    lines = _order_lines(planner, category)
    steps: list[_Step] = []
    if visit_first:
        steps.append(_Step("store_visit", 0))
    if try_on:
        steps.append(_Step("try_on", rng.randint(120, 900), product=lines[0][0]))
    steps.append(_Step("store_purchase", rng.randint(300, 1200), lines=lines))
    steps[-1].conv_ref = planner.conv_ref()
    steps[0].gap_s = 0
    return _Visit(0, _store_start(rng), steps, store=_store_for(planner, customer))


def _store_for(planner: _Planner, customer: _Customer) -> _Store:
    return customer.store if planner.rng.random() < 0.85 else planner.rng.choice(_STORES)


def _pickup_visit(planner: _Planner, store: _Store, order: _Step) -> _Visit:
    step = _Step("store_pickup", 0, lines=order.lines, conv_ref=order.conv_ref)
    return _Visit(0, _store_start(planner.rng), [step], store=store)


def _lay_out(planner: _Planner, visits: Sequence[_Visit]) -> list[_Visit]:
    """Give the visits increasing days, 1-4 days apart."""
    day = 0
    for index, visit in enumerate(visits):
        if index:
            day += planner.rng.randint(1, 4)
        visit.day = day
    return list(visits)


def _ropo(planner: _Planner, customer: _Customer) -> _Journey:
    rng = planner.rng
    category = planner.category()
    visits = _maybe_email(planner, customer, category)
    for _ in range(rng.randint(1, 2)):
        steps = _browse_steps(planner, category, views=rng.randint(1, 3), end_with_view=False)
        if rng.random() < 0.3:
            steps.append(
                _Step("add_to_cart", _click_gap(rng), product=planner.product_in(category))
            )
        visits.append(_session(planner, customer, 0, steps))
    purchase = _store_purchase_visit(
        planner, customer, category, visit_first=rng.random() < 0.5, try_on=rng.random() < 0.3
    )
    return _Journey("ropo", ("ropo",), _lay_out(planner, [*visits, purchase]))


def _click_and_collect(planner: _Planner, customer: _Customer) -> _Journey:
    rng = planner.rng
    category = planner.category()
    visits = _maybe_email(planner, customer, category)
    if rng.random() < 0.6:
        steps = _browse_steps(planner, category, views=rng.randint(1, 3))
        visits.append(_session(planner, customer, 0, steps))
    order_visit, order = _order_session(
        planner, customer, category, "click_and_collect", view_first=rng.random() < 0.5
    )
    order.store_id = customer.store.store_id
    visits = _lay_out(planner, [*visits, order_visit])
    variant = "collected" if rng.random() < 0.7 else "no_show"
    if variant == "collected":
        pickup = _pickup_visit(planner, customer.store, order)
        pickup.day = order_visit.day + rng.randint(1, 4)
        visits.append(pickup)
    return _Journey("click_and_collect", ("click_and_collect",), visits, variant=variant)


def _try_and_buy(planner: _Planner, customer: _Customer) -> _Journey:
    rng = planner.rng
    category = planner.category()
    store = _store_for(planner, customer)
    tried = planner.product_in(category)
    steps = [_Step("store_visit", 0), _Step("try_on", rng.randint(120, 900), product=tried)]
    if rng.random() < 0.3:
        other = planner.product_in(planner.category())
        steps.append(_Step("try_on", rng.randint(120, 600), product=other))
    visits = [_Visit(0, _store_start(rng), steps, store=store)]
    with_cc = rng.random() < 0.25
    fulfilment = "click_and_collect" if with_cc else "delivery"
    order_visit, order = _order_session(planner, customer, category, fulfilment, view_first=True)
    visits = _lay_out(planner, [*visits, order_visit])
    patterns: tuple[str, ...] = ("try_and_buy",)
    variant = ""
    if with_cc:
        patterns = ("click_and_collect", "try_and_buy")
        order.store_id = customer.store.store_id
        variant = "collected" if rng.random() < 0.7 else "no_show"
        if variant == "collected":
            pickup = _pickup_visit(planner, customer.store, order)
            pickup.day = order_visit.day + rng.randint(1, 4)
            visits.append(pickup)
    return _Journey("try_and_buy", patterns, visits, variant=variant)


def _online_only(planner: _Planner, customer: _Customer) -> _Journey:
    rng = planner.rng
    category = planner.category()
    visits = _maybe_email(planner, customer, category)
    for _ in range(rng.randint(0, 2)):
        steps = _browse_steps(planner, category, views=rng.randint(1, 3), end_with_view=False)
        visits.append(_session(planner, customer, 0, steps))
    order_visit, _ = _order_session(
        planner, customer, category, "delivery", view_first=rng.random() < 0.6
    )
    return _Journey("online_only", ("online_only",), _lay_out(planner, [*visits, order_visit]))


def _offline_only(planner: _Planner, customer: _Customer) -> _Journey:
    rng = planner.rng
    category = planner.category()
    if not customer.loyalty_id:
        purchase = _store_purchase_visit(
            planner, customer, category, visit_first=False, try_on=False
        )
        return _Journey("offline_only", ("offline_only",), [purchase])
    visits: list[_Visit] = []
    if customer.phone and rng.random() < 0.25:
        visits.append(_Visit(0, rng.randint(8 * 3600, 17 * 3600), [_Step("call", 0)]))
    if rng.random() < 0.35:
        product = planner.product_in(category)
        steps = [_Step("store_visit", 0), _Step("try_on", rng.randint(120, 900), product=product)]
        visits.append(_Visit(0, _store_start(rng), steps, store=_store_for(planner, customer)))
    purchase = _store_purchase_visit(
        planner, customer, category, visit_first=rng.random() < 0.7, try_on=rng.random() < 0.4
    )
    return _Journey("offline_only", ("offline_only",), _lay_out(planner, [*visits, purchase]))


def _dropoff(planner: _Planner, customer: _Customer, last: str) -> _Journey:
    rng = planner.rng
    category = planner.category()
    visits: list[_Visit] = []
    if customer.devices:
        if last != "product_view" and rng.random() < 0.5:
            visits = _maybe_email(planner, customer, category)
        browse_sessions = rng.randint(1, 2) if last == "product_view" else rng.randint(0, 1)
        for _ in range(browse_sessions):
            steps = _browse_steps(planner, category, views=rng.randint(1, 3))
            visits.append(_session(planner, customer, 0, steps))
    if last == "add_to_cart":
        product = planner.product_in(category)
        steps = [_Step("product_view", 0, product=product)]
        if rng.random() < 0.3:
            steps.append(_Step("sign_in", _click_gap(rng)))
        steps.append(_Step("add_to_cart", _click_gap(rng), product=product))
        visits.append(_session(planner, customer, 0, steps))
    elif last == "store_visit":
        visit = _Visit(0, _store_start(rng), [_Step("store_visit", 0)])
        visit.store = _store_for(planner, customer)
        visits.append(visit)
    elif last == "call":
        visits.append(_Visit(0, rng.randint(8 * 3600, 17 * 3600), [_Step("call", 0)]))
    return _Journey("dropoff", (), _lay_out(planner, visits))


def _build_journey(planner: _Planner, customer: _Customer, kind: str) -> _Journey:
    if kind.startswith("dropoff_"):
        return _dropoff(planner, customer, kind.removeprefix("dropoff_"))
    builders = {
        "ropo": _ropo,
        "click_and_collect": _click_and_collect,
        "try_and_buy": _try_and_buy,
        "online_only": _online_only,
        "offline_only": _offline_only,
    }
    return builders[kind](planner, customer)


def _journey_kind(planner: _Planner, customer: _Customer, *, converted_only: bool) -> str | None:
    options = [
        (kind, weight)
        for kind, weight in _JOURNEY_WEIGHTS[customer.kind]
        if not (converted_only and kind.startswith("dropoff"))
        and not (kind == "dropoff_call" and not customer.phone)
    ]
    if not options:
        return None
    return planner.rng.choices([k for k, _ in options], [w for _, w in options])[0]


# --- customer timelines --------------------------------------------------------------------------


def _plan_journeys(planner: _Planner, customer: _Customer, days: int) -> list[_Journey]:
    """Place 1-3 journeys after each other, keeping the quiet periods of the contract."""
    rng = planner.rng
    wanted = rng.choices((1, 2, 3), (4, 4, 2))[0]
    # customers who can convert may start late; anonymous browsers only drop off, which must end
    # well before the data does
    latest_start = days - 80 if customer.kind == "anonymous_browser" else days - 40
    cursor = rng.randint(0, latest_start)
    journeys: list[_Journey] = []
    for _ in range(wanted):
        kind = _journey_kind(planner, customer, converted_only=False)
        assert kind is not None
        journey = _build_journey(planner, customer, kind)
        if not journey.converted and cursor + journey.last_day > days - _DROPOFF_END_MARGIN_DAYS:
            kind = _journey_kind(planner, customer, converted_only=True)
            if kind is None:
                break
            journey = _build_journey(planner, customer, kind)
        if cursor + journey.last_day > days - _CONVERTED_END_MARGIN_DAYS:
            break
        journey.shift(cursor)
        journeys.append(journey)
        quiet = (37, 60) if not journey.converted else (14, 40)
        cursor = journey.last_day + rng.randint(*quiet)
    return journeys


def _sessions(journeys: Iterable[_Journey]) -> list[_Visit]:
    return [v for j in journeys for v in j.visits if v.device is not None]


def _use_every_device(planner: _Planner, customer: _Customer, journeys: list[_Journey]) -> None:
    """Make a two-device customer use both; forget devices that end up unused."""
    sessions = _sessions(journeys)
    used = {id(v.device) for v in sessions}
    unused = [d for d in customer.devices if id(d) not in used]
    if unused and len(sessions) >= 2 and len(customer.devices) == 2:
        sessions[planner.rng.randrange(1, len(sessions))].device = unused[0]
    used = {id(v.device) for v in sessions}
    customer.devices = [d for d in customer.devices if id(d) in used]


def _sign_in_every_device(planner: _Planner, customer: _Customer, journeys: list[_Journey]) -> None:
    """Insert a sign-in in the first session of every device that never signs in."""
    if not customer.has_account:
        return
    for device in customer.devices:
        sessions = [v for v in _sessions(journeys) if v.device is device]
        if any(s.touchpoint == "sign_in" for v in sessions for s in v.steps):
            continue
        first = sessions[0]
        index = next(i for i, s in enumerate(first.steps) if s.touchpoint in _CLICK_TOUCHPOINTS)
        following = first.steps[index]
        first.steps.insert(index, _Step("sign_in", following.gap_s))
        following.gap_s = planner.rng.randint(15, 90)


def _conversion_step(journey: _Journey) -> _Step:
    return next(s for v in journey.visits for s in v.steps if s.touchpoint in _CONVERSIONS)


def _add_reviews(planner: _Planner, customer: _Customer, journeys: list[_Journey]) -> None:
    """About 20% of purchases by customers with an account get a review, 2-6 days later."""
    rng = planner.rng
    if not (customer.has_account and customer.devices):
        return
    for journey in journeys:
        if not journey.converted or journey.variant == "no_show" or rng.random() >= 0.2:
            continue
        conversion = _conversion_step(journey)
        review = _Step(
            "review",
            0,
            product=conversion.lines[0][0],
            conv_ref=conversion.conv_ref,
            rating=rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 5))[0],
        )
        day = journey.last_day + rng.randint(2, 6)
        journey.visits.append(
            _Visit(day, _utc_start(rng), [review], device=rng.choice(customer.devices))
        )


def _anchor_data_end(plans: Sequence[tuple[_Customer, list[_Journey]]], days: int) -> None:
    """Move the latest final converted journey so the data set ends on the last day."""
    finals = [js[-1] for _, js in plans if js and js[-1].converted]
    if not finals:
        msg = "no customer ends with a converted journey; hint: generate more customers"
        raise ValueError(msg)
    latest = max(finals, key=lambda j: j.last_day)
    latest.shift(days - 1 - latest.last_day)


# --- events --------------------------------------------------------------------------------------


@dataclass
class _Event:
    customer: _Customer
    journey: _Journey
    step: _Step
    ts: datetime  # UTC
    local_ts: datetime | None
    device: _Device | None
    store: _Store | None
    user_id: str
    campaign: str
    sent_ms: int = 0
    source_id: str = ""
    order_id: str = ""
    loyalty_id: str = ""
    payment_token: str = ""

    @property
    def source(self) -> str:
        if self.step.touchpoint in _CLICK_TOUCHPOINTS:
            assert self.device is not None
            return self.device.channel
        return "pos" if self.step.touchpoint in ("store_purchase", "store_pickup") else "crm"

    @property
    def channel(self) -> str:
        if self.source in ("web", "app"):
            return self.source
        return _CRM_TYPES.get(self.step.touchpoint, "store")

    @property
    def event_id(self) -> str:
        if self.source == "pos":
            return f"pos:{self.source_id}:{_LINE_TYPES[self.step.touchpoint]}"
        return f"{self.source}:{self.source_id}"


_LINE_TYPES = {"store_purchase": "sale", "store_pickup": "pickup"}


def _visit_events(
    planner: _Planner, customer: _Customer, journey: _Journey, visit: _Visit, start: date
) -> list[_Event]:
    rng = planner.rng
    zone = ZoneInfo(visit.clock)
    day = start + timedelta(days=visit.day)
    at = datetime.combine(day, time(), tzinfo=zone) + timedelta(seconds=visit.start_s)
    events: list[_Event] = []
    signed_in = False
    for step in visit.steps:
        at += timedelta(seconds=step.gap_s)
        click = step.touchpoint in _CLICK_TOUCHPOINTS
        signed_in = signed_in or step.touchpoint == "sign_in"
        ts = at.astimezone(UTC)
        if click:
            ts += timedelta(milliseconds=rng.randrange(1000))
        events.append(
            _Event(
                customer=customer,
                journey=journey,
                step=step,
                ts=ts,
                local_ts=at.replace(tzinfo=None) if visit.store is not None else None,
                device=visit.device if click else None,
                store=visit.store,
                user_id=customer.user_id if click and signed_in else "",
                campaign=visit.campaign,
                sent_ms=rng.randint(200, 2500),
            )
        )
    return events


def _customer_events(
    planner: _Planner, customer: _Customer, journeys: list[_Journey], start: date
) -> list[_Event]:
    events = [
        event
        for journey in journeys
        for visit in journey.visits
        for event in _visit_events(planner, customer, journey, visit, start)
    ]
    events.sort(key=lambda e: e.ts)
    first_sale = True
    for event in events:
        if event.step.touchpoint == "store_purchase":
            keep_card = first_sale or planner.rng.random() < 0.85
            event.loyalty_id = customer.loyalty_id if keep_card else ""
            event.payment_token = customer.payment_token
            first_sale = False
        elif event.step.touchpoint == "store_pickup":
            event.loyalty_id = customer.loyalty_id
    return events


def _assign_source_ids(events: list[_Event]) -> None:
    """Number messages, interactions, receipts and orders in time order, per source."""
    order = sorted(events, key=lambda e: (e.ts, e.customer.customer_id))
    counters: Counter[str] = Counter()
    prefixes = {"web": "web-", "app": "app-", "crm": "I-", "pos": "R-"}
    ids_by_ref: dict[int, str] = {}
    for event in order:
        counters[event.source] += 1
        event.source_id = f"{prefixes[event.source]}{counters[event.source]:06d}"
        if event.step.touchpoint == "order_placed":
            counters["order"] += 1
            event.order_id = f"O-{counters['order']:06d}"
            ids_by_ref[event.step.conv_ref] = event.order_id
        elif event.step.touchpoint == "store_purchase":
            ids_by_ref[event.step.conv_ref] = event.source_id
    for event in events:
        if event.step.touchpoint in ("store_pickup", "review"):
            event.order_id = ids_by_ref[event.step.conv_ref]


# --- checks (the contract's rules, re-derived from the events) -----------------------------------


def _patterns_from_events(events: Sequence[_Event]) -> tuple[tuple[str, ...], str]:
    """Patterns and c&c variant of one journey's time-ordered events, by the contract's rules."""
    conversion_at = next(
        (i for i, e in enumerate(events) if e.step.touchpoint in _CONVERSIONS), None
    )
    if conversion_at is None:
        return (), ""
    head, conversion = events[: conversion_at + 1], events[conversion_at]
    found: set[str] = set()
    variant = ""
    is_order = conversion.step.touchpoint == "order_placed"
    if is_order and conversion.step.fulfilment == "click_and_collect":
        found.add("click_and_collect")
        picked = any(
            e.step.touchpoint == "store_pickup" and e.order_id == conversion.order_id
            for e in events
        )
        variant = "collected" if picked else "no_show"
    browsing = ("product_view", "search", "add_to_cart")
    for earlier in head[:-1]:
        in_window = conversion.ts - earlier.ts <= _PATTERN_WINDOW
        same_category = earlier.step.category == conversion.step.category
        online_browse = earlier.channel in ("web", "app") and earlier.step.touchpoint in browsing
        if in_window and same_category and online_browse and not is_order:
            found.add("ropo")
        if in_window and same_category and earlier.step.touchpoint == "try_on" and is_order:
            found.add("try_and_buy")
    channels = {e.channel for e in head}
    if channels <= _ONLINE_CHANNELS and "click_and_collect" not in found:
        found.add("online_only")
    if channels <= _OFFLINE_CHANNELS:
        found.add("offline_only")
    return tuple(sorted(found)), variant


def _check_rules(journey_events: dict[str, list[_Event]], data_end: datetime) -> None:
    """Raise if a journey breaks a rule of the contract; the truth must be exact."""
    problems: list[str] = []
    by_customer: dict[str, list[tuple[_Journey, list[_Event]]]] = {}
    for events in journey_events.values():
        journey = events[0].journey
        patterns, variant = _patterns_from_events(events)
        if (patterns, variant) != (journey.patterns, journey.variant):
            problems.append(f"{journey.journey_id}: {patterns}/{variant} != intended")
        gaps = [b.ts - a.ts for a, b in pairwise(events)]
        if any(g > _MAX_GAP or g <= timedelta(0) for g in gaps):
            problems.append(f"{journey.journey_id}: gap out of (0, 12 days]")
        if not journey.converted and data_end - events[-1].ts < _DROPOFF_QUIET:
            problems.append(f"{journey.journey_id}: drop-off too close to the data end")
        by_customer.setdefault(events[0].customer.customer_id, []).append((journey, events))
    for timeline in by_customer.values():
        timeline.sort(key=lambda item: item[1][0].ts)
        for (before, first), (_, second) in pairwise(timeline):
            quiet = _AFTER_CONVERSION_QUIET if before.converted else _DROPOFF_QUIET
            if second[0].ts - first[-1].ts < quiet:
                problems.append(f"{before.journey_id}: next journey starts too early")
    for event in (e for events in journey_events.values() for e in events):
        if event.local_ts is not None:
            local = event.local_ts
            seconds = local.hour * 3600 + local.minute * 60 + local.second
            if not _OPENING_S <= seconds <= _CLOSING_S:
                problems.append(f"{event.event_id}: store event outside opening hours")
    if problems:
        msg = "generated sample breaks the contract:\n" + "\n".join(problems[:20])
        raise RuntimeError(msg)


# --- rows ----------------------------------------------------------------------------------------


def _utc_iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_ms(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _revenue_cents(lines: Sequence[tuple[_Product, int]]) -> int:
    return sum(product.price_cents * quantity for product, quantity in lines)


def _item(product: _Product, quantity: int | None = None) -> dict[str, object]:
    item: dict[str, object] = {
        "product_id": product.product_id,
        "category": product.category,
        "price": product.price_cents / 100,
    }
    if quantity is not None:
        item["quantity"] = quantity
    return item


def _click_properties(event: _Event) -> dict[str, object]:
    step = event.step
    touchpoint = step.touchpoint
    if touchpoint == "search":
        return {"query": step.query, "category": step.search_category}
    if touchpoint == "product_view":
        assert step.product is not None
        return _item(step.product)
    if touchpoint == "add_to_cart":
        assert step.product is not None
        return _item(step.product, step.quantity)
    if touchpoint == "order_placed":
        first = step.lines[0][0]
        properties: dict[str, object] = {
            "order_id": event.order_id,
            "revenue": _revenue_cents(step.lines) / 100,
            "currency": _CURRENCY,
            "fulfilment": step.fulfilment,
        }
        if step.fulfilment == "click_and_collect":
            properties["store_id"] = step.store_id
        properties["products"] = [_item(p, q) for p, q in step.lines]
        properties["product_id"] = first.product_id
        properties["category"] = first.category
        return properties
    if touchpoint == "review":
        assert step.product is not None
        return {
            "order_id": event.order_id,
            "product_id": step.product.product_id,
            "category": step.product.category,
            "rating": step.rating,
        }
    return {}


_TRACK_NAMES = {
    "search": "Products Searched",
    "product_view": "Product Viewed",
    "add_to_cart": "Product Added",
    "order_placed": "Order Completed",
    "review": "Product Reviewed",
}


def _page_path(event: _Event) -> str:
    step = event.step
    if step.touchpoint == "search":
        return "/search?q=" + step.query.replace(" ", "+")
    if step.touchpoint in ("product_view", "add_to_cart"):
        assert step.product is not None
        return f"/product/{step.product.product_id}"
    paths = {
        "home_view": "/",
        "sign_in": "/account/login",
        "order_placed": "/checkout/confirmation",
    }
    return paths.get(step.touchpoint, f"/account/orders/{event.order_id}/review")


def _message(event: _Event, referrer: str) -> dict[str, object]:
    touchpoint = event.step.touchpoint
    message: dict[str, object] = {}
    if touchpoint == "home_view":
        message.update(type="page", name="Home")
    elif touchpoint == "sign_in":
        message["type"] = "identify"
    else:
        message.update(type="track", event=_TRACK_NAMES[touchpoint])
    assert event.device is not None
    message.update(
        messageId=event.source_id,
        anonymousId=event.device.anonymous_id,
        userId=event.user_id or None,
        timestamp=_utc_ms(event.ts),
        sentAt=_utc_ms(event.ts + timedelta(milliseconds=event.sent_ms)),
    )
    if touchpoint == "sign_in":
        traits = {"email": event.customer.email}
        if event.customer.phone_in_traits:
            traits["phone"] = event.customer.phone
        message["traits"] = traits
    else:
        message["properties"] = _click_properties(event)
    context: dict[str, object] = {}
    if event.device.channel == "web":
        path = _page_path(event)
        context["page"] = {"url": _SITE + path, "path": path, "referrer": referrer}
    else:
        context["app"] = dict(_APP_CONTEXT)
    if event.campaign:
        context["campaign"] = {"source": "newsletter", "medium": "email", "name": event.campaign}
    message["context"] = context
    return message


def _clickstream_lines(events: Sequence[_Event]) -> dict[str, list[str]]:
    """File name -> JSON lines, with referrers chained inside each session (visit)."""
    referrers: dict[int, str] = {}
    for event in events:
        if event.source == "web":
            referrers[id(event)] = ""
    previous: dict[tuple[str, str], tuple[str, datetime]] = {}
    for event in sorted(events, key=lambda e: (e.customer.customer_id, e.ts)):
        if event.source != "web":
            continue
        assert event.device is not None
        key = (event.customer.customer_id, event.device.anonymous_id)
        before = previous.get(key)
        if before is not None and event.ts - before[1] < timedelta(hours=2):
            referrers[id(event)] = before[0]
        previous[key] = (_SITE + _page_path(event), event.ts)
    files: dict[str, list[str]] = {}
    click = [e for e in events if e.source in ("web", "app")]
    for event in sorted(click, key=lambda e: (e.ts, e.source_id)):
        name = f"clickstream/{event.source}-{event.ts:%Y-%m}.jsonl"
        line = json.dumps(_message(event, referrers.get(id(event), "")), separators=(",", ":"))
        files.setdefault(name, []).append(line)
    return files


def _interaction_rows(events: Sequence[_Event]) -> list[list[str]]:
    rows = []
    for event in sorted((e for e in events if e.source == "crm"), key=lambda e: e.source_id):
        step, customer = event.step, event.customer
        channel = _CRM_TYPES[step.touchpoint]
        store = event.store.store_id if event.store is not None else ""
        rows.append(
            [
                event.source_id,
                _utc_iso(event.ts),
                step.touchpoint,
                channel,
                customer.email if channel == "email" else "",
                customer.phone if channel == "phone" else "",
                customer.loyalty_id if channel == "store" else "",
                store,
                step.product.product_id if step.product is not None else "",
                step.category if step.touchpoint == "try_on" else "",
                event.campaign if channel == "email" else "",
            ]
        )
    return rows


def _receipt_rows(events: Sequence[_Event]) -> tuple[list[list[str]], list[list[str]]]:
    receipts: list[list[str]] = []
    lines: list[list[str]] = []
    for event in sorted((e for e in events if e.source == "pos"), key=lambda e: e.source_id):
        assert event.store is not None and event.local_ts is not None
        sale = event.step.touchpoint == "store_purchase"
        total = _revenue_cents(event.step.lines) if sale else 0
        receipts.append(
            [
                event.source_id,
                event.store.store_id,
                event.local_ts.strftime("%Y-%m-%d %H:%M:%S"),
                event.loyalty_id,
                event.payment_token,
                _CURRENCY,
                _money(total),
            ]
        )
        for line_no, (product, quantity) in enumerate(event.step.lines, start=1):
            amount = product.price_cents * quantity if sale else 0
            lines.append(
                [
                    event.source_id,
                    str(line_no),
                    product.product_id,
                    product.category,
                    str(quantity),
                    _money(amount),
                    _LINE_TYPES[event.step.touchpoint],
                    "" if sale else event.order_id,
                ]
            )
    return receipts, lines


def _contact_rows(customers: Sequence[_Customer]) -> list[list[str]]:
    rows = []
    contacts = [c for c in customers if c.email or c.phone or c.loyalty_id]
    for number, customer in enumerate(contacts, start=1):
        rows.append(
            [
                f"C-{number:06d}",
                customer.contact_email,
                customer.contact_phone,
                customer.loyalty_id,
                customer.user_id,
                "true" if customer.consent_email else "false",
                customer.created_at,
            ]
        )
    return rows


def _identifier_rows(customers: Sequence[_Customer], events: Sequence[_Event]) -> list[list[str]]:
    """Identifiers written to the sources, in normalised form (lower-case e-mail, E.164 phone)."""
    tokens = {e.customer.customer_id for e in events if e.payment_token}
    rows = []
    for c in customers:
        values = [("anonymous_id", d.anonymous_id) for d in c.devices]
        values += [
            ("user_id", c.user_id),
            ("email", c.email),
            ("phone", c.phone),
            ("loyalty_id", c.loyalty_id),
            ("payment_token", c.payment_token if c.customer_id in tokens else ""),
        ]
        rows += [[c.customer_id, kind, value] for kind, value in values if value]
    return sorted(rows)


def _journey_rows(journey_events: dict[str, list[_Event]]) -> list[list[str]]:
    rows = []
    for journey_id in sorted(journey_events):
        events = journey_events[journey_id]
        journey = events[0].journey
        conversion = next((e for e in events if e.step.touchpoint in _CONVERSIONS), None)
        revenue = "" if conversion is None else _money(_revenue_cents(conversion.step.lines))
        rows.append(
            [
                journey_id,
                events[0].customer.customer_id,
                journey.kind,
                "true" if journey.converted else "false",
                ";".join(journey.patterns),
                journey.variant,
                "" if journey.converted else events[-1].step.touchpoint,
                revenue,
                "" if conversion is None else conversion.event_id,
                str(len(events)),
            ]
        )
    return rows


# --- files ---------------------------------------------------------------------------------------

_HEADERS = {
    "stores.csv": ["store_id", "name", "region", "timezone"],
    "products.csv": ["product_id", "name", "category", "price"],
    # The source files' columns are the ones ingest requires (one definition of the format).
    "crm/contacts.csv": list(CONTACT_COLUMNS),
    "crm/interactions.csv": list(INTERACTION_COLUMNS),
    "pos/receipts.csv": list(RECEIPT_COLUMNS),
    "pos/receipt_lines.csv": list(LINE_COLUMNS),
    "truth/customers.csv": ["customer_id", "kind"],
    "truth/identifiers.csv": ["customer_id", "identifier_type", "value"],
    "truth/events.csv": ["event_id", "customer_id", "journey_id"],
    "truth/journeys.csv": [
        "journey_id",
        "customer_id",
        "kind",
        "converted",
        "patterns",
        "variant",
        "dropoff_touchpoint",
        "revenue",
        "conversion_event_id",
        "n_events",
    ],
}


def _owned_files(out_dir: Path) -> list[Path]:
    fixed = [out_dir / name for name in _HEADERS]
    clicks = [*out_dir.glob("clickstream/web-*.jsonl"), *out_dir.glob("clickstream/app-*.jsonl")]
    return [p for p in [*fixed, *sorted(clicks)] if p.is_file()]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="")


# --- public API ----------------------------------------------------------------------------------


def _plan(planner: _Planner, customers: int, days: int) -> list[tuple[_Customer, list[_Journey]]]:
    plans = []
    for number, kind in enumerate(_customer_kinds(planner.rng, customers), start=1):
        customer = _build_customer(planner, number, kind)
        journeys = _plan_journeys(planner, customer, days)
        _use_every_device(planner, customer, journeys)
        _sign_in_every_device(planner, customer, journeys)
        _add_reviews(planner, customer, journeys)
        if not journeys:
            msg = f"{customer.customer_id} got no journey; hint: use more days"
            raise RuntimeError(msg)
        plans.append((customer, journeys))
    _anchor_data_end(plans, days)
    journey_number = 0
    for _, journeys in plans:
        for journey in journeys:
            journey_number += 1
            journey.journey_id = f"J-{journey_number:06d}"
    return plans


def _count(values: Iterable[str], keys: Iterable[str] = ()) -> dict[str, int]:
    counts = Counter(values)
    return {key: counts[key] for key in sorted({*keys, *counts})}


def generate_sample(
    out_dir: Path,
    *,
    customers: int,
    seed: int,
    start: date = date(2026, 1, 5),
    days: int = 180,
) -> SampleSummary:
    """Write a deterministic sample data set with its ground truth to ``out_dir``.

    The same arguments always give byte-identical files; the files of a previous run (but no
    other file, e.g. a README) are removed first.

    Args:
        out_dir: Directory to write to; created if missing.
        customers: Number of customers (at least 10).
        seed: Seed of the random stream.
        start: First day of the period (UTC / store-local calendar day).
        days: Length of the period in days (at least 120).

    Returns:
        Counts of what was written.

    Raises:
        ValueError: If ``customers`` or ``days`` is too small.

    Example:
        >>> summary = generate_sample(tmp, customers=60, seed=1)  # doctest: +SKIP
        >>> summary.files["truth/customers.csv"]  # doctest: +SKIP
        60
    """
    if customers < 10 or days < _MIN_DAYS:
        msg = f"need customers >= 10 and days >= {_MIN_DAYS}, got {customers=} and {days=}"
        raise ValueError(msg)
    products = _catalogue()
    planner = _Planner(random.Random(seed), products)
    plans = _plan(planner, customers, days)
    events: list[_Event] = []
    for customer, journeys in plans:
        events += _customer_events(planner, customer, journeys, start)
    _assign_source_ids(events)
    journey_events: dict[str, list[_Event]] = {}
    for event in sorted(events, key=lambda e: e.ts):
        journey_events.setdefault(event.journey.journey_id, []).append(event)
    _check_rules(journey_events, max(e.ts for e in events))

    all_customers = [c for c, _ in plans]
    tables: dict[str, list[list[str]]] = {
        "stores.csv": [[s.store_id, s.name, s.region, s.timezone] for s in _STORES],
        "products.csv": [
            [p.product_id, p.name, p.category, _money(p.price_cents)] for p in products
        ],
        "crm/contacts.csv": _contact_rows(all_customers),
        "crm/interactions.csv": _interaction_rows(events),
        "truth/customers.csv": [[c.customer_id, c.kind] for c in all_customers],
        "truth/identifiers.csv": _identifier_rows(all_customers, events),
        "truth/events.csv": sorted(
            [e.event_id, e.customer.customer_id, e.journey.journey_id] for e in events
        ),
        "truth/journeys.csv": _journey_rows(journey_events),
    }
    tables["pos/receipts.csv"], tables["pos/receipt_lines.csv"] = _receipt_rows(events)

    for path in _owned_files(out_dir):
        path.unlink()
    files: dict[str, int] = {}
    for name, rows in tables.items():
        _write_csv(out_dir / name, _HEADERS[name], rows)
        files[name] = len(rows)
    for name, lines in _clickstream_lines(events).items():
        _write_lines(out_dir / name, lines)
        files[name] = len(lines)

    journeys = [e[0].journey for e in journey_events.values()]
    return SampleSummary(
        customers=len(all_customers),
        journeys=len(journeys),
        events=len(events),
        conversions=sum(j.converted for j in journeys),
        patterns=_count((p for j in journeys for p in j.patterns), PATTERNS),
        files=dict(sorted(files.items())),
        journey_kinds=_count(j.kind for j in journeys),
        dropoff_touchpoints=_count(
            events[-1].step.touchpoint
            for events in journey_events.values()
            if not events[0].journey.converted
        ),
        variants=_count(j.variant for j in journeys if j.variant),
    )
