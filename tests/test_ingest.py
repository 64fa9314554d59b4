from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from journey_analytics.errors import SourceError
from journey_analytics.ingest import (
    drop_duplicates,
    events_from_pos,
    events_from_segment,
    local_to_utc,
    parse_crm_interactions,
    parse_pos_lines,
    parse_pos_receipts,
    parse_segment,
)
from journey_analytics.taxonomy import load_referrers, load_taxonomy

from ._events import at


def _as_loaded(rows: pl.DataFrame) -> pl.DataFrame:
    """Parsed rows with the columns a load adds (batch, source, load time)."""
    return rows.with_columns(
        batch_id=pl.lit("b"), source=pl.lit("x"), ingested_at=pl.lit(at("2026-04-01 00:00"))
    )


KNOWN = frozenset({"Product Viewed", "identify", "Order Completed", "page:Home"})


def test_parse_segment_accepts_good_lines_and_rejects_each_bad_one_with_a_reason() -> None:
    data = b"\n".join(
        [
            b'{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
            b'"timestamp":"2026-03-01T10:00:00.000Z","properties":{"product_id":"P1","category":"shoes"}}',
            b'{"type":"identify","messageId":"m2","anonymousId":"a1","userId":"u1",'
            b'"timestamp":"2026-03-01T11:00:00+01:00","traits":{"email":" Anna@X.com "}}',
            b"{not json",
            b'{"type":"track","event":"Wishlist Added","messageId":"m3","anonymousId":"a1",'
            b'"timestamp":"2026-03-01T10:00:00Z"}',
            b'{"type":"track","event":"Product Viewed","anonymousId":"a1",'
            b'"timestamp":"2026-03-01T10:00:00Z"}',
            b'{"type":"track","event":"Product Viewed","messageId":"m4","anonymousId":"a1",'
            b'"timestamp":"yesterday"}',
            b'{"type":"track","event":"Product Viewed","messageId":"m5",'
            b'"timestamp":"2026-03-01T10:00:00Z"}',
            b"\xff\xfe not utf-8",
            b"",  # blank lines are not rows
        ]
    )
    parsed = parse_segment(data, file="web.jsonl", known_events=KNOWN, hash_key="k")
    assert parsed.rows.select(
        "line_no",
        "record_key",
        "event_name",
        "anonymous_id",
        "user_id",
        "occurred_at",
        "product_id",
    ).to_dicts() == [
        {
            "line_no": 1,
            "record_key": "m1",
            "event_name": "Product Viewed",
            "anonymous_id": "a1",
            "user_id": None,
            "occurred_at": at("2026-03-01 10:00"),
            "product_id": "P1",
        },
        # +01:00 offset normalised to UTC
        {
            "line_no": 2,
            "record_key": "m2",
            "event_name": "identify",
            "anonymous_id": "a1",
            "user_id": "u1",
            "occurred_at": at("2026-03-01 10:00"),
            "product_id": None,
        },
    ]
    assert parsed.rejects.select("line_no", "reason").to_dicts() == [
        {"line_no": 3, "reason": "invalid_json"},
        {"line_no": 4, "reason": "unmapped_event"},
        {"line_no": 5, "reason": "missing_id"},
        {"line_no": 6, "reason": "invalid_timestamp"},
        {"line_no": 7, "reason": "missing_identifier"},
        {"line_no": 8, "reason": "invalid_utf8"},
    ]
    assert parsed.rows_read == 8
    # the e-mail is normalised then hashed; the raw value is gone
    assert "email" not in parsed.rows.columns
    assert (
        parsed.rows.get_column("email_hash").to_list()[1]
        == parse_segment(
            b'{"type":"identify","messageId":"x","userId":"u","timestamp":"2026-01-01T00:00:00Z",'
            b'"traits":{"email":"anna@x.com"}}',
            file="f",
            known_events=KNOWN,
            hash_key="k",
        )
        .rows.get_column("email_hash")
        .item()
    )


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        # Clocks go forward: 02:30 does not exist; read with the offset before the change.
        ("Europe/Rome", "2026-03-29 02:30", "2026-03-29 01:30"),
        ("Europe/Helsinki", "2026-03-29 03:30", "2026-03-29 01:30"),
        ("America/New_York", "2026-03-08 02:30", "2026-03-08 07:30"),
        # Clocks go back: 02:30 happens twice; the first occurrence (summer time) is taken.
        ("Europe/Rome", "2026-10-25 02:30", "2026-10-25 00:30"),
        ("Europe/Lisbon", "2026-10-25 01:30", "2026-10-25 00:30"),
        ("America/New_York", "2026-11-01 01:30", "2026-11-01 05:30"),
        # Ordinary times.
        ("Europe/Rome", "2026-07-01 12:00", "2026-07-01 10:00"),
        ("Europe/Lisbon", "2026-01-15 12:00", "2026-01-15 12:00"),
    ],
)
def test_local_to_utc_at_daylight_saving_changes(zone: str, local: str, utc: str) -> None:
    frame = pl.DataFrame({"local": [datetime.fromisoformat(local)]})
    assert frame.select(local_to_utc(pl.col("local"), zone)).item() == at(utc)


