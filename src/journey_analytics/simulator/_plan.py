"""The behaviour model: one customer's identifiers, devices and journeys, in true time.

Input: the seed, the customer's number and the config. Output: a :class:`Customer` and its
:class:`Journey` list, each journey a list of :class:`Visit` (a web/app session, an e-mail, a
call, a chat or a store visit) on distinct days, each visit a list of :class:`Step`. Everything
random comes from generators seeded by (seed, customer number), so customers are planned one at
a time, in any order, with nothing global but the two shared-device rosters (computed from the
same per-customer seeds).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from journey_analytics.simulator._catalogue import (
    CAMPAIGNS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    PRODUCT_NAMES,
    REFERRERS,
    STORES,
    Product,
    Store,
)
from journey_analytics.simulator._config import SimulatorConfig

ACCOUNT_KINDS = frozenset({"omnichannel", "online"})
CUSTOMER_KINDS = ("omnichannel", "online", "store_loyalty", "store_anonymous", "anonymous_browser")
JOURNEY_KINDS = (
    "ropo",
    "click_and_collect",
    "try_and_buy",
    "online_only",
    "offline_only",
    "dropoff_cart",
    "dropoff_browse",
    "dropoff_store_visit",
    "dropoff_call",
)
# customer kind -> journey kinds it can have
_ALLOWED: dict[str, frozenset[str]] = {
    "omnichannel": frozenset(JOURNEY_KINDS),
    "online": frozenset(
        {"click_and_collect", "online_only", "dropoff_cart", "dropoff_browse", "dropoff_call"}
    ),
    "store_loyalty": frozenset({"offline_only", "dropoff_store_visit", "dropoff_call"}),
    "store_anonymous": frozenset({"offline_only"}),
    "anonymous_browser": frozenset({"dropoff_browse", "dropoff_cart"}),
}
CONVERSIONS = frozenset({"order_placed", "store_purchase"})
CLICK_TOUCHPOINTS = frozenset(
    {"home_view", "search", "product_view", "add_to_cart", "sign_in", "order_placed", "review"}
)
OPENING_S = 10 * 3600
CLOSING_S = 19 * 3600 + 30 * 60


@dataclass(slots=True)
class Device:
    channel: str  # "web" or "app"
    anonymous_id: str
    skew_ms: int = 0
    shared: str = ""  # "", "tablet" or "laptop"
    signs_in: bool = True


@dataclass(slots=True)
class Customer:
    number: int
    kind: str
    store: Store
    devices: list[Device] = field(default_factory=list)
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
    tablet: Device | None = None
    tablet_store: Store | None = None
    laptop: Device | None = None

    @property
    def customer_id(self) -> str:
        return f"K{self.number:07d}"


@dataclass(slots=True)
class Step:
    touchpoint: str
    gap_s: int  # seconds after the previous step of the visit
    product: Product | None = None
    quantity: int = 1
    lines: tuple[tuple[Product, int], ...] = ()
    query: str = ""
    search_category: str = ""
    fulfilment: str = ""
    store_id: str = ""  # click-and-collect orders: the collecting store
    conv_ref: int = -1  # conversion: its own ref; pickup/return/review: the conversion's
    rating: int = 0
    referral: str = ""  # page Home from an unmanaged site: the referral kind
    referrer: str = ""
    device: Device | None = None  # a click step inside a store visit (store tablet)
    protected: bool = False  # never malformed (sign-in that makes a shared device shared)

    @property
    def category(self) -> str:
        if self.search_category:
            return self.search_category
        if self.product is not None:
            return self.product.category
        return self.lines[0][0].category if self.lines else ""


@dataclass(slots=True)
class Visit:
    day: int
    start_s: int  # seconds after midnight on the visit's clock
    steps: list[Step]
    device: Device | None = None
    store: Store | None = None
    campaign: str = ""


@dataclass(slots=True)
class Journey:
    kind: str
    patterns: tuple[str, ...]
    visits: list[Visit]
    variant: str = ""
    journey_id: str = ""

    @property
    def converted(self) -> bool:
        return not self.kind.startswith("dropoff")

    @property
    def last_day(self) -> int:
        return max(v.day for v in self.visits)

    def shift(self, days: int) -> None:
        for visit in self.visits:
            visit.day += days


# --- who the customers are -----------------------------------------------------------------------


def customer_rng(seed: int, number: int, stream: str) -> random.Random:
    """The random stream ``stream`` of one customer: independent of every other customer."""
    return random.Random(f"{seed}:{number}:{stream}")


def customer_kind(seed: int, number: int, config: SimulatorConfig) -> str:
    """A customer's kind, drawn from its own stream (customer 1 is omnichannel: see anchor)."""
    if number == 1:
        return "omnichannel"
    mix = config.customers
    weights = [getattr(mix, kind) for kind in CUSTOMER_KINDS]
    return customer_rng(seed, number, "kind").choices(CUSTOMER_KINDS, weights)[0]


