"""Delivery: one customer's events as source rows, with the noise of the contract, and its truth.

Input: a customer, its journeys and true-time events, the config and the customer's noise and
delivery random streams. Output: :class:`Delivery` -- the rows for the weekly source files (one
per JSON line or CSV row, duplicates and broken rows included, keyed by arrival) and the truth
rows (one per identifier, canonical event and journey). Identity groups are the connected
components of the links the customer's *valid* rows carry; no identifier is shared between
customers except shared devices' anonymous ids, which link nothing, so components never cross
customers and are computed here, one customer at a time.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from journey_analytics.simulator._catalogue import Product
from journey_analytics.simulator._config import SimulatorConfig
from journey_analytics.simulator._plan import CONVERSIONS, Customer, Journey
from journey_analytics.simulator._timeline import POS_LINE_TYPES, Event, page_path

CURRENCY = "EUR"
_APP_CONTEXT = {"name": "Shop", "version": "4.2.0"}
_TRACK_NAMES = {
    "search": "Products Searched",
    "product_view": "Product Viewed",
    "add_to_cart": "Product Added",
    "order_placed": "Order Completed",
    "review": "Product Reviewed",
}
IDENTIFIER_PRIORITY = ("user_id", "loyalty_id", "email", "phone", "payment_token", "anonymous_id")
_JSON_BREAKS = ("bad_json", "bad_date", "wrong_type", "missing_id")
_CSV_BREAKS = ("bad_csv", "bad_date", "wrong_type", "missing_id")
_LINE_BREAKS = ("bad_csv", "wrong_type", "missing_id")  # receipt lines have no date
_COMPACT = (",", ":")

Identifier = tuple[str, str]  # (identifier type, normalised value)


@dataclass(slots=True)
class Row:
    """One data row of a source file: its file, its arrival (for ordering) and its text."""

    path: str
    arrival: datetime
    text: str


@dataclass(slots=True)
class Delivery:
    """What one customer adds to the source and truth files, and to the counts."""

    rows: list[Row] = field(default_factory=list)
    contact: list[str] = field(default_factory=list)  # contacts.csv rows (0-2)
    identifiers: list[list[str]] = field(default_factory=list)
    events: list[list[str]] = field(default_factory=list)
    journeys: list[list[str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


# --- formatting ----------------------------------------------------------------------------------


def utc_ms(ts: datetime) -> str:
    """``2026-02-03T10:15:00.000Z`` for an aware UTC datetime."""
    return ts.isoformat(timespec="milliseconds")[:23] + "Z"


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def csv_line(fields: Sequence[str]) -> str:
    """One CSV row (RFC 4180 minimal quoting), without the line end."""
    return ",".join(
        f'"{f.replace(chr(34), chr(34) * 2)}"' if ("," in f or '"' in f or "\n" in f) else f
        for f in fields
    )


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _week_path(prefix: str, day: date, ext: str) -> str:
    return f"{prefix}-{monday(day).isoformat()}.{ext}"


def normal_email(value: str) -> str:
    return value.strip().lower()


def normal_phone(value: str) -> str:
    return "+" + "".join(c for c in value if c.isdigit())


def _revenue_cents(lines: Sequence[tuple[Product, int]]) -> int:
    return sum(product.price_cents * quantity for product, quantity in lines)


def _item(product: Product, quantity: int | None = None) -> dict[str, object]:
    item: dict[str, object] = {
        "product_id": product.product_id,
        "category": product.category,
        "price": product.price_cents / 100,
    }
    if quantity is not None:
        item["quantity"] = quantity
    return item


# --- clickstream ---------------------------------------------------------------------------------


def _click_properties(event: Event) -> dict[str, object]:
    step, touchpoint = event.step, event.step.touchpoint
    if touchpoint == "search":
        return {"query": step.query, "category": step.search_category}
    if touchpoint in ("product_view", "add_to_cart"):
        assert step.product is not None
        return _item(step.product, step.quantity if touchpoint == "add_to_cart" else None)
    if touchpoint == "order_placed":
        first = step.lines[0][0]
        properties: dict[str, object] = {
            "order_id": event.order_id,
            "revenue": _revenue_cents(step.lines) / 100,
            "currency": CURRENCY,
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


def _message(event: Event, customer: Customer) -> dict[str, object]:
    """The Segment message without its transport times (sentAt, receivedAt)."""
    touchpoint = event.step.touchpoint
    assert event.device is not None
    message: dict[str, object]
    if touchpoint == "home_view":
        message = {"type": "page", "name": "Home"}
    elif touchpoint == "sign_in":
        message = {"type": "identify"}
    else:
        message = {"type": "track", "event": _TRACK_NAMES[touchpoint]}
    message["messageId"] = event.source_id
    message["anonymousId"] = event.device.anonymous_id
    message["userId"] = event.user_id or None
    skewed = event.ts + timedelta(milliseconds=event.device.skew_ms)
    message["timestamp"] = utc_ms(skewed)
    if touchpoint == "sign_in":
        traits = {"email": customer.email}
        if customer.phone_in_traits:
            traits["phone"] = customer.phone
        message["traits"] = traits
    else:
        message["properties"] = _click_properties(event)
    context: dict[str, object] = {}
    if event.source == "web":
        path = page_path(event)
        context["page"] = {
            "url": "https://shop.example" + path,
            "path": path,
            "referrer": event.referrer,
        }
    else:
        context["app"] = dict(_APP_CONTEXT)
        if event.referrer:
            context["page"] = {"referrer": event.referrer}
    if event.campaign:
        context["campaign"] = {"source": "newsletter", "medium": "email", "name": event.campaign}
    message["context"] = context
    return message


def _message_line(
    message: dict[str, object], sent: datetime, received: datetime, skew_ms: int
) -> str:
    stamped: dict[str, object] = {}
    for key, value in message.items():
        stamped[key] = value
        if key == "timestamp":
            stamped["sentAt"] = utc_ms(sent + timedelta(milliseconds=skew_ms))
            stamped["receivedAt"] = utc_ms(received)
    return json.dumps(stamped, separators=_COMPACT)


def _break_message(message: dict[str, object], kind: str, line: str) -> str:
    """A broken copy of a message line that a strict parser cannot read."""
    if kind == "bad_json":
        return line[: max(10, len(line) * 3 // 5)]
    broken = json.loads(line)
    if kind == "bad_date":
        broken["timestamp"] = str(broken["timestamp"])[:8] + "32" + str(broken["timestamp"])[10:]
    elif kind == "missing_id":
        del broken["messageId"]
    else:  # wrong_type: a number field as text, or an object as a string
        properties = broken.get("properties")
        numeric = ("revenue",)  # the number ingest computes with
        key = next((k for k in numeric if isinstance(properties, dict) and k in properties), None)
        if key is not None:
            assert isinstance(properties, dict)
            properties[key] = "abc"
        else:
            broken["traits" if message["type"] == "identify" else "properties"] = "abc"
    return json.dumps(broken, separators=_COMPACT)


@dataclass(slots=True)
class _Sending:
    """When each clickstream message is sent: at once, or late for a whole session."""

    noise: random.Random
    delivery: random.Random
    late_rate: float
    late_sessions: dict[tuple[str, int], datetime] = field(default_factory=dict)

    def plan_late(self, events: Sequence[Event]) -> None:
        ends: dict[tuple[str, int], datetime] = {}
        for event in events:
            if event.device is not None:
                ends[(event.device.anonymous_id, event.visit_no)] = event.ts
        for key, end in ends.items():
            if self.noise.random() < self.late_rate:
                sent = end + timedelta(seconds=self.delivery.uniform(86_400, 5 * 86_400))
                if monday(sent.date()) <= monday(end.date()):
                    next_monday = datetime.combine(
                        monday(end.date()) + timedelta(days=7), datetime.min.time(), tzinfo=UTC
                    )
                    sent = next_monday + timedelta(seconds=self.delivery.uniform(3_600, 30 * 3_600))
                self.late_sessions[key] = sent

    def sent_at(self, event: Event) -> tuple[datetime, bool]:
        assert event.device is not None
        late = self.late_sessions.get((event.device.anonymous_id, event.visit_no))
        if late is not None:
            return late, True
        return event.ts + timedelta(milliseconds=self.delivery.randint(200, 2500)), False

    def latency(self) -> timedelta:
        return timedelta(milliseconds=self.delivery.randint(50, 1500))


# --- CRM and POS rows ----------------------------------------------------------------------------


def _interaction_fields(event: Event, customer: Customer) -> list[str]:
    step, channel = event.step, event.channel
    return [
        event.source_id,
        event.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        step.touchpoint,
        channel,
        customer.email if channel in ("email", "chat") else "",
        customer.phone if channel == "phone" else "",
        customer.loyalty_id if channel == "store" else "",
        event.store.store_id if event.store is not None else "",
        step.product.product_id if step.product is not None else "",
        step.category if step.touchpoint == "try_on" else "",
        event.campaign if channel == "email" else "",
    ]


def _line_amount(event: Event, product: Product, quantity: int) -> int:
    if event.touchpoint == "store_purchase":
        return product.price_cents * quantity
    if event.touchpoint == "return":
        return -product.price_cents * quantity
    return 0


def _receipt_fields(event: Event) -> tuple[list[str], list[list[str]]]:
    assert event.store is not None and event.local_ts is not None
    lines = event.step.lines
    total = sum(_line_amount(event, p, q) for p, q in lines)
    receipt = [
        event.source_id,
        event.store.store_id,
        event.local_ts.strftime("%Y-%m-%d %H:%M:%S"),
        event.loyalty_id,
        event.payment_token,
        CURRENCY,
        money(total),
    ]
    line_type = POS_LINE_TYPES[event.touchpoint]
    rows = [
        [
            event.source_id,
            str(line_no),
            product.product_id,
            product.category,
            str(quantity),
            money(_line_amount(event, product, quantity)),
            line_type,
            event.order_id if line_type != "sale" else "",
        ]
        for line_no, (product, quantity) in enumerate(lines, start=1)
    ]
    return receipt, rows


# column to break, per file kind: (date column, typed column and its bad value, id column)
_CSV_TARGETS = {
    "interactions": (1, (1, "1771234567"), 0),
    "receipts": (2, (6, "abc"), 0),
    "receipt_lines": (-1, (5, "abc"), 0),
    "contacts": (6, (6, "1771234567"), 0),  # created_at as an epoch number
}


def _break_csv(fields: list[str], kind: str, table: str) -> str:
    date_at, (typed_at, bad), id_at = _CSV_TARGETS[table]
    broken = list(fields)
    if kind == "bad_csv":
        return csv_line(broken) + ",unexpected"
    if kind == "bad_date":
        broken[date_at] = broken[date_at][:8] + "32" + broken[date_at][10:]
    elif kind == "wrong_type":
        broken[typed_at] = bad
    else:
        broken[id_at] = ""
    return csv_line(broken)


# --- identity ------------------------------------------------------------------------------------


class _Components:
    """Union-find over one customer's identifiers."""

    def __init__(self) -> None:
        self.parent: dict[Identifier, Identifier] = {}

    def add(self, node: Identifier) -> None:
        self.parent.setdefault(node, node)

    def find(self, node: Identifier) -> Identifier:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def link(self, nodes: Sequence[Identifier]) -> None:
        for node in nodes:
            self.add(node)
        for other in nodes[1:]:
            self.parent[self.find(other)] = self.find(nodes[0])


