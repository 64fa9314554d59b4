"""Tests for the simulator: determinism, the committed sample, noise, identity groups, rules.

The source files are read here by a strict parser written from ``docs/sample-format.md`` only
(not from the generator), and the ground truth is checked against what that parser finds.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from journey_analytics.errors import ConfigError
from journey_analytics.sample import (
    PATTERNS,
    SampleSummary,
    SimulatorConfig,
    generate_sample,
    load_simulator_config,
)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
TRACKS = {
    "Products Searched": "search",
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Order Completed": "order_placed",
    "Product Reviewed": "review",
}
REFERRER_RULES = {
    "trustpilot.com": "review_site",
    "reviews.example.org": "review_site",
    "reddit.com": "forum",
    "forum.example.net": "forum",
    "amazon.example": "marketplace",
    "zalando.example": "marketplace",
    "instagram.com": "social",
    "facebook.com": "social",
    "tiktok.com": "social",
}
CRM_CHANNELS = {
    "email_open": "email",
    "email_click": "email",
    "call": "phone",
    "chat": "chat",
    "store_visit": "store",
    "try_on": "store",
}
LINE_TOUCHPOINTS = {"sale": "store_purchase", "pickup": "store_pickup", "return": "return"}
ONLINE = {"web", "app", "email", "chat", "social", "marketplace", "review_site", "forum"}
OFFLINE = {"store", "phone"}
NUMERIC_PROPERTIES = ("price", "revenue", "rating", "quantity")


# --- a strict, independent parser of the contract's files ----------------------------------------


@dataclass(frozen=True)
class Event:
    event_id: str
    touchpoint: str
    channel: str
    category: str
    ts: datetime  # clickstream: receivedAt - (sentAt - timestamp); CRM/POS: as written
    fulfilment: str = ""
    order_id: str = ""


@dataclass
class Parsed:
    events: dict[str, Event]
    messages: dict[str, list[tuple[str, dict[str, object]]]]  # messageId -> (file, message)
    csv_rows: dict[tuple[str, str], list[str]]  # (table, row key) -> raw rows
    broken: list[tuple[str, str]]  # (file, raw row) a strict parser cannot read
    identities: list[list[tuple[str, str]]]  # identifiers carried by each valid row


def ms_time(text: object) -> datetime:
    assert isinstance(text, str)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def strict_message(line: str) -> dict[str, object] | None:
    try:
        message = json.loads(line)
        assert isinstance(message, dict)
        assert isinstance(message["messageId"], str) and message["messageId"]
        assert isinstance(message["anonymousId"], str) and message["anonymousId"]
        assert message["userId"] is None or isinstance(message["userId"], str)
        for key in ("timestamp", "sentAt", "receivedAt"):
            ms_time(message[key])
        payload = message["traits"] if message["type"] == "identify" else message["properties"]
        assert isinstance(payload, dict)
        assert all(isinstance(payload.get(k, 0), int | float) for k in NUMERIC_PROPERTIES)
    except (ValueError, KeyError, AssertionError, TypeError):
        return None
    return message


def recovered_time(message: dict[str, object]) -> datetime:
    skew = ms_time(message["sentAt"]) - ms_time(message["timestamp"])
    return ms_time(message["receivedAt"]) - skew


def referral_channel(message: dict[str, object]) -> str | None:
    context = message["context"]
    assert isinstance(context, dict)
    referrer = context.get("page", {}).get("referrer", "")
    host = re.sub(r"^https?://([^/]+).*$", r"\1", referrer) if referrer else ""
    for rule, channel in REFERRER_RULES.items():
        if host == rule or host.endswith("." + rule):
            return channel
    return None


def message_event(source: str, message: dict[str, object]) -> Event:
    properties = message.get("properties")
    props = properties if isinstance(properties, dict) else {}
    if message["type"] == "page":
        channel = referral_channel(message)
        touchpoint = "home_view" if channel is None else f"{channel}_visit"
    elif message["type"] == "identify":
        channel, touchpoint = None, "sign_in"
    else:
        channel, touchpoint = None, TRACKS[str(message["event"])]
    return Event(
        f"{source}:{message['messageId']}",
        touchpoint,
        channel or source,
        str(props.get("category", "")),
        recovered_time(message),
        str(props.get("fulfilment", "")),
        str(props.get("order_id", "")),
    )


def message_identifiers(message: dict[str, object]) -> list[tuple[str, str]]:
    found = [("anonymous_id", str(message["anonymousId"]))]
    if message["userId"]:
        found.append(("user_id", str(message["userId"])))
    traits = message.get("traits")
    if isinstance(traits, dict):
        found.append(("email", traits["email"].strip().lower()))
        if "phone" in traits:
            found.append(("phone", "+" + re.sub(r"\D", "", traits["phone"])))
    return found


def parse_clickstream(root: Path, parsed: Parsed) -> None:
    for path in sorted((root / "clickstream").glob("*.jsonl")):
        source = path.name.split("-")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            message = strict_message(line)
            if message is None:
                parsed.broken.append((path.name, line))
                continue
            parsed.messages[str(message["messageId"])].append((path.name, message))
            event = message_event(source, message)
            parsed.events.setdefault(event.event_id, event)
            parsed.identities.append(message_identifiers(message))


def csv_table(path: Path) -> tuple[list[str], list[tuple[str, list[str]]]]:
    text = path.read_text(encoding="utf-8")
    raw_lines = text.splitlines()
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], list(zip(raw_lines[1:], rows[1:], strict=True))


CSV_DATE = {"interactions": "%Y-%m-%dT%H:%M:%SZ", "receipts": "%Y-%m-%d %H:%M:%S"}


def strict_row(table: str, header: list[str], fields: list[str]) -> dict[str, str] | None:
    if len(fields) != len(header) or not fields[0]:
        return None
    row = dict(zip(header, fields, strict=True))
    try:
        if table in CSV_DATE:
            column = "occurred_at" if table == "interactions" else "receipt_ts"
            datetime.strptime(row[column], CSV_DATE[table])
        if table == "receipts":
            float(row["total"])
        if table == "receipt_lines":
            int(row["quantity"]), float(row["amount"]), int(row["line_no"])
        if table == "contacts":
            datetime.strptime(row["created_at"], "%Y-%m-%dT%H:%M:%SZ")
            assert row["consent_email"] in ("true", "false")
    except (ValueError, AssertionError):
        return None
    return row


def read_table(root: Path, pattern: str, table: str, parsed: Parsed) -> list[dict[str, str]]:
    rows = []
    for path in sorted(root.glob(pattern)):
        header, lines = csv_table(path)
        for raw, fields in lines:
            row = strict_row(table, header, fields)
            if row is None:
                parsed.broken.append((path.name, raw))
                continue
            key = ":".join(fields[:2]) if table == "receipt_lines" else fields[0]
            parsed.csv_rows[(table, key)].append(raw)
            rows.append({**row, "file": path.name})
    return rows


def identifiers_of(row: dict[str, str], columns: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for column, kind in columns.items():
        value = row.get(column, "")
        if value:
            if kind == "email":
                value = value.strip().lower()
            if kind == "phone":
                value = "+" + re.sub(r"\D", "", value)
            found.append((kind, value))
    return found


def parse_all(root: Path) -> Parsed:
    parsed = Parsed({}, defaultdict(list), defaultdict(list), [], [])
    parse_clickstream(root, parsed)
    zones = {row["store_id"]: ZoneInfo(row["timezone"]) for row in read_csv(root / "stores.csv")}
    for row in read_table(root, "crm/contacts.csv", "contacts", parsed):
        columns = {"email": "email", "phone": "phone", "loyalty_id": "loyalty_id"}
        parsed.identities.append(identifiers_of(row, {**columns, "user_id": "user_id"}))
    for row in read_table(root, "crm/interactions-*.csv", "interactions", parsed):
        ts = datetime.strptime(row["occurred_at"], CSV_DATE["interactions"]).replace(tzinfo=UTC)
        event = Event(
            f"crm:{row['interaction_id']}", row["type"], row["channel"], row["category"], ts
        )
        parsed.events.setdefault(event.event_id, event)
        columns = {"email": "email", "phone": "phone", "loyalty_id": "loyalty_id"}
        parsed.identities.append(identifiers_of(row, columns))
    receipts = {}
    for row in read_table(root, "pos/receipts-*.csv", "receipts", parsed):
        receipts[row["receipt_id"]] = row
        columns = {"loyalty_id": "loyalty_id", "payment_token": "payment_token"}
        parsed.identities.append(identifiers_of(row, columns))
    lines = read_table(root, "pos/receipt_lines-*.csv", "receipt_lines", parsed)
    for line in sorted(lines, key=lambda r: int(r["line_no"])):
        receipt = receipts.get(line["receipt_id"])
        if receipt is None:
            continue
        local = datetime.strptime(receipt["receipt_ts"], CSV_DATE["receipts"])
        ts = local.replace(tzinfo=zones[receipt["store_id"]]).astimezone(UTC)
        event = Event(
            f"pos:{line['receipt_id']}:{line['line_type']}",
            LINE_TOUCHPOINTS[line["line_type"]],
            "store",
            line["category"],
            ts,
            order_id=line["order_id"] or line["receipt_id"],
        )
        parsed.events.setdefault(event.event_id, event)
    return parsed


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    """The committed sample's arguments: 500 customers, seed 42, default config (noise on)."""
    out = tmp_path_factory.mktemp("full")
    return out, generate_sample(out, customers=500, seed=42)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    """The same customers without noise: the same behaviour, every row valid and once."""
    out = tmp_path_factory.mktemp("quiet")
    config = load_simulator_config().without_noise()
    return out, generate_sample(out, customers=500, seed=42, config=config)


