"""Each kind of noise of real feeds, on a tiny hand-checked scenario run through the jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from journey_analytics.warehouse import Warehouse

from ._events import at
from ._project import LINES, RECEIPTS, project, run_all


def _message(message_id: str, event: str, ts: str, **extra: Any) -> str:
    body: dict[str, Any] = {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "anonymousId": "a1",
        "timestamp": ts,
    }
    if event in {"page:Home", "identify"}:
        body = {**body, "type": event.split(":", maxsplit=1)[0]}
        body.pop("event")
        if event == "page:Home":
            body["name"] = "Home"
    return json.dumps({**body, **extra})


def _lines(*messages: str) -> str:
    return "\n".join(messages) + "\n"


def _query(settings: Any, sql: str) -> list[tuple[Any, ...]]:
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        return wh.query(sql).rows()


def test_duplicates_within_a_file_and_across_files_are_counted_once(tmp_path: Path) -> None:
    view = _message("m1", "Product Viewed", "2026-03-01T10:00:00Z")
    settings = project(
        tmp_path,
        {
            "web-1.jsonl": _lines(view, view),  # resent at once
            "web-2.jsonl": _lines(view, _message("m2", "Product Viewed", "2026-03-01T10:01:00Z")),
        },
    )
    core, _, _ = run_all(settings)
    assert core.events == 2
    assert _query(
        settings,
        "select file, rows_read, rows_loaded, rows_duplicate, rows_rejected "
        "from ops.batches where source = 'web' order by file",
    ) == [("web-1.jsonl", 2, 1, 1, 0), ("web-2.jsonl", 2, 1, 1, 0)]


def test_a_late_event_lands_in_its_true_place(tmp_path: Path) -> None:
    # m2 happened at 10:05 on 1 March but the app was offline: sent and received 3 days later,
    # in the next file. It still belongs between m1 and the order.
    settings = project(
        tmp_path,
        {
            "web-1.jsonl": _lines(
                _message("m1", "Product Viewed", "2026-03-01T10:00:00Z"),
                _message(
                    "m3",
                    "Order Completed",
                    "2026-03-01T10:10:00Z",
                    properties={"order_id": "O1", "revenue": 10, "fulfilment": "delivery"},
                ),
            ),
            "web-2.jsonl": _lines(
                _message(
                    "m2",
                    "Product Added",
                    "2026-03-01T10:05:00Z",
                    sentAt="2026-03-04T09:00:00Z",
                    receivedAt="2026-03-04T09:00:01Z",
                ),
            ),
        },
    )
    run_all(settings)
    assert _query(
        settings,
        "select journey_id, position, event_id, occurred_at from journeys.steps order by position",
    ) == [
        ("j:web:m1", 1, "web:m1", at("2026-03-01 10:00")),
        ("j:web:m1", 2, "web:m2", at("2026-03-01 10:05:01")),  # exact up to the latency
        ("j:web:m1", 3, "web:m3", at("2026-03-01 10:10")),
    ]


def test_malformed_rows_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    settings = project(
        tmp_path,
        {
            "web.jsonl": _lines(
                '{"type":"track","event":"Product Viewed","messageId":"m1"',  # cut off
                _message("m2", "Product Viewed", "2026-02-30T10:00:00Z"),  # no such day
                _message(
                    "m3",
                    "Order Completed",
                    "2026-03-01T10:00:00Z",
                    properties={"order_id": "O1", "revenue": "abc"},
                ),  # wrong type
                json.dumps(
                    {
                        "type": "track",
                        "event": "Product Viewed",
                        "anonymousId": "a1",
                        "timestamp": "2026-03-01T10:00:00Z",
                    }
                ),  # no id
                _message("m5", "Product Viewed", "2026-03-01T10:00:00Z"),
            ),
        },
        # 4 of 5 rows are broken on purpose: far above any sensible reject threshold
        extra_toml="[ingest]\nmax_reject_rate = 1.0\n",
    )
    core, _, _ = run_all(settings)
    assert core.events == 1
    assert _query(settings, "select line_no, reason from quarantine.rejects order by line_no") == [
        (1, "invalid_json"),
        (2, "invalid_timestamp"),
        (3, "invalid_number"),
        (4, "missing_id"),
    ]
    assert _query(
        settings,
        "select rows_read, rows_loaded + rows_duplicate + rows_rejected "
        "from ops.batches where source = 'web'",
    ) == [(5, 5)]


def test_a_device_clock_hours_off_is_corrected(tmp_path: Path) -> None:
    # The device is 2 hours fast; corrected, the two views are 20 minutes apart and the
    # store visit by the same customer (via the loyalty card) falls between them.
    skewed = {"anonymousId": "a1", "userId": "u1"}
    settings = project(
        tmp_path,
        {
            "web.jsonl": _lines(
                _message(
                    "m1",
                    "Product Viewed",
                    "2026-03-01T12:00:00Z",
                    sentAt="2026-03-01T12:00:01Z",
                    receivedAt="2026-03-01T10:00:01Z",
                    **skewed,
                ),
                _message(
                    "m2",
                    "Product Viewed",
                    "2026-03-01T12:20:00Z",
                    sentAt="2026-03-01T12:20:01Z",
                    receivedAt="2026-03-01T10:20:01Z",
                    **skewed,
                ),
            ),
            "contacts.csv": "contact_id,email,phone,loyalty_id,user_id,consent_email,created_at\n"
            "C1,,,L1,u1,false,\n",
            "interactions.csv": "interaction_id,occurred_at,type,channel,email,phone,loyalty_id,"
            "store_id,product_id,category,campaign\n"
            "I1,2026-03-01T10:10:00Z,store_visit,store,,,L1,S01,,,\n",
        },
    )
    run_all(settings)
    assert _query(
        settings, "select event_id, occurred_at from journeys.steps order by position"
    ) == [
        ("web:m1", at("2026-03-01 10:00")),
        ("crm:I1", at("2026-03-01 10:10")),
        ("web:m2", at("2026-03-01 10:20")),
    ]
    # one web session: the 20 minutes between the views are within the 30-minute timeout
    assert _query(settings, "select channel, events from journeys.sessions order by channel") == [
        ("store", 1),
        ("web", 2),
    ]


def test_receipt_lines_that_arrive_before_their_receipt_wait_for_it(tmp_path: Path) -> None:
    settings = project(tmp_path, {"lines-1.csv": LINES + "R1,1,P1,shoes,1,30.00,sale,\n"})
    core, _, _ = run_all(settings)
    assert (core.events, core.pending) == (0, {"receipt lines without their receipt": 1})
    # the next delivery brings the receipt: the sale appears, nothing is pending
    (tmp_path / "receipts-2.csv").write_text(RECEIPTS + "R1,S01,2026-03-01 10:00:00,L1,,EUR,30\n")
    core, journeys, _ = run_all(settings)
    assert (core.events, core.pending, journeys.conversions) == (1, {}, 1)


def test_a_shared_laptop_merges_nobody(tmp_path: Path) -> None:
    # Two people of one household sign in on the same browser (anonymous id "laptop").
    laptop = {"anonymousId": "laptop"}
    settings = project(
        tmp_path,
        {
            "web.jsonl": _lines(
                _message("m1", "Product Viewed", "2026-03-01T10:00:00Z", **laptop),
                _message("m2", "identify", "2026-03-01T10:01:00Z", userId="anna", **laptop),
                _message("m3", "Product Viewed", "2026-03-01T10:02:00Z", userId="anna", **laptop),
                _message("m4", "identify", "2026-03-05T20:00:00Z", userId="marco", **laptop),
                _message("m5", "Product Viewed", "2026-03-05T20:01:00Z", userId="marco", **laptop),
            ),
        },
    )
    core, _, _ = run_all(settings)
    customers = _query(
        settings,
        "select customer_key, list(event_id order by event_id) "
        "from core.events group by all order by 2",
    )
    # anna, marco, and the laptop's anonymous view that nobody can be credited with
    assert [events for _, events in customers] == [
        ["web:m1"],
        ["web:m2", "web:m3"],
        ["web:m4", "web:m5"],
    ]
    assert core.links_dropped == 2