def _event_identifiers(event: Event, customer: Customer) -> list[Identifier]:
    """The identifiers the event's own row carries (receipts: the receipt row)."""
    found: list[Identifier] = []
    if event.device is not None:
        found.append(("anonymous_id", event.device.anonymous_id))
        if event.user_id:
            found.append(("user_id", event.user_id))
        if event.step.touchpoint == "sign_in":
            found.append(("email", normal_email(customer.email)))
            if customer.phone_in_traits:
                found.append(("phone", normal_phone(customer.phone)))
        return found
    if event.source == "pos":
        if event.loyalty_id:
            found.append(("loyalty_id", event.loyalty_id))
        if event.payment_token:
            found.append(("payment_token", event.payment_token))
        return found
    fields = _interaction_fields(event, customer)
    if fields[4]:
        found.append(("email", normal_email(fields[4])))
    if fields[5]:
        found.append(("phone", normal_phone(fields[5])))
    if fields[6]:
        found.append(("loyalty_id", fields[6]))
    return found


def _contact_identifiers(customer: Customer) -> list[Identifier]:
    found: list[Identifier] = []
    if customer.email:
        found.append(("email", normal_email(customer.email)))
    if customer.phone:
        found.append(("phone", normal_phone(customer.phone)))
    if customer.loyalty_id:
        found.append(("loyalty_id", customer.loyalty_id))
    if customer.user_id:
        found.append(("user_id", customer.user_id))
    return found


