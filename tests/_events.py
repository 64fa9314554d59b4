"""Builders for small canonical-event fixtures."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from journey_analytics.ingest import EVENT_SCHEMA


def at(text: str) -> datetime:
    """'2026-03-01 10:00' (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def events(*rows: dict[str, Any]) -> pl.DataFrame:
    """Canonical events; unspecified columns are null, booleans false, source from the id."""
    defaults: dict[str, Any] = {
        "channel": "web",
        "stage": "interest",
        "is_managed": True,
        "is_conversion": False,
        "ingested_at": at("2026-06-01 00:00"),
        "batch_id": "b1",
    }
    full = []
    for row in rows:
        merged = {**defaults, **row}
        merged.setdefault("source", merged["event_id"].split(":")[0])
        if isinstance(merged.get("occurred_at"), str):
            merged["occurred_at"] = at(merged["occurred_at"])
        if merged.get("revenue") is not None:
            merged["revenue"] = Decimal(str(merged["revenue"]))
        full.append({name: merged.get(name) for name in EVENT_SCHEMA})
    return pl.DataFrame(full, schema=EVENT_SCHEMA, orient="row")


def scenario() -> pl.DataFrame:
    """Six customers, one of each kind of journey, with sessions already assigned.

    c: click-and-collect (collected), then ROPO, then a drop-off after a cart, then an open
       journey; d: try-and-buy; e: online-only; f: offline-only (a call, then a store sale);
       g: click-and-collect no-show.
    """
    rows: list[dict[str, Any]] = [
        # c, journey 1: order online, collect in store two days later
        {
            "event_id": "web:1",
            "customer_key": "c",
            "occurred_at": "2026-03-01 10:00",
            "touchpoint": "product_view",
            "category": "shoes",
            "product_id": "P1",
        },
        {
            "event_id": "web:2",
            "customer_key": "c",
            "occurred_at": "2026-03-01 10:05",
            "touchpoint": "add_to_cart",
            "stage": "consideration",
            "category": "shoes",
        },
        {
            "event_id": "web:3",
            "customer_key": "c",
            "occurred_at": "2026-03-01 10:10",
            "touchpoint": "order_placed",
            "stage": "purchase",
            "is_conversion": True,
            "order_id": "O1",
            "fulfilment": "click_and_collect",
            "category": "shoes",
            "revenue": "50.00",
        },
        {
            "event_id": "pos:R1:pickup",
            "customer_key": "c",
            "occurred_at": "2026-03-03 12:00",
            "touchpoint": "store_pickup",
            "stage": "usage",
            "channel": "store",
            "order_id": "O1",
        },
        # c, journey 2: research bags online, buy them in a store (ROPO)
        {
            "event_id": "web:4",
            "customer_key": "c",
            "occurred_at": "2026-03-10 09:00",
            "touchpoint": "product_view",
            "category": "bags",
        },
        {
            "event_id": "web:5",
            "customer_key": "c",
            "occurred_at": "2026-03-10 09:01",
            "touchpoint": "sign_in",
            "stage": "consideration",
        },
        {
            "event_id": "web:6",
            "customer_key": "c",
            "occurred_at": "2026-03-10 09:02",
            "touchpoint": "product_view",
            "category": "bags",
        },
        {
            "event_id": "pos:R2:sale",
            "customer_key": "c",
            "occurred_at": "2026-03-12 15:00",
            "touchpoint": "store_purchase",
            "stage": "purchase",
            "channel": "store",
            "is_conversion": True,
            "order_id": "R2",
            "fulfilment": "in_store",
            "category": "bags",
            "revenue": "80.00",
        },
        # c, journey 3: cart abandoned; 41 days of silence follow (> 30): a drop-off
        {
            "event_id": "web:7",
            "customer_key": "c",
            "occurred_at": "2026-03-20 10:00",
            "touchpoint": "product_view",
            "category": "dresses",
        },
        {
            "event_id": "app:1",
            "customer_key": "c",
            "occurred_at": "2026-03-21 10:00",
            "touchpoint": "add_to_cart",
            "stage": "consideration",
            "channel": "app",
            "category": "dresses",
        },
        # c, journey 4: still open at the end of the data (as_of 2026-05-10)
        {
            "event_id": "web:8",
            "customer_key": "c",
            "occurred_at": "2026-05-01 10:00",
            "touchpoint": "product_view",
            "category": "dresses",
        },
        # d: try on jackets in store, order them online two days later
        {
            "event_id": "crm:1",
            "customer_key": "d",
            "occurred_at": "2026-03-05 16:00",
            "touchpoint": "try_on",
            "stage": "consideration",
            "channel": "store",
            "category": "jackets",
        },
        {
            "event_id": "web:20",
            "customer_key": "d",
            "occurred_at": "2026-03-07 20:00",
            "touchpoint": "order_placed",
            "stage": "purchase",
            "is_conversion": True,
            "order_id": "O2",
            "fulfilment": "delivery",
            "category": "jackets",
            "revenue": "120.00",
        },
        # e: online only
        {
            "event_id": "crm:30",
            "customer_key": "e",
            "occurred_at": "2026-03-02 08:00",
            "touchpoint": "email_click",
            "channel": "email",
        },
        {
            "event_id": "web:31",
            "customer_key": "e",
            "occurred_at": "2026-03-02 08:01",
            "touchpoint": "order_placed",
            "stage": "purchase",
            "is_conversion": True,
            "order_id": "O3",
            "fulfilment": "delivery",
            "category": "jeans",
            "revenue": "40.00",
        },
        # f: a call, then a store sale
        {
            "event_id": "crm:40",
            "customer_key": "f",
            "occurred_at": "2026-03-04 11:00",
            "touchpoint": "call",
            "stage": "consideration",
            "channel": "phone",
        },
        {
            "event_id": "pos:R9:sale",
            "customer_key": "f",
            "occurred_at": "2026-03-06 11:00",
            "touchpoint": "store_purchase",
            "stage": "purchase",
            "channel": "store",
            "is_conversion": True,
            "order_id": "R9",
            "fulfilment": "in_store",
            "category": "bags",
            "revenue": "30.00",
        },
        # g: click-and-collect never collected
        {
            "event_id": "app:50",
            "customer_key": "g",
            "occurred_at": "2026-03-08 18:00",
            "touchpoint": "order_placed",
            "stage": "purchase",
            "channel": "app",
            "is_conversion": True,
            "order_id": "O4",
            "fulfilment": "click_and_collect",
            "category": "shoes",
            "revenue": "60.00",
        },
    ]
    frame = events(*rows)
    return frame.with_columns(pl.lit("s:x").alias("session_id"))


AS_OF = at("2026-05-10 00:00")