def test_a_lone_surrogate_escape_is_quarantined_as_invalid_json() -> None:
    # "\ud800" is JSON grammar but half of a UTF-16 pair: no text column can hold it, so the
    # line is rejected (it used to stop the whole file); an escaped pair whole is one emoji
    line = (
        b'{"type":"track","event":"Product Viewed","messageId":"%s","anonymousId":"a1",'
        b'"timestamp":"2026-03-01T10:00:00.000Z","properties":{"product_id":"P1"}}'
    )
    data = b"\n".join([line % b"m1", line % b"m\\ud800", line % b"m\\ud83d\\ude00"])
    parsed = parse_segment(data, file="web.jsonl", known_events=KNOWN, hash_key="k")
    assert parsed.rows.select("line_no", "record_key").rows() == [(1, "m1"), (3, "m\U0001f600")]
    assert parsed.rejects.select("line_no", "reason").rows() == [(2, "invalid_json")]


def test_pos_receipts_and_lines_become_one_event_per_receipt_and_line_type() -> None:
    receipts = parse_pos_receipts(
        b"receipt_id,store_id,receipt_ts,loyalty_id,payment_token,currency,total\n"
        b"R1,S01,2026-03-29 11:00:00,L1,tok_1,EUR,30.00\n"
        b"R2,S03,2026-03-29 11:00:00,,tok_2,EUR,0\n"
        b"R3,S99,2026-03-29 11:00:00,,tok_3,EUR,0\n",
        file="receipts.csv",
        store_zones={"S01": "Europe/Rome", "S03": "Europe/Lisbon"},
        hash_key="k",
    )
    assert receipts.rejects.select("line_no", "reason").to_dicts() == [
        {"line_no": 4, "reason": "unknown_store"}
    ]
    lines = parse_pos_lines(
        b"receipt_id,line_no,sku,category,quantity,amount,line_type,order_id\n"
        b"R1,2,P2,bags,1,10.00,sale,\n"
        b"R1,1,P1,shoes,1,20.00,sale,\n"
        b"R2,1,P3,shoes,1,0,pickup,O-1\n"
        b"R2,2,P3,shoes,1,0,gift,\n",
        file="lines.csv",
        known_events=frozenset({"sale", "pickup", "return"}),
    )
    assert lines.rejects.select("line_no", "reason").to_dicts() == [
        {"line_no": 5, "reason": "unmapped_event"}
    ]
    out = events_from_pos(
        receipts.rows.pipe(_as_loaded),
        lines.rows.pipe(_as_loaded),
        source="pos",
        taxonomy=load_taxonomy(),
    )
    assert out.sort("event_id").select(
        "event_id",
        "touchpoint",
        "is_conversion",
        "occurred_at",
        "product_id",
        "category",
        "revenue",
        "order_id",
        "fulfilment",
        "loyalty_id",
    ).to_dicts() == [
        # Rome is UTC+2 after 29 March; the lowest line number gives product and category.
        {
            "event_id": "pos:R1:sale",
            "touchpoint": "store_purchase",
            "is_conversion": True,
            "occurred_at": at("2026-03-29 09:00"),
            "product_id": "P1",
            "category": "shoes",
            "revenue": Decimal("30.00"),
            "order_id": "R1",
            "fulfilment": "in_store",
            "loyalty_id": "L1",
        },
        # Lisbon is UTC+1 after 29 March; a pickup carries the online order it collects.
        {
            "event_id": "pos:R2:pickup",
            "touchpoint": "store_pickup",
            "is_conversion": False,
            "occurred_at": at("2026-03-29 10:00"),
            "product_id": "P3",
            "category": "shoes",
            "revenue": Decimal("0.00"),
            "order_id": "O-1",
            "fulfilment": None,
            "loyalty_id": None,
        },
    ]