# --- one customer --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Noise:
    rng: random.Random
    malformed: float
    duplicates: float
    out_of_order: float

    def breaks(self, protected: bool) -> bool:
        return not protected and self.rng.random() < self.malformed

    def duplicated(self) -> bool:
        return self.rng.random() < self.duplicates


class _CustomerDelivery:
    """Builds one customer's :class:`Delivery`."""

    def __init__(
        self,
        customer: Customer,
        config: SimulatorConfig,
        noise_rng: random.Random,
        delivery_rng: random.Random,
    ) -> None:
        self.customer = customer
        self.noise = _Noise(
            noise_rng,
            config.knob("malformed_rows"),
            config.knob("duplicates"),
            config.knob("out_of_order_files"),
        )
        self.sending = _Sending(noise_rng, delivery_rng, config.knob("late_events"))
        self.delivery_rng = delivery_rng
        self.out = Delivery()
        self.components = _Components()
        self.written: dict[Identifier, None] = {}
        self.shared = {d.anonymous_id for d in (customer.tablet, customer.laptop) if d is not None}

    def carried(self, identifiers: list[Identifier], *, valid: bool) -> None:
        for identifier in identifiers:
            self.written.setdefault(identifier, None)
            self.components.add(identifier)
        linkable = [i for i in identifiers if not (i[0] == "anonymous_id" and i[1] in self.shared)]
        if valid and linkable:
            self.components.link(linkable)

    def add(self, path: str, arrival: datetime, text: str) -> None:
        self.out.rows.append(Row(path, arrival, text))
        self.out.counts["rows"] += 1

    def clickstream(self, event: Event) -> bool:
        """Rows of one message; True if it was written broken."""
        assert event.device is not None
        message = _message(event, self.customer)
        sent, late = self.sending.sent_at(event)
        received = sent + self.sending.latency()
        skew = event.device.skew_ms
        line = _message_line(message, sent, received, skew)
        path = _week_path(f"clickstream/{event.source}", received.date(), "jsonl")
        self.out.counts["late_events"] += late
        if self.noise.breaks(event.step.protected):
            kind = self.noise.rng.choice(_JSON_BREAKS)
            self.add(path, received, _break_message(message, kind, line))
            self.out.counts[f"malformed_rows.{kind}"] += 1
            return True
        self.add(path, received, line)
        if self.noise.duplicated():
            resent = sent + timedelta(seconds=self.delivery_rng.uniform(30, 2 * 86_400))
            again = resent + self.sending.latency()
            path = _week_path(f"clickstream/{event.source}", again.date(), "jsonl")
            self.add(path, again, _message_line(message, resent, again, skew))
            self.out.counts["duplicate_rows"] += 1
        return False

    def csv_rows(
        self, table: str, path: str, arrival: datetime, rows: list[list[str]], *, broken: bool
    ) -> None:
        """CSV rows of one record (a receipt's lines are one record); duplicates when valid."""
        for fields in rows:
            if broken:
                breaks = _LINE_BREAKS if table == "receipt_lines" else _CSV_BREAKS
                kind = self.noise.rng.choice(breaks)
                self.add(path, arrival, _break_csv(fields, kind, table))
                self.out.counts[f"malformed_rows.{kind}"] += 1
                continue
            text = csv_line(fields)
            self.add(path, arrival, text)
            if self.noise.duplicated():
                later = self.noise.rng.random() < 0.5  # re-exported in the next week's file
                again_path = path
                if later:
                    day = date.fromisoformat(path[-14:-4]) + timedelta(days=7)
                    again_path = path[:-14] + day.isoformat() + ".csv"
                self.add(again_path, arrival + timedelta(days=7 * later, seconds=1), text)
                self.out.counts["duplicate_rows"] += 1

    def interaction(self, event: Event) -> bool:
        export = event.ts + timedelta(days=1)
        path = _week_path("crm/interactions", export.date(), "csv")
        broken = self.noise.breaks(event.step.protected)
        self.csv_rows(
            "interactions",
            path,
            event.ts,
            [_interaction_fields(event, self.customer)],
            broken=broken,
        )
        return broken

    def receipt(self, event: Event) -> bool:
        assert event.local_ts is not None
        receipt, lines = _receipt_fields(event)
        export = event.local_ts.date() + timedelta(days=1)
        broken = self.noise.breaks(event.step.protected)
        self.csv_rows(
            "receipts",
            _week_path("pos/receipts", export, "csv"),
            event.ts,
            [receipt],
            broken=broken,
        )
        if self.noise.rng.random() < self.noise.out_of_order:
            export += timedelta(days=7)
            self.out.counts["out_of_order_receipts"] += 1
        lines_path = _week_path("pos/receipt_lines", export, "csv")
        self.csv_rows("receipt_lines", lines_path, event.ts, lines, broken=broken)
        return broken

    def contact(self) -> None:
        c = self.customer
        identifiers = _contact_identifiers(c)
        if not (c.email or c.phone or c.loyalty_id):
            return
        fields = [
            f"C-{c.number:07d}",
            c.contact_email,
            c.contact_phone,
            c.loyalty_id,
            c.user_id,
            "true" if c.consent_email else "false",
            c.created_at,
        ]
        broken = self.noise.breaks(False)
        self.carried(identifiers, valid=not broken)
        if broken:
            kind = self.noise.rng.choice(_CSV_BREAKS)
            self.out.contact.append(_break_csv(fields, kind, "contacts"))
            self.out.counts[f"malformed_rows.{kind}"] += 1
            self.out.counts["malformed_contacts"] += 1
            return
        self.out.contact.append(csv_line(fields))
        if self.noise.duplicated():
            self.out.contact.append(csv_line(fields))
            self.out.counts["duplicate_rows"] += 1

    def event(self, event: Event) -> str:
        """Write one canonical event's rows; its status."""
        if event.device is not None:
            broken = self.clickstream(event)
        elif event.source == "pos":
            broken = self.receipt(event)
        else:
            broken = self.interaction(event)
        self.carried(_event_identifiers(event, self.customer), valid=not broken)
        return "malformed" if broken else "valid"