@pytest.fixture(scope="module")
def parsed_full(full: tuple[Path, SampleSummary]) -> Parsed:
    return parse_all(full[0])


def truth_events(out: Path) -> dict[str, dict[str, str]]:
    return {row["event_id"]: row for row in read_csv(out / "truth" / "events.csv")}


# --- determinism and files -----------------------------------------------------------------------


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    first = generate_sample(tmp_path / "a", customers=40, seed=7)
    second = generate_sample(tmp_path / "b", customers=40, seed=7)
    assert first == second
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_workers_write_the_same_bytes_as_one_process(tmp_path: Path) -> None:
    # 3 processes of 40, 40 and 41 customers, joined in customer order; noise on, so late and
    # duplicate rows cross weekly files, and store-tablet rosters span the parts
    one = generate_sample(tmp_path / "one", customers=121, seed=7)
    three = generate_sample(tmp_path / "three", customers=121, seed=7, workers=3)
    assert three == one
    assert file_bytes(tmp_path / "three") == file_bytes(tmp_path / "one")
    assert not list((tmp_path / "three").glob(".part-*"))  # the parts' folders are gone


def test_more_workers_than_customers_is_one_customer_each(tmp_path: Path) -> None:
    one = generate_sample(tmp_path / "one", customers=2, seed=5)
    many = generate_sample(tmp_path / "many", customers=2, seed=5, workers=4)
    assert many == one
    assert file_bytes(tmp_path / "many") == file_bytes(tmp_path / "one")


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate_sample(tmp_path / "a", customers=40, seed=7)
    generate_sample(tmp_path / "b", customers=40, seed=8)
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    # stores and the product catalogue are fixed reference data; everything else changes
    assert a["stores.csv"] == b["stores.csv"] and a["products.csv"] == b["products.csv"]
    for name in ("crm/contacts.csv", "truth/events.csv", "truth/journeys.csv"):
        assert a[name] != b[name]