def _account_share(config: SimulatorConfig) -> float:
    mix = config.customers
    total = sum(getattr(mix, kind) for kind in CUSTOMER_KINDS)
    return (mix.omnichannel + mix.online) / total if total else 0.0


def household_laptop(
    seed: int, number: int, customers: int, config: SimulatorConfig
) -> Device | None:
    """The laptop customer ``number`` shares with the other customer of its pair, if any.

    Customers 2p+1 and 2p+2 form household p; both must have an account. The share of
    customers on family laptops is about ``shared_devices.family_laptop``.
    """
    pair = (number - 1) // 2
    first, second = 2 * pair + 1, 2 * pair + 2
    if second > customers or config.shared_devices.family_laptop == 0:
        return None
    if {customer_kind(seed, first, config), customer_kind(seed, second, config)} - ACCOUNT_KINDS:
        return None
    rng = random.Random(f"{seed}:household:{pair}")
    both = _account_share(config) ** 2
    if both == 0 or rng.random() >= config.shared_devices.family_laptop / both:
        return None
    skew = _skew_ms(rng, config.knob("clock_skew"))
    return Device("web", f"a-h{pair:07x}{rng.getrandbits(32):08x}", skew, shared="laptop")


def tablet_roster(seed: int, block: int, customers: int, config: SimulatorConfig) -> frozenset[int]:
    """Customers of block ``block`` who sign in on that block's store tablet (0 or >= 2)."""
    size = config.shared_devices.tablet_block
    numbers = range(block * size + 1, min((block + 1) * size, customers) + 1)
    rate = config.shared_devices.store_tablet
    # tablets are used during store visits: only omnichannel customers have both
    eligible = [n for n in numbers if customer_kind(seed, n, config) == "omnichannel"]
    if rate == 0 or len(eligible) < 2:
        return frozenset()
    wanted = min(len(eligible), max(2, round(len(numbers) * rate)))
    return frozenset(random.Random(f"{seed}:tablet:{block}").sample(eligible, wanted))


def tablet_device(block: int) -> tuple[Device, Store]:
    """The store tablet of a block: a web device with one anonymous id, in one store."""
    store = STORES[block % len(STORES)]
    return Device("web", f"a-tablet-{store.store_id.lower()}-{block:05d}", shared="tablet"), store


def _skew_ms(rng: random.Random, rate: float) -> int:
    """A device clock's offset; draws the same numbers whatever the rate (noise never changes
    the behaviour)."""
    roll, sign, size = rng.random(), rng.choice((-1, 1)), rng.randint(60_000, 7_200_000)
    return sign * size if roll < rate else 0


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