def _group_names(delivery: _CustomerDelivery, number: int) -> dict[Identifier, str]:
    """Identifier -> identity group: components named in order of their first identifier."""
    names: dict[Identifier, str] = {}
    roots: dict[Identifier, str] = {}
    for identifier in sorted(delivery.written, key=_identifier_order):
        if identifier[0] == "anonymous_id" and identifier[1] in delivery.shared:
            names[identifier] = f"G-{identifier[1]}"
            continue
        root = delivery.components.find(identifier)
        if root not in roots:
            roots[root] = f"G-{number:07d}-{len(roots) + 1:02d}"
        names[identifier] = roots[root]
    return names


def _identifier_order(identifier: Identifier) -> tuple[int, str]:
    return IDENTIFIER_PRIORITY.index(identifier[0]), identifier[1]


def _event_group(
    event: Event, customer: Customer, names: dict[Identifier, str], shared: set[str]
) -> str:
    identifiers = sorted(_event_identifiers(event, customer), key=_identifier_order)
    if not identifiers or (identifiers[0][0] == "anonymous_id" and identifiers[0][1] in shared):
        return f"G-{event.event_id}"
    return names[identifiers[0]]


def _journey_row(journey: Journey, events: list[Event], customer: Customer) -> list[str]:
    conversion = next((e for e in events if e.touchpoint in CONVERSIONS), None)
    revenue = "" if conversion is None else money(_revenue_cents(conversion.step.lines))
    return [
        journey.journey_id,
        customer.customer_id,
        journey.kind,
        "true" if journey.converted else "false",
        ";".join(journey.patterns),
        journey.variant,
        "" if journey.converted else events[-1].touchpoint,
        revenue,
        "" if conversion is None else conversion.event_id,
        str(len(events)),
    ]