def test_csv_without_required_columns_names_file_line_and_columns() -> None:
    with pytest.raises(
        SourceError,
        match=r"i\.csv, line 1: expected the columns .* missing "
        r"occurred_at, type",
    ):
        parse_crm_interactions(
            b"interaction_id,channel\nI1,email\n",
            file="i.csv",
            known_events=frozenset(),
            hash_key="k",
        )


def test_drop_duplicates_within_file_and_against_earlier_loads() -> None:
    rows = pl.DataFrame({"record_key": ["a", "b", "a", "c"], "line_no": [1, 2, 3, 4]})
    fresh, duplicates = drop_duplicates(rows, existing_keys=pl.Series(["c"]))
    assert fresh.to_dicts() == [
        {"record_key": "a", "line_no": 1},
        {"record_key": "b", "line_no": 2},
    ]
    assert duplicates == 2


def test_blocked_identifiers_count_as_missing() -> None:
    parsed = parse_segment(
        b'{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"anonymous",'
        b'"timestamp":"2026-03-01T10:00:00Z"}\n'
        b'{"type":"track","event":"Product Viewed","messageId":"m2","anonymousId":"Unknown",'
        b'"userId":"u1","timestamp":"2026-03-01T10:00:00Z"}',
        file="web.jsonl",
        known_events=KNOWN,
        hash_key="k",
    )
    assert parsed.rejects.select("line_no", "reason").rows() == [(1, "missing_identifier")]
    # the blocked cookie is cleared, the user id stays
    assert parsed.rows.select("anonymous_id", "user_id").rows() == [(None, "u1")]


def test_csv_quoted_newlines_bom_and_line_numbers() -> None:
    data = (
        "\ufeffinteraction_id,occurred_at,type,channel,email,phone,loyalty_id,store_id,"
        "product_id,category,campaign\n"
        'I1,2026-03-01T10:00:00Z,email_click,email,a@x.com,,,,,,"spring\nsale"\n'
        "\n"
        "I2,2026-03-01T11:00:00Z,email_click,email,b@x.com,,,,,,\n"
        "I3,2026-03-01T11:00:00Z,email_click\n"
    ).encode()
    parsed = parse_crm_interactions(
        data, file="i.csv", known_events=frozenset({"email_click"}), hash_key="k"
    )
    # the quoted field spans lines 2-3; I2 starts on line 5 after a blank line
    assert parsed.rows.select("line_no", "record_key", "campaign").rows() == [
        (2, "I1", "spring\nsale"),
        (5, "I2", None),
    ]
    assert parsed.rejects.select("line_no", "reason", "raw_text").rows() == [
        (6, "wrong_field_count", "I3,2026-03-01T11:00:00Z,email_click")
    ]


def test_store_times_must_be_local_wall_times_and_lines_need_a_number() -> None:
    receipts = parse_pos_receipts(
        b"receipt_id,store_id,receipt_ts,loyalty_id,payment_token,currency,total\n"
        b"R1,S01,2026-03-01T10:00:00Z,L1,,EUR,1\n"
        b"R2,S01,2026-03-01,L1,,EUR,1\n"
        b"R3,S01,2026-03-01 10:00:00,L1,,EUR,1\n",
        file="r.csv",
        store_zones={"S01": "Europe/Rome"},
        hash_key="k",
    )
    assert receipts.rejects.select("line_no", "reason").rows() == [
        (2, "invalid_timestamp"),
        (3, "invalid_timestamp"),
    ]
    # the detail keeps the value the analyst has to fix (no phone masking of timestamps)
    assert "found '2026-03-01T10:00:00Z'" in receipts.rejects.get_column("detail")[0]
    lines = parse_pos_lines(
        b"receipt_id,line_no,sku,category,quantity,amount,line_type,order_id\n"
        b"R3,,P1,shoes,1,10.00,sale,\n",
        file="l.csv",
        known_events=frozenset({"sale"}),
    )
    assert lines.rejects.select("line_no", "reason").rows() == [(2, "missing_value")]