def test_a_customer_does_not_depend_on_how_many_follow(tmp_path: Path) -> None:
    # per-customer random streams: the first 30 customers are the same in a 30 and a 60 run
    # (store-tablet rosters are drawn per block of customers, so the last block's depends on
    # the total: tablets are off here)
    base = load_simulator_config()
    config = base.model_copy(
        update={"shared_devices": base.shared_devices.model_copy(update={"store_tablet": 0})}
    )
    generate_sample(tmp_path / "a", customers=30, seed=3, config=config)
    generate_sample(tmp_path / "b", customers=60, seed=3, config=config)
    small = (tmp_path / "a" / "truth" / "events.csv").read_text().splitlines()
    large = (tmp_path / "b" / "truth" / "events.csv").read_text().splitlines()
    assert large[: len(small)] == small


def test_rerun_replaces_owned_files_and_keeps_others(tmp_path: Path) -> None:
    (tmp_path / "clickstream").mkdir()
    (tmp_path / "clickstream" / "web-2025-12.jsonl").write_text("stale\n")
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "interactions.csv").write_text("stale\n")
    (tmp_path / "README.md").write_text("keep me\n")
    summary = generate_sample(tmp_path, customers=40, seed=7)
    assert not (tmp_path / "clickstream" / "web-2025-12.jsonl").exists()
    assert not (tmp_path / "crm" / "interactions.csv").exists()
    assert (tmp_path / "README.md").read_text() == "keep me\n"
    assert sorted(file_bytes(tmp_path)) == sorted([*summary.files, "truth/summary.json"])


