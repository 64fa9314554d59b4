"""One customer's timeline: journeys placed in the period, then turned into events in true time.

Input: the seed, a customer number, the number of customers and the config. Output: the
customer and its time-ordered :class:`Event` list (one per canonical event), each with its
source, channel, canonical touchpoint, true UTC time, source id and the identifiers it carries.
:func:`check_rules` re-derives patterns and timing rules from those events.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from journey_analytics.simulator._catalogue import Product, Store
from journey_analytics.simulator._config import SimulatorConfig
from journey_analytics.simulator._plan import (
    CLICK_TOUCHPOINTS,
    CLOSING_S,
    CONVERSIONS,
    OPENING_S,
    Customer,
    Device,
    Journey,
    Planner,
    Step,
    Visit,
    build_customer,
    build_journey,
    household_laptop,
    journey_kind,
    tablet_device,
    tablet_roster,
)

_TABLET_HOSTS = ("ropo", "try_and_buy", "dropoff_store_visit")
# Plan in whole days: visits of a journey are 1-4 days apart (post-purchase 1-6), so consecutive
# events are < 12 days apart; these margins keep the >= 7 / >= 35 day rules whatever the hour.
_DROPOFF_END_MARGIN_DAYS = 38
_CONVERTED_END_MARGIN_DAYS = 8
MAX_GAP = timedelta(days=12)
DROPOFF_QUIET = timedelta(days=35)
AFTER_CONVERSION_QUIET = timedelta(days=7)
PATTERN_WINDOW = timedelta(days=30)
ONLINE_CHANNELS = frozenset(
    {"web", "app", "email", "chat", "social", "marketplace", "review_site", "forum"}
)
OFFLINE_CHANNELS = frozenset({"store", "phone"})
_CRM_CHANNELS = {
    "email_open": "email",
    "email_click": "email",
    "call": "phone",
    "chat": "chat",
    "store_visit": "store",
    "try_on": "store",
}
POS_LINE_TYPES = {"store_purchase": "sale", "store_pickup": "pickup", "return": "return"}
_ZONES: dict[str, ZoneInfo] = {}


@dataclass(slots=True)
class Event:
    """One canonical event of one customer, in true time."""

    journey: Journey
    step: Step
    visit_no: int
    ts: datetime  # true time, UTC
    local_ts: datetime | None  # store events: store-local wall time
    device: Device | None
    store: Store | None
    campaign: str
    source: str  # web, app, crm, pos
    channel: str
    touchpoint: str
    user_id: str = ""
    source_id: str = ""
    order_id: str = ""
    loyalty_id: str = ""
    payment_token: str = ""
    referrer: str = ""

    @property
    def event_id(self) -> str:
        if self.source == "pos":
            return f"pos:{self.source_id}:{POS_LINE_TYPES[self.step.touchpoint]}"
        return f"{self.source}:{self.source_id}"


class Rosters:
    """Store-tablet rosters, one block at a time (customers are generated in order)."""

    def __init__(self, seed: int, customers: int, config: SimulatorConfig) -> None:
        self.seed, self.customers, self.config = seed, customers, config
        self._block = -1
        self._members: frozenset[int] = frozenset()

    def tablet_users(self, block: int) -> frozenset[int]:
        if block != self._block:
            self._block = block
            self._members = tablet_roster(self.seed, block, self.customers, self.config)
        return self._members


# --- placing journeys ----------------------------------------------------------------------------


def _post_purchase(planner: Planner, journey: Journey) -> None:
    """Review (online, customers with an account) and return (online orders) after a purchase."""
    if not journey.converted or journey.variant == "no_show":
        return
    rng, config, customer = planner.rng, planner.config, planner.customer
    conversion = next(s for v in journey.visits for s in v.steps if s.touchpoint in CONVERSIONS)
    follow: list[Visit] = []
    reviewers = [d for d in customer.devices if d.signs_in and not d.shared]
    if customer.user_id and reviewers and rng.random() < config.journeys.reviews:
        review = Step(
            "review",
            0,
            product=conversion.lines[0][0],
            conv_ref=conversion.conv_ref,
            rating=rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 5))[0],
        )
        follow.append(Visit(0, rng.randint(7 * 3600, 20 * 3600), [review], rng.choice(reviewers)))
    if conversion.touchpoint == "order_placed" and rng.random() < config.journeys.returns:
        product, quantity = conversion.lines[0]
        step = Step("return", 0, lines=((product, quantity),), conv_ref=conversion.conv_ref)
        follow.append(Visit(0, rng.randint(OPENING_S, 18 * 3600), [step], store=planner.store()))
    rng.shuffle(follow)
    for visit in follow:
        visit.day = journey.last_day + rng.randint(2, 6)
        journey.visits.append(visit)


def _new_journey(
    planner: Planner, day: int, *, first: bool, converted_only: bool
) -> Journey | None:
    customer = planner.customer
    among = _TABLET_HOSTS if first and customer.tablet is not None else ()
    kind = journey_kind(planner, converted_only=converted_only, among=among)
    if kind is None:
        return None
    min_sessions = 1 if first and customer.laptop is not None else 0
    journey = build_journey(planner, kind, day, min_sessions=min_sessions)
    _post_purchase(planner, journey)
    return journey


def _fits(journey: Journey, cursor: int, days: int) -> bool:
    margin = _CONVERTED_END_MARGIN_DAYS if journey.converted else _DROPOFF_END_MARGIN_DAYS
    return cursor + journey.last_day <= days - margin


def plan_journeys(planner: Planner, days: int, *, converted_only: bool) -> list[Journey]:
    """Journeys one after another, keeping the quiet periods of the contract."""
    rng, customer = planner.rng, planner.customer
    latest_start = days - 80 if customer.kind == "anonymous_browser" else days - 40
    cursor = rng.randint(0, latest_start)
    journeys: list[Journey] = []
    while len(journeys) < planner.config.journeys.max_journeys:
        first = not journeys
        journey = _new_journey(planner, cursor, first=first, converted_only=converted_only)
        if journey is not None and not _fits(journey, cursor, days) and not journey.converted:
            journey = _new_journey(planner, cursor, first=first, converted_only=True)
        if journey is None:
            break
        if not _fits(journey, cursor, days):
            if not first:
                break
            cursor = 0  # the first journey always fits from the period's start
        journey.shift(cursor)
        journeys.append(journey)
        quiet = (10, 40) if journey.converted else (37, 60)
        cursor = journey.last_day + rng.randint(*quiet)
        if rng.random() >= planner.config.journeys.repeat:
            break
    return journeys


def _sessions(journeys: Sequence[Journey]) -> list[Visit]:
    return [v for j in journeys for v in j.visits if v.device is not None]


def _use_every_device(planner: Planner, journeys: list[Journey]) -> None:
    """Put the laptop on the first session; give unused devices a session; forget the rest."""
    customer, rng = planner.customer, planner.rng
    sessions = _sessions(journeys)
    if customer.laptop is not None:
        sessions[0].device = customer.laptop
    for device in customer.devices:
        if device.shared or any(v.device is device for v in sessions):
            continue
        free = [
            v
            for v in sessions[1:]
            if v.device is not None
            and not v.device.shared
            and (device.signs_in or all(s.touchpoint != "sign_in" for s in v.steps))
        ]
        if free:
            rng.choice(free).device = device
    used = {id(v.device) for v in sessions}
    customer.devices = [d for d in customer.devices if id(d) in used]


def _insert_sign_in(planner: Planner, visit: Visit, *, protected: bool = False) -> None:
    index = next(i for i, s in enumerate(visit.steps) if s.touchpoint in CLICK_TOUCHPOINTS)
    following = visit.steps[index]
    visit.steps.insert(index, Step("sign_in", following.gap_s, protected=protected))
    following.gap_s = planner.rng.randint(21, 90)


def _sign_in_devices(planner: Planner, journeys: list[Journey]) -> None:
    """Every device that signs in does so in its first session; later sessions sometimes."""
    rate = planner.config.customers.sign_in_per_session
    for device in planner.customer.devices:
        if not device.signs_in:
            continue
        sessions = [v for v in _sessions(journeys) if v.device is device]
        for number, visit in enumerate(sessions):
            signs = any(s.touchpoint == "sign_in" for s in visit.steps)
            first = number == 0
            if not signs and (first or planner.rng.random() < rate):
                _insert_sign_in(planner, visit, protected=first and bool(device.shared))
            elif first and device.shared:
                next(s for s in visit.steps if s.touchpoint == "sign_in").protected = True


def _use_tablet(planner: Planner, journeys: list[Journey]) -> None:
    """Sign in on the store tablet and view a product or two during the first journey's store
    visit (before the visit's last step, so the journey's pattern and drop-off point hold)."""
    customer, rng = planner.customer, planner.rng
    if customer.tablet is None or customer.tablet_store is None:
        return
    first = journeys[0]
    host = next(
        v
        for v in first.visits
        if v.store is not None
        and v.steps[-1].touchpoint in ("store_visit", "try_on", "store_purchase")
    )
    host.store = customer.tablet_store
    category = host.steps[-1].category or planner.any_category()
    tablet_steps = [Step("sign_in", rng.randint(21, 120), device=customer.tablet, protected=True)]
    tablet_steps += [
        Step("product_view", rng.randint(21, 200), product=planner.product_in(category))
        for _ in range(rng.randint(1, 2))
    ]
    for step in tablet_steps:
        step.device = customer.tablet
    host.steps[-1:-1] = tablet_steps
    if len(host.steps) == len(tablet_steps) + 1:
        tablet_steps[0].gap_s = 0
        host.steps[-1].gap_s = max(host.steps[-1].gap_s, rng.randint(60, 300))


def _anchor_data_end(journeys: list[Journey], days: int) -> None:
    """Customer 1 ends the data: its final (converted) journey ends on the last day."""
    last = journeys[-1]
    last.shift(days - 1 - last.last_day)


def plan_customer(
    seed: int,
    number: int,
    *,
    customers: int,
    config: SimulatorConfig,
    products: dict[str, tuple[Product, ...]],
    rosters: Rosters,
) -> tuple[Customer, list[Journey], random.Random]:
    """A customer, its journeys (visit days from the period start) and its random stream."""
    customer, rng = build_customer(seed, number, customers, config)
    planner = Planner(rng, config, products, customer, config.period.start)
    customer.laptop = household_laptop(seed, number, customers, config)
    if customer.laptop is not None:
        customer.devices.append(customer.laptop)
    block = (number - 1) // config.shared_devices.tablet_block
    if number in rosters.tablet_users(block):
        customer.tablet, customer.tablet_store = tablet_device(block)
    days = config.period.days
    journeys = plan_journeys(planner, days, converted_only=number == 1)
    for journey in journeys:
        journey.visits.sort(key=lambda v: v.day)
    _use_every_device(planner, journeys)
    _sign_in_devices(planner, journeys)
    _use_tablet(planner, journeys)
    if number == 1:
        _anchor_data_end(journeys, days)
    for index, journey in enumerate(journeys, start=1):
        journey.journey_id = f"J-{number:07d}-{index:02d}"
    return customer, journeys, rng


# --- events --------------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def _classify(step: Step, device: Device | None) -> tuple[str, str, str]:
    """(source, channel, canonical touchpoint) of a step."""
    touchpoint = step.touchpoint
    if touchpoint in CLICK_TOUCHPOINTS:
        assert device is not None
        if step.referral:
            return device.channel, step.referral, f"{step.referral}_visit"
        return device.channel, device.channel, touchpoint
    if touchpoint in POS_LINE_TYPES:
        return "pos", "store", touchpoint
    return "crm", _CRM_CHANNELS[touchpoint], touchpoint


def _visit_events(
    rng: random.Random, journey: Journey, visit: Visit, visit_no: int, start: datetime
) -> list[Event]:
    zone = _zone(visit.store.timezone) if visit.store is not None else UTC
    day = (start + timedelta(days=visit.day)).date()
    at = datetime.combine(day, time(), tzinfo=zone) + timedelta(seconds=visit.start_s)
    events: list[Event] = []
    for step in visit.steps:
        at += timedelta(seconds=step.gap_s)
        device = step.device or visit.device
        source, channel, touchpoint = _classify(step, device)
        ts = at.astimezone(UTC)
        click = source in ("web", "app")
        if click:
            ts += timedelta(milliseconds=rng.randrange(1000))
        in_store = visit.store is not None and not click
        events.append(
            Event(
                journey=journey,
                step=step,
                visit_no=visit_no,
                ts=ts,
                local_ts=at.replace(tzinfo=None) if in_store else None,
                device=device if click else None,
                store=visit.store if source in ("pos", "crm") else None,
                campaign=visit.campaign,
                source=source,
                channel=channel,
                touchpoint=touchpoint,
                referrer=step.referrer,
            )
        )
    return events


def _assign_identifiers(
    customer: Customer, events: list[Event], rng: random.Random, card_rate: float
) -> None:
    """userId after a sign-in (per device; shared devices sign out at the session's end), and
    the loyalty card and payment token on receipts."""
    signed: dict[str, int] = {}  # anonymous id -> visit_no of the sign-in (-1: for good)
    first_sale = True
    for event in events:
        device = event.device
        if device is not None:
            if event.step.touchpoint == "sign_in":
                signed[device.anonymous_id] = event.visit_no if device.shared else -1
            session = signed.get(device.anonymous_id)
            if session is not None and session in (-1, event.visit_no):
                event.user_id = customer.user_id
        elif event.touchpoint == "store_purchase":
            keep_card = first_sale or rng.random() < card_rate
            event.loyalty_id = customer.loyalty_id if keep_card else ""
            event.payment_token = customer.payment_token
            first_sale = False
        elif event.touchpoint == "store_pickup":
            event.loyalty_id = customer.loyalty_id
        elif event.touchpoint == "return":
            event.loyalty_id = customer.loyalty_id
            event.payment_token = customer.payment_token


def _assign_source_ids(customer: Customer, events: list[Event]) -> None:
    """Ids from the customer number and a per-customer sequence: no global numbering."""
    number = customer.number
    counters = {"web": 0, "app": 0, "crm": 0, "pos": 0, "order": 0}
    prefixes = {"web": "web-", "app": "app-", "crm": "I-", "pos": "R-"}
    ids_by_ref: dict[int, str] = {}
    for event in events:
        counters[event.source] += 1
        event.source_id = f"{prefixes[event.source]}{number:07d}-{counters[event.source]:04d}"
        if event.touchpoint == "order_placed":
            counters["order"] += 1
            event.order_id = f"O-{number:07d}-{counters['order']:04d}"
            ids_by_ref[event.step.conv_ref] = event.order_id
        elif event.touchpoint == "store_purchase":
            ids_by_ref[event.step.conv_ref] = event.source_id
    for event in events:
        if event.touchpoint in ("store_pickup", "review", "return"):
            event.order_id = ids_by_ref[event.step.conv_ref]


def customer_events(
    customer: Customer, journeys: list[Journey], rng: random.Random, config: SimulatorConfig
) -> list[Event]:
    """The customer's canonical events in true-time order, with ids and identifiers."""
    start = datetime.combine(config.period.start, time(), tzinfo=UTC)
    visits = sorted(
        ((j, v) for j in journeys for v in j.visits), key=lambda jv: (jv[1].day, jv[1].start_s)
    )
    events = [
        event
        for visit_no, (journey, visit) in enumerate(visits)
        for event in _visit_events(rng, journey, visit, visit_no, start)
    ]
    events.sort(key=lambda e: e.ts)
    _assign_identifiers(customer, events, rng, config.customers.loyalty_card_shown)
    _assign_source_ids(customer, events)
    _chain_referrers(events)
    return events


def _chain_referrers(events: list[Event]) -> None:
    """On the web, a page's referrer is the previous page of the same session."""
    previous: dict[tuple[str, int], str] = {}
    for event in events:
        if event.source != "web":
            continue
        assert event.device is not None
        key = (event.device.anonymous_id, event.visit_no)
        if key in previous and not event.referrer:
            event.referrer = previous[key]
        previous[key] = page_url(event)


SITE = "https://shop.example"


def page_path(event: Event) -> str:
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


def page_url(event: Event) -> str:
    return SITE + page_path(event)


# --- checks (the contract's rules, re-derived from the events) -----------------------------------


def patterns_from_events(events: Sequence[Event]) -> tuple[tuple[str, ...], str]:
    """Patterns and c&c variant of one journey's time-ordered events, by the contract's rules."""
    conversion_at = next((i for i, e in enumerate(events) if e.touchpoint in CONVERSIONS), None)
    if conversion_at is None:
        return (), ""
    head, conversion = events[: conversion_at + 1], events[conversion_at]
    found: set[str] = set()
    variant = ""
    is_order = conversion.touchpoint == "order_placed"
    if is_order and conversion.step.fulfilment == "click_and_collect":
        found.add("click_and_collect")
        picked = any(
            e.touchpoint == "store_pickup" and e.order_id == conversion.order_id for e in events
        )
        variant = "collected" if picked else "no_show"
    browsing = ("product_view", "search", "add_to_cart")
    category = conversion.step.category
    for earlier in head[:-1]:
        if conversion.ts - earlier.ts > PATTERN_WINDOW or earlier.step.category != category:
            continue
        if earlier.channel in ("web", "app") and earlier.touchpoint in browsing and not is_order:
            found.add("ropo")
        if earlier.touchpoint == "try_on" and is_order:
            found.add("try_and_buy")
    channels = {e.channel for e in head}
    if channels <= ONLINE_CHANNELS and "click_and_collect" not in found:
        found.add("online_only")
    if channels <= OFFLINE_CHANNELS:
        found.add("offline_only")
    return tuple(sorted(found)), variant


def check_rules(customer: Customer, journeys: list[Journey], events: list[Event]) -> list[str]:
    """Problems with the rules of the contract on one customer's events (empty: all hold)."""
    problems: list[str] = []
    by_journey: dict[str, list[Event]] = {j.journey_id: [] for j in journeys}
    for event in events:
        by_journey[event.journey.journey_id].append(event)
    for journey in journeys:
        found = by_journey[journey.journey_id]
        if patterns_from_events(found) != (journey.patterns, journey.variant):
            problems.append(f"{journey.journey_id}: {patterns_from_events(found)} != intended")
        if any(b.ts - a.ts > MAX_GAP for a, b in pairwise(found)):
            problems.append(f"{journey.journey_id}: gap over 12 days")
    for (before, first), (_, second) in pairwise(
        sorted(((j, by_journey[j.journey_id]) for j in journeys), key=lambda x: x[1][0].ts)
    ):
        quiet = AFTER_CONVERSION_QUIET if before.converted else DROPOFF_QUIET
        if second[0].ts - first[-1].ts < quiet:
            problems.append(f"{before.journey_id}: next journey starts too early")
    if len({e.ts for e in events}) != len(events):
        problems.append(f"{customer.customer_id}: two events share a timestamp")
    if any((b.ts - a.ts).total_seconds() < 20 for a, b in pairwise(events)):
        problems.append(f"{customer.customer_id}: events less than 20 s apart")
    for event in events:
        if event.local_ts is not None:
            local = event.local_ts
            seconds = local.hour * 3600 + local.minute * 60 + local.second
            if not OPENING_S <= seconds <= CLOSING_S:
                problems.append(f"{event.event_id}: store event outside opening hours")
    return problems