def _devices(rng: random.Random, customer: Customer, config: SimulatorConfig) -> list[Device]:
    mix, n = config.customers, customer.number
    count = 1
    if customer.kind in ACCOUNT_KINDS and rng.random() < mix.second_device:
        count = 3 if rng.random() < mix.third_device else 2
    devices: list[Device] = []
    for index in range(count):
        channel = "app" if rng.random() < config.channels.app_share else "web"
        if index == 1:  # a second device is the other channel: phone app vs laptop
            channel = "web" if devices[0].channel == "app" else "app"
        skew = _skew_ms(rng, config.knob("clock_skew"))
        anonymous_id = f"a-{n:07x}{index:x}{rng.getrandbits(32):08x}"
        signs_in = customer.kind in ACCOUNT_KINDS and (
            index == 0 or rng.random() >= mix.device_never_signs_in
        )
        devices.append(Device(channel, anonymous_id, skew, signs_in=signs_in))
    return devices


def build_customer(
    seed: int, number: int, customers: int, config: SimulatorConfig
) -> tuple[Customer, random.Random]:
    """A customer and the random stream its journeys are planned with."""
    kind = customer_kind(seed, number, config)
    rng = customer_rng(seed, number, "plan")
    store = rng.choice(STORES)
    customer = Customer(number, kind, store)
    mix = config.customers
    if kind in (*ACCOUNT_KINDS, "anonymous_browser"):
        customer.devices = _devices(rng, customer, config)
    if kind in ACCOUNT_KINDS:
        customer.user_id = f"u-{number:07d}"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customer.email = f"{first}.{last}{number}@{rng.choice(EMAIL_DOMAINS)}"
        customer.consent_email = rng.random() < mix.email_consent
    if kind in ("omnichannel", "store_loyalty"):
        customer.loyalty_id = f"L{number:09d}"
    if kind == "store_loyalty" and rng.random() < 0.6:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customer.email = f"{first}.{last}{number}@{rng.choice(EMAIL_DOMAINS)}"
        customer.consent_email = rng.random() < mix.email_consent
    if kind in (*ACCOUNT_KINDS, "store_loyalty") and rng.random() < mix.phone:
        digits = 9 if store.phone_prefix == "+39" else 8
        national = (number * 7_919_573 + 1_234_567) % 10**digits  # unique per customer
        customer.phone = f"{store.phone_prefix}{store.mobile_lead}{national:0{digits}d}"
    if kind in ("omnichannel", "store_loyalty", "store_anonymous"):
        customer.payment_token = f"tok_{number:07x}{rng.getrandbits(40):010x}"
    customer.phone_in_traits = bool(customer.phone) and rng.random() < 0.5
    if customer.email:
        customer.contact_email = _contact_email_variant(rng, customer.email)
    if customer.phone:
        customer.contact_phone = _contact_phone_variant(rng, customer.phone, store.phone_prefix)
    created = datetime(2023, 1, 1, 9, tzinfo=UTC) + timedelta(seconds=rng.randrange(86400 * 1000))
    customer.created_at = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return customer, rng


# --- journey builders (visit days relative to the journey start) ---------------------------------


@dataclass(slots=True)
class Planner:
    """One customer's planning state: its random stream, the config and the catalogue."""

    rng: random.Random
    config: SimulatorConfig
    products: dict[str, tuple[Product, ...]]
    customer: Customer
    start: date
    next_conv_ref: int = 0

    def conv_ref(self) -> int:
        self.next_conv_ref += 1
        return self.next_conv_ref

    def product_in(self, category: str) -> Product:
        return self.rng.choice(self.products[category])

    def any_category(self) -> str:
        return self.rng.choice(tuple(PRODUCT_NAMES))

    def seasonal_category(self, day: int) -> str:
        month = (self.start + timedelta(days=day)).month
        categories = tuple(PRODUCT_NAMES)
        weights = [self.config.seasonality[c][month - 1] for c in categories]
        return self.rng.choices(categories, weights)[0]

    def store(self) -> Store:
        return self.customer.store if self.rng.random() < 0.85 else self.rng.choice(STORES)


def _click_gap(rng: random.Random) -> int:
    return rng.randint(21, 200)


def _utc_start(rng: random.Random) -> int:
    return rng.randint(7 * 3600, 20 * 3600)


def _store_start(rng: random.Random) -> int:
    return rng.randint(OPENING_S, 18 * 3600 + 15 * 60)