def test_too_few_customers_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="customers >= 1"):
        generate_sample(tmp_path, customers=0, seed=1)
    with pytest.raises(ValueError, match="workers >= 1"):
        generate_sample(tmp_path, customers=5, seed=1, workers=0)


def test_committed_sample_matches_the_generator(full: tuple[Path, SampleSummary]) -> None:
    out, _ = full
    committed, fresh = file_bytes(SAMPLE_DIR), file_bytes(out)
    assert sorted(committed) == sorted(fresh)
    assert [name for name in fresh if committed[name] != fresh[name]] == []
    assert (SAMPLE_DIR / "README.md").is_file()


def test_committed_sample_is_small() -> None:
    assert sum(len(b) for b in file_bytes(SAMPLE_DIR).values()) < 4_000_000


def test_weekly_files_are_named_after_a_monday(full: tuple[Path, SampleSummary]) -> None:
    _, summary = full
    weekly = [name for name in summary.files if re.search(r"-\d{4}-\d{2}-\d{2}\.", name)]
    assert len(weekly) > 50
    days = {date.fromisoformat(re.findall(r"\d{4}-\d{2}-\d{2}", n)[0]) for n in weekly}
    assert {d.weekday() for d in days} == {0}


def test_rows_written_are_the_data_rows_of_each_file(full: tuple[Path, SampleSummary]) -> None:
    out, summary = full
    document = json.loads((out / "truth" / "summary.json").read_text())
    assert document["rows_written"] == summary.files
    assert document["config"] == load_simulator_config().model_dump(mode="json")
    for name, rows in summary.files.items():
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        assert rows == len(lines) - (0 if name.endswith(".jsonl") else 1), name


# --- source rows and truth -----------------------------------------------------------------------


def test_every_valid_event_is_in_truth_once_and_malformed_ones_are_unreadable(
    full: tuple[Path, SampleSummary], parsed_full: Parsed
) -> None:
    out, summary = full
    truth = truth_events(out)
    valid = {i for i, row in truth.items() if row["status"] == "valid"}
    malformed = {i for i, row in truth.items() if row["status"] == "malformed"}
    assert set(parsed_full.events) == valid
    assert len(malformed) == summary.noise["malformed_events"] > 0
    assert len(parsed_full.broken) == summary.noise["malformed_rows"]
    assert summary.events == len(truth)
    # a broken row whose id can still be read belongs to a malformed event (POS: all its rows)
    for name, raw in parsed_full.broken:
        found = re.search(r'"messageId":"([^"]+)"', raw) if name.endswith(".jsonl") else None
        source_id = (
            found.group(1) if found else ("" if name.endswith(".jsonl") else raw.split(",")[0])
        )
        if not source_id or source_id.startswith("C-"):
            continue
        prefix = {"w": "web", "a": "app", "I": "crm", "R": "pos"}[source_id[0]]
        assert any(m.startswith(f"{prefix}:{source_id}") for m in malformed), raw