def test_quarantine_and_properties_never_keep_personal_data() -> None:
    contacts = parse_crm_interactions(
        b"interaction_id,occurred_at,type,channel,email,phone,loyalty_id,store_id,"
        b"product_id,category,campaign\n"
        b"I1,yesterday,email_click,email,anna@x.com,+39 333 123 4567,,,,,\n",
        file="i.csv",
        known_events=frozenset({"email_click"}),
        hash_key="k",
    )
    assert contacts.rejects.get_column("raw_text").to_list() == [
        "I1,yesterday,email_click,email,<redacted>,<redacted>,,,,,"
    ]
    segment = parse_segment(
        b'{"type":"identify","messageId":"m1","userId":"u1","timestamp":"soon",'
        b'"traits":{"email":"anna@x.com","name":"Anna Rossi"}}\n'
        b'{"type":"track","event":"Product Viewed","messageId":"m2","anonymousId":"a1",'
        b'"timestamp":"2026-03-01T10:00:00Z","properties":{"note":"call +39 333 1234567",'
        b'"customer":{"email":"anna@x.com"}},'
        b'"context":{"page":{"url":"https://shop.example/p?email=anna@x.com&utm_source=nl#top"}}}',
        file="w.jsonl",
        known_events=KNOWN,
        hash_key="k",
    )
    assert "anna" not in segment.rejects.get_column("raw_text").item().lower()
    assert json.loads(segment.rows.get_column("properties").item()) == {
        "customer": {"email": "<redacted>"},
        "device": "browser",
        "note": "call <phone>",
        "url": "https://shop.example/p?utm_source=nl",
    }


def test_device_clock_skew_is_corrected_from_sent_at_and_received_at() -> None:
    # The device clock is 2 hours fast; the event was sent 30 s after it happened and arrived
    # 0.5 s later: true time = receivedAt - (sentAt - timestamp) = 10:00:00.5.
    parsed = parse_segment(
        b'{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        b'"timestamp":"2026-03-01T12:00:00.000Z","sentAt":"2026-03-01T12:00:30.000Z",'
        b'"receivedAt":"2026-03-01T10:00:30.500Z"}\n'
        # without sentAt there is nothing to correct with: the device time is kept
        b'{"type":"track","event":"Product Viewed","messageId":"m2","anonymousId":"a1",'
        b'"timestamp":"2026-03-01T12:00:00.000Z","receivedAt":"2026-03-01T10:00:30.500Z"}',
        file="app.jsonl",
        known_events=KNOWN,
        hash_key="k",
    )
    assert parsed.rows.get_column("occurred_at").to_list() == [
        at("2026-03-01 10:00:00.500"),
        at("2026-03-01 12:00"),
    ]


def test_arrivals_from_unmanaged_sites_become_their_touchpoints() -> None:
    lines = [
        json.dumps(
            {
                "type": "page",
                "name": "Home",
                "messageId": f"m{n}",
                "anonymousId": "a1",
                "timestamp": "2026-03-01T10:00:00Z",
                "context": {"page": {"referrer": ref}},
            }
        )
        for n, ref in enumerate(
            [
                "https://www.trustpilot.com/review/shop.example",  # subdomain of a rule's host
                "https://l.instagram.com/?u=x",
                "https://shop.example/product/P1",  # our own site: stays home_view
                "",
                "https://notreddit.com/r/x",  # not a subdomain of reddit.com
            ]
        )
    ]
    parsed = parse_segment(
        "\n".join(lines).encode(), file="web.jsonl", known_events=KNOWN, hash_key="k"
    )
    events = events_from_segment(
        parsed.rows.pipe(_as_loaded),
        source="web",
        channel="web",
        taxonomy=load_taxonomy(),
        referrers=load_referrers(),
    )
    assert events.select("event_id", "touchpoint", "channel", "stage", "is_managed").rows() == [
        ("web:m0", "review_site_visit", "review_site", "consideration", False),
        ("web:m1", "social_visit", "social", "awareness", False),
        ("web:m2", "home_view", "web", "awareness", True),
        ("web:m3", "home_view", "web", "awareness", True),
        ("web:m4", "home_view", "web", "awareness", True),
    ]