def _referral(planner: Planner) -> Step | None:
    """A page Home from an unmanaged site, or None (direct visit)."""
    roll = planner.rng.random()
    for kind, share in planner.config.referrals:
        if roll < share:
            return Step("home_view", 0, referral=kind, referrer=planner.rng.choice(REFERRERS[kind]))
        roll -= share
    return None


def _browse_steps(
    planner: Planner, category: str, *, views: int, end_with_view: bool = True, entry: bool = True
) -> list[Step]:
    rng = planner.rng
    steps: list[Step] = []
    referral = _referral(planner) if entry else None
    if referral is not None:
        steps.append(referral)
    elif rng.random() < 0.5:
        steps.append(Step("home_view", 0))
    if rng.random() < 0.5:
        product = planner.product_in(category)
        query = rng.choice((category, product.name.lower()))
        steps.append(Step("search", _click_gap(rng), query=query, search_category=category))
    steps += [
        Step("product_view", _click_gap(rng), product=planner.product_in(category))
        for _ in range(views)
    ]
    if not end_with_view and rng.random() < 0.3:
        steps.append(Step("home_view", _click_gap(rng)))
    steps[0].gap_s = 0
    return steps


def _session(planner: Planner, steps: list[Step], *, signing: bool = False) -> Visit:
    devices = planner.customer.devices
    if signing:
        devices = [d for d in devices if d.signs_in] or devices
    return Visit(0, _utc_start(planner.rng), steps, device=planner.rng.choice(devices))


def _browse_session(planner: Planner, category: str, *, end_with_view: bool = True) -> Visit:
    views = planner.rng.randint(1, 3)
    return _session(
        planner, _browse_steps(planner, category, views=views, end_with_view=end_with_view)
    )


def _email_visit(planner: Planner, category: str) -> Visit:
    """An e-mail open, and often a click leading to a campaign web/app session."""
    rng = planner.rng
    steps = [Step("email_open", 0)]
    clicks = bool(planner.customer.devices) and rng.random() < planner.config.channels.email_click
    if clicks:
        steps.append(Step("email_click", rng.randint(60, 3600)))
        browse = _browse_steps(planner, category, views=rng.randint(1, 2), entry=False)
        browse[0].gap_s = rng.randint(21, 60)
        steps += browse
        visit = _session(planner, steps)
    else:
        visit = Visit(0, _utc_start(rng), steps)
    visit.campaign = rng.choice(CAMPAIGNS)
    return visit


def _maybe_email(planner: Planner, category: str) -> list[Visit]:
    customer = planner.customer
    consent = bool(customer.email) and customer.consent_email
    if consent and planner.rng.random() < planner.config.channels.email_campaign:
        return [_email_visit(planner, category)]
    return []


def _maybe_call(planner: Planner) -> list[Visit]:
    if planner.customer.phone and planner.rng.random() < planner.config.channels.call:
        return [_call_visit(planner)]
    return []


def _call_visit(planner: Planner) -> Visit:
    return Visit(0, planner.rng.randint(8 * 3600, 17 * 3600), [Step("call", 0)])


def _maybe_chat(planner: Planner) -> list[Visit]:
    if planner.customer.email and planner.rng.random() < planner.config.channels.chat:
        return [Visit(0, planner.rng.randint(8 * 3600, 20 * 3600), [Step("chat", 0)])]
    return []


def _order_lines(planner: Planner, category: str) -> tuple[tuple[Product, int], ...]:
    rng = planner.rng
    lines = [(planner.product_in(category), rng.choice((1, 1, 1, 2)))]
    if rng.random() < 0.35:
        lines.append((planner.product_in(planner.any_category()), 1))
    return tuple(lines)