def test_duplicates_repeat_the_id_and_the_content(parsed_full: Parsed) -> None:
    repeated = 0
    for copies in parsed_full.messages.values():
        envelope = {"sentAt", "receivedAt"}
        bodies = [{k: v for k, v in m.items() if k not in envelope} for _, m in copies]
        assert all(body == bodies[0] for body in bodies)
        repeated += len(copies) - 1
    for rows in parsed_full.csv_rows.values():
        assert len(set(rows)) == 1
        repeated += len(rows) - 1
    assert repeated > 0


def test_recovered_time_is_the_true_time(
    full: tuple[Path, SampleSummary], parsed_full: Parsed
) -> None:
    truth = truth_events(full[0])
    skewed = 0
    for copies in parsed_full.messages.values():
        for name, message in copies:
            event_id = f"{name.split('-')[0]}:{message['messageId']}"
            true_time = ms_time(truth[event_id]["occurred_at"])
            error = recovered_time(message) - true_time
            assert timedelta(0) <= error <= timedelta(seconds=2), event_id
            skewed += abs(ms_time(message["timestamp"]) - true_time) > timedelta(minutes=1)
    assert skewed > 0


def test_late_events_arrive_in_a_later_weekly_file(
    full: tuple[Path, SampleSummary], parsed_full: Parsed
) -> None:
    truth = truth_events(full[0])
    late = 0
    for copies in parsed_full.messages.values():
        name, message = copies[0]
        delay = ms_time(message["sentAt"]) - ms_time(message["timestamp"])
        if delay < timedelta(hours=1):
            continue
        late += 1
        true_day = ms_time(truth[f"{name.split('-')[0]}:{message['messageId']}"]["occurred_at"])
        true_monday = true_day.date() - timedelta(days=true_day.weekday())
        assert date.fromisoformat(name.split("-", 1)[1][:10]) > true_monday
    assert late > 0


