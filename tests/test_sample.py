"""Tests for the sample generator: determinism, the committed sample, and the contract's rules.

The source files are parsed here independently of the generator (following
``docs/sample-format.md`` only), and the ground truth is re-derived from them.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from journey_analytics.sample import PATTERNS, SampleSummary, generate_sample

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
ONLINE = {"web", "app", "email", "chat"}
OFFLINE = {"store", "phone"}
TRACKS = {
    "Products Searched": "search",
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Order Completed": "order_placed",
    "Product Reviewed": "review",
}
CRM_CHANNELS = {
    "email_open": "email",
    "email_click": "email",
    "call": "phone",
    "store_visit": "store",
    "try_on": "store",
}


@dataclass(frozen=True)
class Event:
    event_id: str
    ts: datetime
    touchpoint: str
    channel: str
    category: str
    fulfilment: str = ""
    order_id: str = ""  # orders: own id; pickups/reviews: the purchase they refer to
    revenue_cents: int = 0
    local_seconds: int | None = None  # store events: seconds after local midnight


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def cents(amount: str | float) -> int:
    return round(float(amount) * 100)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_clickstream(root: Path) -> list[Event]:
    events = []
    for path in sorted((root / "clickstream").glob("*.jsonl")):
        source = path.name.split("-")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            message = json.loads(line)
            if message["type"] == "page":
                assert message["name"] == "Home"
                touchpoint = "home_view"
            elif message["type"] == "identify":
                touchpoint = "sign_in"
            else:
                touchpoint = TRACKS[message["event"]]
            properties = message.get("properties", {})
            is_order = touchpoint == "order_placed"
            events.append(
                Event(
                    event_id=f"{source}:{message['messageId']}",
                    ts=utc(message["timestamp"]),
                    touchpoint=touchpoint,
                    channel=source,
                    category=properties.get("category", ""),
                    fulfilment=properties.get("fulfilment", ""),
                    order_id=properties.get("order_id", ""),
                    revenue_cents=cents(properties["revenue"]) if is_order else 0,
                )
            )
    return events


def parse_crm(root: Path) -> list[Event]:
    zones = {row["store_id"]: ZoneInfo(row["timezone"]) for row in read_csv(root / "stores.csv")}
    events = []
    for row in read_csv(root / "crm" / "interactions.csv"):
        ts = utc(row["occurred_at"])
        local = None
        if row["store_id"]:
            wall = ts.astimezone(zones[row["store_id"]])
            local = wall.hour * 3600 + wall.minute * 60 + wall.second
        events.append(
            Event(
                event_id=f"crm:{row['interaction_id']}",
                ts=ts,
                touchpoint=row["type"],
                channel=row["channel"],
                category=row["category"],
                local_seconds=local,
            )
        )
    return events


def parse_pos(root: Path) -> list[Event]:
    zones = {row["store_id"]: ZoneInfo(row["timezone"]) for row in read_csv(root / "stores.csv")}
    receipts = {row["receipt_id"]: row for row in read_csv(root / "pos" / "receipts.csv")}
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for line in read_csv(root / "pos" / "receipt_lines.csv"):
        groups[line["receipt_id"], line["line_type"]].append(line)
    touchpoints = {"sale": "store_purchase", "pickup": "store_pickup", "return": "return"}
    events = []
    for (receipt_id, line_type), lines in sorted(groups.items()):
        receipt = receipts[receipt_id]
        wall = datetime.fromisoformat(receipt["receipt_ts"])
        first = min(lines, key=lambda line: int(line["line_no"]))
        events.append(
            Event(
                event_id=f"pos:{receipt_id}:{line_type}",
                ts=wall.replace(tzinfo=zones[receipt["store_id"]]).astimezone(UTC),
                touchpoint=touchpoints[line_type],
                channel="store",
                category=first["category"],
                order_id=first["order_id"] if line_type == "pickup" else receipt_id,
                revenue_cents=sum(cents(line["amount"]) for line in lines),
                local_seconds=wall.hour * 3600 + wall.minute * 60 + wall.second,
            )
        )
    return events


def parse_events(root: Path) -> dict[str, Event]:
    events = [*parse_clickstream(root), *parse_crm(root), *parse_pos(root)]
    by_id = {event.event_id: event for event in events}
    assert len(by_id) == len(events)
    return by_id


def patterns_of(events: list[Event]) -> tuple[str, str]:
    """``(patterns, variant)`` of one journey's time-ordered events, by the contract's rules."""
    at = next((i for i, e in enumerate(events) if e.touchpoint in CONVERSIONS), None)
    if at is None:
        return "", ""
    head, conversion = events[: at + 1], events[at]
    found = set()
    variant = ""
    window = timedelta(days=30)
    if conversion.touchpoint == "order_placed" and conversion.fulfilment == "click_and_collect":
        found.add("click_and_collect")
        collected = any(
            e.touchpoint == "store_pickup" and e.order_id == conversion.order_id for e in events
        )
        variant = "collected" if collected else "no_show"
    for e in head[:-1]:
        close = conversion.ts - e.ts <= window and e.category == conversion.category
        browsed = e.channel in ("web", "app") and e.touchpoint in BROWSE
        if close and browsed and conversion.touchpoint == "store_purchase":
            found.add("ropo")
        if close and e.touchpoint == "try_on" and conversion.touchpoint == "order_placed":
            found.add("try_and_buy")
    channels = {e.channel for e in head}
    if channels <= ONLINE and conversion.fulfilment != "click_and_collect":
        found.add("online_only")
    if channels <= OFFLINE:
        found.add("offline_only")
    return ";".join(sorted(found)), variant


CONVERSIONS = ("order_placed", "store_purchase")
BROWSE = ("product_view", "search", "add_to_cart")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    out = tmp_path_factory.mktemp("small")
    return out, generate_sample(out, customers=60, seed=7)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    out = tmp_path_factory.mktemp("full")
    return out, generate_sample(out, customers=500, seed=42)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    first = generate_sample(tmp_path / "a", customers=60, seed=7)
    second = generate_sample(tmp_path / "b", customers=60, seed=7)
    assert first == second
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate_sample(tmp_path / "a", customers=60, seed=7)
    generate_sample(tmp_path / "b", customers=60, seed=8)
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    # stores and the product catalogue are fixed reference data; everything else changes
    assert a["stores.csv"] == b["stores.csv"] and a["products.csv"] == b["products.csv"]
    for name in ("crm/interactions.csv", "pos/receipts.csv", "truth/events.csv"):
        assert a[name] != b[name]


def test_rerun_replaces_owned_files_and_keeps_others(tmp_path: Path) -> None:
    (tmp_path / "clickstream").mkdir()
    (tmp_path / "clickstream" / "web-2025-12.jsonl").write_text("stale\n")
    (tmp_path / "README.md").write_text("keep me\n")
    summary = generate_sample(tmp_path, customers=60, seed=7)
    assert not (tmp_path / "clickstream" / "web-2025-12.jsonl").exists()
    assert (tmp_path / "README.md").read_text() == "keep me\n"
    assert sorted(file_bytes(tmp_path)) == sorted(summary.files)


def test_too_small_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="customers >= 10"):
        generate_sample(tmp_path, customers=3, seed=1)
    with pytest.raises(ValueError, match="days >= 120"):
        generate_sample(tmp_path, customers=60, seed=1, days=60)


def test_committed_sample_matches_the_generator(full: tuple[Path, SampleSummary]) -> None:
    out, _ = full
    committed = file_bytes(SAMPLE_DIR)
    fresh = file_bytes(out)
    assert sorted(committed) == sorted(fresh)
    assert [name for name in fresh if committed[name] != fresh[name]] == []
    assert (SAMPLE_DIR / "README.md").is_file()


def test_committed_sample_is_small() -> None:
    assert sum(len(b) for b in file_bytes(SAMPLE_DIR).values()) < 4_000_000


@pytest.mark.parametrize("which", ["small", "full"])
def test_every_source_event_is_in_truth_exactly_once(
    which: str, request: pytest.FixtureRequest
) -> None:
    out, summary = request.getfixturevalue(which)
    truth_ids = [row["event_id"] for row in read_csv(out / "truth" / "events.csv")]
    assert [i for i, n in Counter(truth_ids).items() if n > 1] == []
    assert sorted(parse_events(out)) == sorted(truth_ids)
    assert summary.events == len(truth_ids)


@pytest.mark.parametrize("which", ["small", "full"])
def test_summary_counts_equal_the_truth_files(which: str, request: pytest.FixtureRequest) -> None:
    out, summary = request.getfixturevalue(which)
    journeys = read_csv(out / "truth" / "journeys.csv")
    patterns = Counter(p for j in journeys for p in j["patterns"].split(";") if p)
    assert summary.customers == len(read_csv(out / "truth" / "customers.csv"))
    assert summary.journeys == len(journeys)
    assert summary.conversions == sum(j["converted"] == "true" for j in journeys)
    assert summary.patterns == {name: patterns[name] for name in PATTERNS}
    assert summary.dropoff_touchpoints == dict(
        sorted(
            Counter(j["dropoff_touchpoint"] for j in journeys if j["dropoff_touchpoint"]).items()
        )
    )
    for name, rows in summary.files.items():
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        assert rows == len(lines) - (0 if name.endswith(".jsonl") else 1), name


def test_full_sample_has_every_kind_of_journey_and_customer(
    full: tuple[Path, SampleSummary],
) -> None:
    out, summary = full
    journeys = read_csv(out / "truth" / "journeys.csv")
    kinds = {(j["kind"], j["variant"], j["dropoff_touchpoint"]) for j in journeys}
    assert {
        ("ropo", "", ""),
        ("click_and_collect", "collected", ""),
        ("click_and_collect", "no_show", ""),
        ("try_and_buy", "", ""),
        ("online_only", "", ""),
        ("offline_only", "", ""),
        ("dropoff", "", "add_to_cart"),
        ("dropoff", "", "product_view"),
        ("dropoff", "", "store_visit"),
        ("dropoff", "", "call"),
    } <= kinds
    assert all(summary.patterns[name] > 0 for name in PATTERNS)
    # a journey may carry several patterns: try-and-buy collected in store
    assert any(j["patterns"] == "click_and_collect;try_and_buy" for j in journeys)
    customer_kinds = {row["kind"] for row in read_csv(out / "truth" / "customers.csv")}
    assert customer_kinds == {
        "omnichannel",
        "online",
        "store_loyalty",
        "store_anonymous",
        "anonymous_browser",
    }
    interactions = Counter(row["type"] for row in read_csv(out / "crm" / "interactions.csv"))
    assert all(interactions[t] > 0 for t in CRM_CHANNELS)
    events = parse_events(out)
    assert sum(e.touchpoint == "review" for e in events.values()) > 0
    sizes = Counter(row["receipt_id"] for row in read_csv(out / "pos" / "receipt_lines.csv"))
    assert set(sizes.values()) == {1, 2}


def journeys_with_events(out: Path) -> tuple[dict[str, list[Event]], dict[str, list[str]]]:
    """Journey id -> time-ordered events, and customer id -> its journey ids in time order."""
    events = parse_events(out)
    by_journey: dict[str, list[Event]] = defaultdict(list)
    owner: dict[str, str] = {}
    for row in read_csv(out / "truth" / "events.csv"):
        by_journey[row["journey_id"]].append(events[row["event_id"]])
        owner[row["journey_id"]] = row["customer_id"]
    for journey in by_journey.values():
        journey.sort(key=lambda e: e.ts)
    timelines: dict[str, list[str]] = defaultdict(list)
    for journey_id in sorted(by_journey, key=lambda j: by_journey[j][0].ts):
        timelines[owner[journey_id]].append(journey_id)
    return by_journey, timelines


@pytest.mark.parametrize("which", ["small", "full"])
def test_journey_rules_hold(which: str, request: pytest.FixtureRequest) -> None:
    out, _ = request.getfixturevalue(which)
    by_journey, timelines = journeys_with_events(out)
    truth = {row["journey_id"]: row for row in read_csv(out / "truth" / "journeys.csv")}
    data_end = max(e.ts for events in by_journey.values() for e in events)
    assert sorted(truth) == sorted(by_journey)
    for customer, journey_ids in timelines.items():
        stamps = [e.ts for j in journey_ids for e in by_journey[j]]
        assert len(set(stamps)) == len(stamps), f"{customer}: two events share a timestamp"
        for before, after in pairwise(journey_ids):
            quiet = by_journey[after][0].ts - by_journey[before][-1].ts
            needed = 7 if truth[before]["converted"] == "true" else 35
            assert quiet >= timedelta(days=needed), (before, after)
    for journey_id, events in by_journey.items():
        gaps = [b.ts - a.ts for a, b in pairwise(events)]
        assert all(g <= timedelta(days=12) for g in gaps), journey_id
        row = truth[journey_id]
        if row["converted"] == "false":
            assert data_end - events[-1].ts >= timedelta(days=35), journey_id
            assert row["dropoff_touchpoint"] == events[-1].touchpoint
            assert (row["revenue"], row["conversion_event_id"]) == ("", "")
        else:
            conversion = next(e for e in events if e.touchpoint in CONVERSIONS)
            assert row["conversion_event_id"] == conversion.event_id
            assert cents(row["revenue"]) == conversion.revenue_cents
            # only post-purchase events that carry the purchase's id come after the conversion
            later = events[events.index(conversion) + 1 :]
            assert all(e.order_id == conversion.order_id for e in later), journey_id
        assert (row["patterns"], row["variant"]) == patterns_of(events), journey_id
        assert int(row["n_events"]) == len(events)


@pytest.mark.parametrize("which", ["small", "full"])
def test_store_events_fall_in_opening_hours(which: str, request: pytest.FixtureRequest) -> None:
    out, _ = request.getfixturevalue(which)
    seconds = [e.local_seconds for e in parse_events(out).values() if e.local_seconds is not None]
    assert seconds
    assert all(10 * 3600 <= s <= 19 * 3600 + 1800 for s in seconds)


def test_amounts_add_up(full: tuple[Path, SampleSummary]) -> None:
    out, _ = full
    prices = {row["product_id"]: cents(row["price"]) for row in read_csv(out / "products.csv")}
    for path in sorted((out / "clickstream").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            message = json.loads(line)
            if message.get("event") == "Order Completed":
                properties = message["properties"]
                items = properties["products"]
                assert properties["currency"] == "EUR"
                assert cents(properties["revenue"]) == sum(
                    prices[i["product_id"]] * i["quantity"] for i in items
                )
                assert properties["category"] == items[0]["category"]
    lines: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_csv(out / "pos" / "receipt_lines.csv"):
        lines[row["receipt_id"]].append(row)
        expected = prices[row["sku"]] * int(row["quantity"]) if row["line_type"] == "sale" else 0
        assert cents(row["amount"]) == expected
        assert len(row["amount"].split(".")[1]) == 2
    for receipt in read_csv(out / "pos" / "receipts.csv"):
        assert receipt["currency"] == "EUR"
        assert cents(receipt["total"]) == sum(
            cents(x["amount"]) for x in lines[receipt["receipt_id"]]
        )
        assert len({x["line_type"] for x in lines[receipt["receipt_id"]]}) == 1


class Links:
    """Union-find over ``(identifier_type, normalised value)``."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, node: tuple[str, str]) -> tuple[str, str]:
        self.parent.setdefault(node, node)
        while self.parent[node] != node:
            node = self.parent[node]
        return node

    def join(self, *nodes: tuple[str, str]) -> None:
        roots = [self.find(n) for n in nodes if n[1]]
        for root in roots[1:]:
            self.parent[self.find(root)] = self.find(roots[0])