def deliver_customer(
    customer: Customer,
    journeys: list[Journey],
    events: list[Event],
    *,
    config: SimulatorConfig,
    noise_rng: random.Random,
    delivery_rng: random.Random,
) -> Delivery:
    """The source rows and truth rows of one customer."""
    builder = _CustomerDelivery(customer, config, noise_rng, delivery_rng)
    builder.contact()
    builder.sending.plan_late(events)
    statuses = [builder.event(event) for event in events]
    out = builder.out
    names = _group_names(builder, customer.number)
    out.identifiers = [
        [customer.customer_id, kind, value, names[(kind, value)]]
        for kind, value in sorted(builder.written, key=_identifier_order)
    ]
    for event, status in zip(events, statuses, strict=True):
        group = _event_group(event, customer, names, builder.shared)
        out.events.append(
            [
                event.event_id,
                customer.customer_id,
                event.journey.journey_id,
                group,
                status,
                utc_ms(event.ts),
            ]
        )
        out.counts["malformed_events"] += status == "malformed"
    by_journey: dict[str, list[Event]] = {j.journey_id: [] for j in journeys}
    for event in events:
        by_journey[event.journey.journey_id].append(event)
    out.journeys = [_journey_row(j, by_journey[j.journey_id], customer) for j in journeys]
    return out