def _order_session(
    planner: Planner, category: str, fulfilment: str, *, view_first: bool
) -> tuple[Visit, Step]:
    """A session that signs in, fills the cart and places an order of ``category`` first."""
    rng = planner.rng
    lines = _order_lines(planner, category)
    steps: list[Step] = []
    if view_first:
        steps.append(Step("product_view", 0, product=lines[0][0]))
    steps.append(Step("sign_in", _click_gap(rng)))
    steps += [
        Step("add_to_cart", _click_gap(rng), product=product, quantity=quantity)
        for product, quantity in lines
    ]
    order = Step(
        "order_placed",
        _click_gap(rng),
        lines=lines,
        fulfilment=fulfilment,
        conv_ref=planner.conv_ref(),
    )
    steps.append(order)
    steps[0].gap_s = 0
    if fulfilment == "click_and_collect":
        order.store_id = planner.customer.store.store_id
    return _session(planner, steps, signing=True), order


def _store_purchase_visit(
    planner: Planner, category: str, *, visit_first: bool, try_on: bool
) -> Visit:
    rng = planner.rng
    lines = _order_lines(planner, category)
    steps: list[Step] = []
    if visit_first:
        steps.append(Step("store_visit", 0))
    if try_on:
        steps.append(Step("try_on", rng.randint(120, 900), product=lines[0][0]))
    steps.append(Step("store_purchase", rng.randint(300, 1200), lines=lines))
    steps[-1].conv_ref = planner.conv_ref()
    steps[0].gap_s = 0
    return Visit(0, _store_start(rng), steps, store=planner.store())


def _lay_out(planner: Planner, visits: Sequence[Visit]) -> list[Visit]:
    """Give the visits increasing days, 1-4 days apart."""
    day = 0
    for index, visit in enumerate(visits):
        if index:
            day += planner.rng.randint(1, 4)
        visit.day = day
    return list(visits)


def _ropo(planner: Planner, category: str) -> Journey:
    rng = planner.rng
    visits = _maybe_email(planner, category)
    for _ in range(rng.randint(1, 2)):
        steps = _browse_steps(planner, category, views=rng.randint(1, 3), end_with_view=False)
        if rng.random() < 0.3:
            steps.append(Step("add_to_cart", _click_gap(rng), product=planner.product_in(category)))
        visits.append(_session(planner, steps))
    visits += _maybe_call(planner)
    purchase = _store_purchase_visit(
        planner, category, visit_first=rng.random() < 0.5, try_on=rng.random() < 0.3
    )
    return Journey("ropo", ("ropo",), _lay_out(planner, [*visits, purchase]))


def _click_and_collect(planner: Planner, category: str) -> Journey:
    rng = planner.rng
    visits = _maybe_email(planner, category)
    if rng.random() < 0.6:
        visits.append(_browse_session(planner, category))
    visits += _maybe_chat(planner)
    order_visit, order = _order_session(
        planner, category, "click_and_collect", view_first=rng.random() < 0.5
    )
    visits = _lay_out(planner, [*visits, order_visit])
    variant = _collect(planner, visits, order)
    return Journey("click_and_collect", ("click_and_collect",), visits, variant=variant)


def _collect(planner: Planner, visits: list[Visit], order: Step) -> str:
    """Append the pick-up of a click-and-collect order, unless the customer never comes."""
    rng = planner.rng
    if rng.random() < planner.config.journeys.click_and_collect_no_show:
        return "no_show"
    store = planner.customer.store
    step = Step("store_pickup", 0, lines=order.lines, conv_ref=order.conv_ref)
    visits.append(Visit(visits[-1].day + rng.randint(1, 4), _store_start(rng), [step], store=store))
    return "collected"


def _try_and_buy(planner: Planner, category: str) -> Journey:
    rng = planner.rng
    tried = planner.product_in(category)
    steps = [Step("store_visit", 0), Step("try_on", rng.randint(120, 900), product=tried)]
    if rng.random() < 0.3:
        other = planner.product_in(planner.any_category())
        steps.append(Step("try_on", rng.randint(120, 600), product=other))
    visits = [Visit(0, _store_start(rng), steps, store=planner.store())]
    visits += _maybe_chat(planner)
    with_cc = rng.random() < planner.config.journeys.try_and_buy_collect
    fulfilment = "click_and_collect" if with_cc else "delivery"
    order_visit, order = _order_session(planner, category, fulfilment, view_first=True)
    visits = _lay_out(planner, [*visits, order_visit])
    if not with_cc:
        return Journey("try_and_buy", ("try_and_buy",), visits)
    variant = _collect(planner, visits, order)
    return Journey("try_and_buy", ("click_and_collect", "try_and_buy"), visits, variant=variant)