def test_segment_exports_with_original_timestamp_are_not_corrected_twice() -> None:
    # Segment already corrected `timestamp` (the device said 12:15, originalTimestamp); a
    # second correction would put the skew back.
    parsed = parse_segment(
        b'{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        b'"timestamp":"2026-03-01T10:15:00Z","originalTimestamp":"2026-03-01T12:15:00Z",'
        b'"sentAt":"2026-03-01T12:15:05Z","receivedAt":"2026-03-01T10:15:05Z"}\n'
        # sentAt before timestamp (a broken device): never after it arrived
        b'{"type":"track","event":"Product Viewed","messageId":"m2","anonymousId":"a1",'
        b'"timestamp":"2026-03-01T12:00:00Z","sentAt":"2026-03-01T11:00:00Z",'
        b'"receivedAt":"2026-03-01T10:00:00Z"}',
        file="web.jsonl",
        known_events=KNOWN,
        hash_key="k",
    )
    assert parsed.rows.get_column("occurred_at").to_list() == [
        at("2026-03-01 10:15"),
        at("2026-03-01 10:00"),
    ]


def test_referrals_relabel_landing_pages_only_and_bad_urls_are_ignored() -> None:
    lines = [
        json.dumps(
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": "m1",
                "anonymousId": "a1",
                "timestamp": "2026-03-01T10:00:00Z",
                "context": {"page": {"referrer": "https://instagram.com/p/1"}},
            }
        ),
        json.dumps(
            {
                "type": "page",
                "name": "Home",
                "messageId": "m2",
                "anonymousId": "a1",
                "timestamp": "2026-03-01T10:00:00Z",
                "context": {"page": {"referrer": "http://[broken"}},
            }
        ),
        # a price nobody computes with is kept as sent, not a reason to lose the event
        json.dumps(
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": "m3",
                "anonymousId": "a1",
                "timestamp": "2026-03-01T10:00:00Z",
                "properties": {"price": "€19,99"},
            }
        ),
    ]
    parsed = parse_segment(
        "\n".join(lines).encode(), file="web.jsonl", known_events=KNOWN, hash_key="k"
    )
    assert parsed.rejects.height == 0
    events = events_from_segment(
        parsed.rows.pipe(_as_loaded),
        source="web",
        channel="web",
        taxonomy=load_taxonomy(),
        referrers=load_referrers(),
    )
    assert events.select("event_id", "touchpoint").rows() == [
        ("web:m1", "product_view"),
        ("web:m2", "home_view"),
        ("web:m3", "product_view"),
    ]


def test_pos_parquet_exports_read_like_csv(tmp_path: Path) -> None:
    receipts = pl.DataFrame(
        {
            "receipt_id": ["R1", "R2"],
            "store_id": ["S01", "S99"],
            "receipt_ts": [datetime(2026, 3, 29, 11, 0), datetime(2026, 3, 29, 12, 0)],
            "loyalty_id": ["L1", None],
            "payment_token": ["tok_1", "tok_2"],
            "currency": ["EUR", "EUR"],
            "total": [30.0, 5.0],
        }
    )
    path = tmp_path / "receipts.parquet"
    receipts.write_parquet(path)
    parsed = parse_pos_receipts(
        path.read_bytes(), file="receipts.parquet", store_zones={"S01": "Europe/Rome"}, hash_key="k"
    )
    assert parsed.rows.select("line_no", "record_key", "occurred_at", "total").rows() == [
        (1, "R1", at("2026-03-29 09:00"), Decimal("30.00"))
    ]
    # row 2's store is unknown; the quarantine keeps the row with the token masked
    assert parsed.rejects.select("line_no", "reason").rows() == [(2, "unknown_store")]
    assert json.loads(parsed.rejects.get_column("raw_text").item())["payment_token"] == (
        "<redacted>"
    )
    bad = tmp_path / "lines.parquet"
    pl.DataFrame({"receipt_id": ["R1"]}).write_parquet(bad)
    with pytest.raises(SourceError, match=r"lines\.parquet: expected the columns .* missing"):
        parse_pos_lines(bad.read_bytes(), file="lines.parquet", known_events=frozenset())