def test_pos_lines_sometimes_arrive_a_week_after_their_receipt(
    full: tuple[Path, SampleSummary],
) -> None:
    def weeks(pattern: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for path in sorted((full[0] / "pos").glob(pattern)):
            for row in read_csv(path):
                found[row["receipt_id"]].add(path.name.split("-", 1)[1][:10])
        return found

    receipts, lines = weeks("receipts-*.csv"), weeks("receipt_lines-*.csv")
    later = sum(min(lines[r]) > max(receipts[r]) for r in lines if r and r in receipts)
    # not exact: a malformed receipt's lines lose their id, a re-exported duplicate moves later
    assert 0 < later <= full[1].noise["out_of_order_receipts"]
    assert all(min(lines[r]) >= min(receipts[r]) for r in lines if r and r in receipts)


def test_noise_off_writes_every_row_once_and_valid(quiet: tuple[Path, SampleSummary]) -> None:
    out, summary = quiet
    parsed = parse_all(out)
    assert parsed.broken == []
    assert all(len(copies) == 1 for copies in parsed.messages.values())
    assert all(len(rows) == 1 for rows in parsed.csv_rows.values())
    for copies in parsed.messages.values():
        _, message = copies[0]
        assert ms_time(message["sentAt"]) - ms_time(message["timestamp"]) < timedelta(seconds=3)
    assert {row["status"] for row in truth_events(out).values()} == {"valid"}
    noise = {k: v for k, v in summary.noise.items() if v}
    assert noise == {}


def test_noise_does_not_change_the_behaviour(
    full: tuple[Path, SampleSummary], quiet: tuple[Path, SampleSummary]
) -> None:
    assert (full[0] / "truth" / "journeys.csv").read_bytes() == (
        quiet[0] / "truth" / "journeys.csv"
    ).read_bytes()


# --- what the committed sample contains ----------------------------------------------------------


def test_full_sample_has_every_kind_of_journey_noise_and_referral(
    full: tuple[Path, SampleSummary], parsed_full: Parsed
) -> None:
    out, summary = full
    journeys = read_csv(out / "truth" / "journeys.csv")
    assert {j["kind"] for j in journeys} == {
        "ropo", "click_and_collect", "try_and_buy", "online_only", "offline_only",
        "dropoff_cart", "dropoff_browse", "dropoff_store_visit", "dropoff_call",
    }  # fmt: skip
    assert {j["dropoff_touchpoint"] for j in journeys} == {
        "", "add_to_cart", "product_view", "store_visit", "call",
    }  # fmt: skip
    assert {j["variant"] for j in journeys} == {"", "collected", "no_show"}
    assert any(j["patterns"] == "click_and_collect;try_and_buy" for j in journeys)
    assert all(summary.patterns[name] > 0 for name in PATTERNS)
    touchpoints = Counter(e.touchpoint for e in parsed_full.events.values())
    for touchpoint in (
        "review_site_visit", "forum_visit", "marketplace_visit", "social_visit", "chat", "call",
        "email_open", "email_click", "return", "store_pickup", "review", "try_on",
    ):  # fmt: skip
        assert touchpoints[touchpoint] > 0, touchpoint
    kinds = ("bad_json", "bad_csv", "bad_date", "wrong_type", "missing_id")
    for key in ("duplicate_rows", "late_events", "out_of_order_receipts", "skewed_devices"):
        assert summary.noise[key] > 0, key
    assert all(summary.noise[f"malformed_rows.{kind}"] > 0 for kind in kinds)
    broken_files = {name.split("-")[0] for name, _ in parsed_full.broken}
    assert {"web", "app"} & broken_files and {"interactions", "receipts"} & broken_files
    assert set(summary.customer_kinds) == {
        "omnichannel", "online", "store_loyalty", "store_anonymous", "anonymous_browser",
    }  # fmt: skip


def test_returns_are_negative_and_name_the_online_order(parsed_full: Parsed) -> None:
    orders = {e.order_id for e in parsed_full.events.values() if e.touchpoint == "order_placed"}
    returns = [e for e in parsed_full.events.values() if e.touchpoint == "return"]
    assert returns and all(e.order_id in orders or e.order_id.startswith("O-") for e in returns)


def test_shared_devices_are_seen_with_several_user_ids(
    full: tuple[Path, SampleSummary], parsed_full: Parsed
) -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for copies in parsed_full.messages.values():
        for _, message in copies:
            if message["userId"]:
                users[str(message["anonymousId"])].add(str(message["userId"]))
    shared = {anon for anon, ids in users.items() if len(ids) > 1}
    assert any(a.startswith("a-tablet-") for a in shared)
    assert any(a.startswith("a-h") for a in shared)  # family laptops
    assert full[1].shared_devices["store_tablet_customers"] >= 2
    identifiers = read_csv(full[0] / "truth" / "identifiers.csv")
    for anon in shared:
        rows = [r for r in identifiers if r["value"] == anon]
        assert len(rows) == len(users[anon]) and {r["identity_group"] for r in rows} == {
            f"G-{anon}"
        }


# --- identity groups -----------------------------------------------------------------------------


def reference_groups(parsed: Parsed) -> dict[tuple[str, str], tuple[str, str]]:
    """Union-find over the valid rows' identifiers, shared anonymous ids linking nothing."""
    users: dict[str, set[str]] = defaultdict(set)
    for row in parsed.identities:
        ids = dict(row)
        if "anonymous_id" in ids and "user_id" in ids:
            users[ids["anonymous_id"]].add(ids["user_id"])
    shared = {anon for anon, ids in users.items() if len(ids) > 1}
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while parent[node] != node:
            node = parent[node]
        return node

    for row in parsed.identities:
        nodes = [n for n in row if not (n[0] == "anonymous_id" and n[1] in shared)]
        for node in nodes[1:]:
            parent[find(node)] = find(nodes[0])
    return {node: find(node) for node in list(parent)}


def test_identity_groups_are_the_components_of_the_valid_rows(
    full: tuple[Path, SampleSummary], parsed_full: Parsed
) -> None:
    reference = reference_groups(parsed_full)
    rows = read_csv(full[0] / "truth" / "identifiers.csv")
    truth = {(r["identifier_type"], r["value"]): r["identity_group"] for r in rows}
    # same partition: identifiers share a truth group iff they share a reference component
    by_truth: dict[str, set[tuple[str, str]]] = defaultdict(set)
    by_reference: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for node, root in reference.items():
        by_truth[truth[node]].add(node)
        by_reference[root].add(node)
    assert sorted(map(sorted, by_truth.values())) == sorted(map(sorted, by_reference.values()))


def test_identity_groups_of_a_tiny_hand_checked_configuration(tmp_path: Path) -> None:
    # Four customers, no noise, one device each that always signs in: customers 1 and 2 are
    # omnichannel and share a family laptop; 3 and 4 only buy in store without a card.
    base = load_simulator_config().without_noise()
    config = base.model_copy(
        update={
            "customers": base.customers.model_copy(
                update={
                    "online": 0,
                    "store_loyalty": 0,
                    "anonymous_browser": 0,
                    "omnichannel": 0,
                    "store_anonymous": 1,
                    "second_device": 0,
                }
            ),
            "shared_devices": base.shared_devices.model_copy(
                update={"family_laptop": 0, "store_tablet": 0}
            ),
        }
    )
    generate_sample(tmp_path, customers=4, seed=5, config=config)
    groups = {
        (r["customer_id"], r["identifier_type"]): r["identity_group"]
        for r in read_csv(tmp_path / "truth" / "identifiers.csv")
    }
    # customer 1 is always omnichannel (it anchors the data's end): one component of all its
    # identifiers, linked through sign-ins, the contact row and its receipts
    assert {g for (c, _), g in groups.items() if c == "K0000001"} == {"G-0000001-01"}
    # customers without a card: the payment token alone, its own group
    for number in (2, 3, 4):
        assert groups[(f"K000000{number}", "payment_token")] == f"G-000000{number}-01"
    events = read_csv(tmp_path / "truth" / "events.csv")
    assert {e["identity_group"] for e in events if e["customer_id"] == "K0000003"} == {
        "G-0000003-01"
    }


def test_events_on_a_shared_laptop_without_a_user_id_are_their_own_group(tmp_path: Path) -> None:
    base = load_simulator_config().without_noise()
    config = base.model_copy(
        update={
            "customers": base.customers.model_copy(
                update={
                    "online": 1,
                    "store_loyalty": 0,
                    "anonymous_browser": 0,
                    "omnichannel": 0,
                    "store_anonymous": 0,
                }
            ),
            "shared_devices": base.shared_devices.model_copy(update={"family_laptop": 1.0}),
        }
    )
    generate_sample(tmp_path, customers=6, seed=2, config=config)
    parsed = parse_all(tmp_path)
    truth = truth_events(tmp_path)
    laptop = [
        (name, m) for copies in parsed.messages.values() for name, m in copies
        if str(m["anonymousId"]).startswith("a-h")
    ]  # fmt: skip
    assert laptop
    for name, message in laptop:
        row = truth[f"{name.split('-')[0]}:{message['messageId']}"]
        if message["userId"] is None:
            assert row["identity_group"] == f"G-{name.split('-')[0]}:{message['messageId']}"
        else:
            assert row["identity_group"].startswith(f"G-{row['customer_id'][1:]}-")


# --- the journey rules, on true times ------------------------------------------------------------


def journeys_with_events(out: Path, parsed: Parsed) -> dict[str, list[Event]]:
    by_journey: dict[str, list[Event]] = defaultdict(list)
    for row in read_csv(out / "truth" / "events.csv"):
        event = parsed.events[row["event_id"]]
        true_event = Event(**{**event.__dict__, "ts": ms_time(row["occurred_at"])})
        by_journey[row["journey_id"]].append(true_event)
    for events in by_journey.values():
        events.sort(key=lambda e: e.ts)
    return by_journey


def expected_patterns(events: list[Event]) -> tuple[str, str]:
    """Patterns and variant by the contract's rules, written independently of the generator."""
    at = next(
        (i for i, e in enumerate(events) if e.touchpoint in ("order_placed", "store_purchase")),
        None,
    )
    if at is None:
        return "", ""
    head, conversion = events[: at + 1], events[at]
    found, variant = set(), ""
    if conversion.fulfilment == "click_and_collect":
        found.add("click_and_collect")
        picked = any(
            e.touchpoint == "store_pickup" and e.order_id == conversion.order_id for e in events
        )
        variant = "collected" if picked else "no_show"
    for e in head[:-1]:
        near = conversion.ts - e.ts <= timedelta(days=30) and e.category == conversion.category
        if near and conversion.touchpoint == "store_purchase" and e.channel in ("web", "app"):
            found |= (
                {"ropo"} if e.touchpoint in ("product_view", "search", "add_to_cart") else set()
            )
        if near and conversion.touchpoint == "order_placed" and e.touchpoint == "try_on":
            found.add("try_and_buy")
    channels = {e.channel for e in head}
    if channels <= ONLINE and "click_and_collect" not in found:
        found.add("online_only")
    if channels <= OFFLINE:
        found.add("offline_only")
    return ";".join(sorted(found)), variant


def test_journey_rules_hold_on_true_times(quiet: tuple[Path, SampleSummary]) -> None:
    out, _ = quiet
    by_journey = journeys_with_events(out, parse_all(out))
    journeys = read_csv(out / "truth" / "journeys.csv")
    data_end = max(e.ts for events in by_journey.values() for e in events)
    timelines: dict[str, list[dict[str, str]]] = defaultdict(list)
    for journey in journeys:
        events = by_journey[journey["journey_id"]]
        assert int(journey["n_events"]) == len(events)
        assert expected_patterns(events) == (journey["patterns"], journey["variant"]), journey
        assert all(b.ts - a.ts <= timedelta(days=12) for a, b in pairwise(events))
        if journey["converted"] == "false":
            assert events[-1].touchpoint == journey["dropoff_touchpoint"]
            assert data_end - events[-1].ts >= timedelta(days=35)
        timelines[journey["customer_id"]].append(journey)
    for customer_journeys in timelines.values():
        ordered = sorted(customer_journeys, key=lambda j: by_journey[j["journey_id"]][0].ts)
        for before, after in pairwise(ordered):
            quiet_days = 7 if before["converted"] == "true" else 35
            gap = by_journey[after["journey_id"]][0].ts - by_journey[before["journey_id"]][-1].ts
            assert gap >= timedelta(days=quiet_days)
        times = sorted(e.ts for j in customer_journeys for e in by_journey[j["journey_id"]])
        assert all(b - a >= timedelta(seconds=20) for a, b in pairwise(times))


# --- config --------------------------------------------------------------------------------------


def test_default_config_is_the_shipped_file() -> None:
    config = load_simulator_config()
    assert config == SimulatorConfig.model_validate(config.model_dump())
    assert config.period.start == date(2026, 1, 5) and config.period.days == 180
    assert config.knob("duplicates") == 0.02
    quiet = config.without_noise()
    assert not quiet.noise and all(not knob.enabled for _, knob in quiet.noise_knobs)
    assert quiet.knob("duplicates") == 0.0


def test_a_bad_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        "[noise_knobs]\nduplicates = {enabled = true, rate = 2.0}\n"
        "[journeys]\nropo = 'x'\nfoo = 1\n"
    )
    with pytest.raises(ConfigError) as error:
        load_simulator_config(path)
    message = str(error.value)
    assert str(path) in message
    for key in ("noise_knobs.duplicates.rate", "journeys.ropo", "journeys.foo"):
        assert key in message