def _online_only(planner: Planner, category: str) -> Journey:
    rng = planner.rng
    visits = _maybe_email(planner, category)
    for _ in range(rng.randint(0, 2)):
        visits.append(_browse_session(planner, category, end_with_view=False))
    visits += _maybe_chat(planner)
    order_visit, _ = _order_session(planner, category, "delivery", view_first=rng.random() < 0.6)
    return Journey("online_only", ("online_only",), _lay_out(planner, [*visits, order_visit]))


def _offline_only(planner: Planner, category: str) -> Journey:
    rng = planner.rng
    if not planner.customer.loyalty_id:
        purchase = _store_purchase_visit(planner, category, visit_first=False, try_on=False)
        return Journey("offline_only", ("offline_only",), [purchase])
    visits = _maybe_call(planner)
    if rng.random() < 0.35:
        product = planner.product_in(category)
        steps = [Step("store_visit", 0), Step("try_on", rng.randint(120, 900), product=product)]
        visits.append(Visit(0, _store_start(rng), steps, store=planner.store()))
    purchase = _store_purchase_visit(
        planner, category, visit_first=rng.random() < 0.7, try_on=rng.random() < 0.4
    )
    return Journey("offline_only", ("offline_only",), _lay_out(planner, [*visits, purchase]))


def _dropoff(planner: Planner, category: str, kind: str, min_sessions: int) -> Journey:
    rng = planner.rng
    visits: list[Visit] = []
    if kind != "dropoff_browse":
        visits += _maybe_email(planner, category)
    if planner.customer.devices:
        low, high = (1, 2) if kind == "dropoff_browse" else (min_sessions, 1)
        visits += [_browse_session(planner, category) for _ in range(rng.randint(low, high))]
    if kind == "dropoff_cart":
        product = planner.product_in(category)
        steps = [Step("product_view", 0, product=product)]
        if planner.customer.user_id and rng.random() < 0.3:
            steps.append(Step("sign_in", _click_gap(rng)))
        steps.append(Step("add_to_cart", _click_gap(rng), product=product))
        visits.append(_session(planner, steps, signing=len(steps) == 3))
    elif kind == "dropoff_store_visit":
        visits.append(Visit(0, _store_start(rng), [Step("store_visit", 0)], store=planner.store()))
    elif kind == "dropoff_call":
        visits.append(_call_visit(planner))
    return Journey(kind, (), _lay_out(planner, visits))


def build_journey(planner: Planner, kind: str, day: int, *, min_sessions: int = 0) -> Journey:
    """A journey of ``kind`` starting on ``day`` (its visits' days are relative to it)."""
    category = planner.seasonal_category(day)
    if kind.startswith("dropoff"):
        return _dropoff(planner, category, kind, min_sessions)
    builders = {
        "ropo": _ropo,
        "click_and_collect": _click_and_collect,
        "try_and_buy": _try_and_buy,
        "online_only": _online_only,
        "offline_only": _offline_only,
    }
    return builders[kind](planner, category)


def journey_kind(
    planner: Planner, *, converted_only: bool, among: Sequence[str] = ()
) -> str | None:
    """A journey kind the customer can have, drawn by the journey mix."""
    customer = planner.customer
    allowed = _ALLOWED[customer.kind]
    options = [
        kind
        for kind in (among or JOURNEY_KINDS)
        if kind in allowed
        and not (converted_only and kind.startswith("dropoff"))
        and not (kind == "dropoff_call" and not customer.phone)
        and not (kind == "offline_only" and customer.laptop is not None)
    ]
    weights = [getattr(planner.config.journeys, kind) for kind in options]
    if not options or sum(weights) == 0:
        return None
    return planner.rng.choices(options, weights)[0]