def normalise(kind: str, value: str) -> tuple[str, str]:
    if kind == "email":
        return kind, value.strip().lower()
    if kind == "phone":
        return kind, value.replace(" ", "").replace("-", "")
    return kind, value


def source_links(out: Path) -> Links:
    links = Links()
    for path in sorted((out / "clickstream").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            message = json.loads(line)
            traits = message.get("traits", {})
            links.join(
                ("anonymous_id", message["anonymousId"]),
                ("user_id", message["userId"] or ""),
                normalise("email", traits.get("email", "")),
                normalise("phone", traits.get("phone", "")),
            )
    for row in read_csv(out / "crm" / "contacts.csv"):
        links.join(
            normalise("email", row["email"]),
            normalise("phone", row["phone"]),
            ("loyalty_id", row["loyalty_id"]),
            ("user_id", row["user_id"]),
        )
    for row in read_csv(out / "crm" / "interactions.csv"):
        links.join(
            normalise("email", row["email"]),
            normalise("phone", row["phone"]),
            ("loyalty_id", row["loyalty_id"]),
        )
    for row in read_csv(out / "pos" / "receipts.csv"):
        links.join(("loyalty_id", row["loyalty_id"]), ("payment_token", row["payment_token"]))
    return links


@pytest.mark.parametrize("which", ["small", "full"])
def test_identifiers_of_a_customer_link_up_and_only_to_each_other(
    which: str, request: pytest.FixtureRequest
) -> None:
    out, _ = request.getfixturevalue(which)
    links = source_links(out)
    rows = read_csv(out / "truth" / "identifiers.csv")
    values = [(row["identifier_type"], row["value"]) for row in rows]
    assert len(set(values)) == len(values), "an identifier value belongs to two customers"
    assert all(normalise(*value) == value for value in values)
    # every identifier written to the sources is in the truth, and nothing else
    assert sorted(links.parent) == sorted(values)
    roots: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row, value in zip(rows, values, strict=True):
        roots[row["customer_id"]].add(links.find(value))
    assert all(len(r) == 1 for r in roots.values())
    assert len({next(iter(r)) for r in roots.values()}) == len(roots)
    # anonymous browsers never identify
    anonymous = {
        row["customer_id"]
        for row in read_csv(out / "truth" / "customers.csv")
        if row["kind"] == "anonymous_browser"
    }
    assert {r["identifier_type"] for r in rows if r["customer_id"] in anonymous} == {"anonymous_id"}


def test_two_device_customers_sign_in_on_both(full: tuple[Path, SampleSummary]) -> None:
    out, _ = full
    devices: dict[str, set[str]] = defaultdict(set)
    for row in read_csv(out / "truth" / "identifiers.csv"):
        if row["identifier_type"] == "anonymous_id":
            devices[row["customer_id"]].add(row["value"])
    identified: set[str] = set()
    channel: dict[str, str] = {}
    for path in sorted((out / "clickstream").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            message = json.loads(line)
            channel[message["anonymousId"]] = path.name.split("-")[0]
            if message["type"] == "identify":
                identified.add(message["anonymousId"])
    two = [ids for ids in devices.values() if len(ids) == 2]
    assert len(two) > 20
    assert all({channel[i] for i in ids} == {"web", "app"} and ids <= identified for ids in two)


def test_store_anonymous_customers_use_one_token(full: tuple[Path, SampleSummary]) -> None:
    out, _ = full
    rows = read_csv(out / "truth" / "identifiers.csv")
    kinds = {row["customer_id"]: row["kind"] for row in read_csv(out / "truth" / "customers.csv")}
    store_anonymous = [r for r in rows if kinds[r["customer_id"]] == "store_anonymous"]
    assert {r["identifier_type"] for r in store_anonymous} == {"payment_token"}
    tokens = {r["value"] for r in store_anonymous}
    receipts = read_csv(out / "pos" / "receipts.csv")
    assert all(r["loyalty_id"] == "" for r in receipts if r["payment_token"] in tokens)
    assert len([r for r in receipts if r["payment_token"] in tokens]) > len(tokens)


def test_period_spans_the_dst_change(full: tuple[Path, SampleSummary]) -> None:
    out, _ = full
    stamps = [e.ts.date() for e in parse_events(out).values()]
    assert min(stamps) >= date(2026, 1, 5)
    assert max(stamps) <= date(2026, 1, 5) + timedelta(days=179)
    assert min(stamps) < date(2026, 3, 29) < max(stamps)
