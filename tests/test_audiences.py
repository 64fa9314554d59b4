"""Audiences: rule-based segments of customers, evaluated exactly on hand-made events; their
exports carry no raw identifier; who entered and left between two runs is counted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from journey_analytics import audiences, jobs
from journey_analytics.errors import ConfigError
from journey_analytics.warehouse import Warehouse

AS_OF = datetime(2026, 5, 31, 12, tzinfo=UTC)


def _event(
    customer: str | None,
    touchpoint: str,
    days_ago: float,
    *,
    channel: str = "web",
    conversion: bool = False,
    fulfilment: str | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    return {
        "customer_key": customer,
        "event_id": f"{customer}-{touchpoint}-{days_ago}",
        "touchpoint": touchpoint,
        "channel": channel,
        "stage": "interest",
        "is_managed": True,
        "is_conversion": conversion,
        "fulfilment": fulfilment,
        "order_id": order,
        "category": "shoes",
        "occurred_at": AS_OF - timedelta(days=days_ago),
    }


def _order(customer: str, order: str, days_ago: float) -> dict[str, Any]:
    return _event(
        customer, "order_placed", days_ago, conversion=True, fulfilment="click_and_collect",
        order=order,
    )  # fmt: skip


def _pickup(customer: str, order: str, days_ago: float) -> dict[str, Any]:
    return _event(customer, "store_pickup", days_ago, channel="store", order=order)


EVENTS = pl.DataFrame(
    [
        # online researchers without a store visit or a purchase, last 7 days
        _event("c1", "product_view", 3),  # in
        _event("c2", "product_view", 2, channel="app"),
        _event("c2", "store_visit", 1, channel="store"),  # out: visited a store
        _event("c3", "product_view", 5),
        _event("c3", "order_placed", 4, conversion=True),  # out: bought
        _event("c4", "product_view", 10),  # out: before the window
        _event("c13", "product_view", 7),  # in: the window includes its first moment
        _event("c14", "product_view", -1),  # out: after as_of (not read)
        _event(None, "product_view", 1),  # no customer: never in an audience
        _event("c15", "home_view", 0),  # the end of the data: in no audience
        # click-and-collect orders not picked up after 7 days
        _order("c5", "O5", 20),  # in
        _order("c6", "O6", 20),
        _pickup("c6", "O6", 15),  # out: picked up
        _order("c7", "O7", 3),  # out: not 7 days old yet
        _order("c8", "O8a", 20),  # in: the pick-up is of another order
        _pickup("c8", "O8b", 10),
        # tried on in a store, bought nothing since, last 14 days
        _event("c9", "try_on", 5, channel="store"),  # in
        _event("c10", "try_on", 5, channel="store"),
        _event("c10", "store_purchase", 4, channel="store", conversion=True),  # out: bought
        _event("c11", "store_purchase", 6, channel="store", conversion=True),
        _event("c11", "try_on", 5, channel="store"),  # in: the purchase came before
        _event("c12", "try_on", 20, channel="store"),  # out: before the window
    ]
)


def test_the_shipped_rules_give_exactly_these_members() -> None:
    members = audiences.audience_members(EVENTS, audiences.load_audiences(), as_of=AS_OF)
    assert members.rows() == [
        ("click-and-collect-no-show", "c5"),
        ("click-and-collect-no-show", "c8"),
        ("online-researchers-no-store", "c1"),
        ("online-researchers-no-store", "c13"),
        ("tried-in-store-no-purchase", "c11"),
        ("tried-in-store-no-purchase", "c9"),
    ]
    # every product_view customer but c1 and c13 is in one of the ruled-out cases, each once
    assert EVENTS.filter(pl.col("touchpoint") == "product_view").height == 7


def _rules(text: str, tmp_path: Path) -> audiences.AudienceRules:
    path = tmp_path / "audiences.toml"
    path.write_text(text)
    return audiences.load_audiences(path)


def test_filters_combine_every_field_and_list(tmp_path: Path) -> None:
    rules = _rules(
        '[[audience]]\nname = "app-or-store"\nwithin_days = 30\n'
        '[[audience.did]]\nchannel = ["app", "store"]\nis_conversion = false\n'
        '[[audience.did_not]]\ntouchpoint = ["try_on"]\n',
        tmp_path,
    )
    members = audiences.audience_members(EVENTS, rules, as_of=AS_OF)
    # c2: app view and store visit; c6, c8: pick-ups; c10, c11, c12: tried on (ruled out)
    assert members.get_column("customer_key").to_list() == ["c2", "c6", "c8"]


def test_an_unknown_key_or_a_bad_name_names_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _rules(
            '[[audience]]\nname = "Bad Name"\nwithin_days = 7\n'
            '[[audience.did]]\ntouchpont = ["x"]\n',
            tmp_path,
        )
    text = str(error.value)
    assert str(tmp_path / "audiences.toml") in text
    assert "audience.0.did.0.touchpont" in text
    with pytest.raises(ConfigError, match="expected lower case letters"):
        _rules('[[audience]]\nname = "Bad Name"\nwithin_days = 7\n[[audience.did]]\n', tmp_path)
    with pytest.raises(ConfigError, match="repeated: a"):
        _rules(
            '[[audience]]\nname = "a"\nwithin_days = 1\n[[audience.did]]\n'
            '[[audience]]\nname = "a"\nwithin_days = 2\n[[audience.did]]\n',
            tmp_path,
        )


def test_changes_count_who_entered_and_left() -> None:
    rules = audiences.load_audiences()
    before = pl.DataFrame(
        {
            "audience": ["online-researchers-no-store"] * 2 + ["tried-in-store-no-purchase"],
            "customer_key": ["c1", "c4", "c9"],
        }
    )
    after = pl.DataFrame(
        {
            "audience": ["online-researchers-no-store"] * 2 + ["click-and-collect-no-show"],
            "customer_key": ["c1", "c2", "c5"],
        }
    )
    assert audiences.audience_changes(before, after, rules).rows() == [
        ("online-researchers-no-store", 2, 1, 1),  # c2 in, c4 out
        ("click-and-collect-no-show", 1, 1, 0),
        ("tried-in-store-no-purchase", 0, 0, 1),
    ]


IDENTIFIERS = pl.DataFrame(
    {
        "identifier_type": ["email_hash", "email_hash", "phone_hash", "user_id", "loyalty_id"],
        "identifier_value": ["e2", "e1", "p1", "u-raw-1", "L-raw-1"],
        "customer_key": ["c1", "c1", "c1", "c1", "c5"],
    }
)


def test_an_export_holds_the_key_and_keyed_hashes_only() -> None:
    members = pl.DataFrame({"audience": ["a", "a"], "customer_key": ["c5", "c1"]})
    export = audiences.audience_export(members, IDENTIFIERS)
    assert export.rows() == [("c1", "e1;e2", "p1"), ("c5", "", "")]
    assert export.columns == ["customer_key", "email_hash", "phone_hash"]


def _core_event(row: dict[str, Any]) -> dict[str, Any]:
    # loaded an hour after it happened: the run's end of the data is then the last event
    return {
        **row,
        "source": "web",
        "ingested_at": row["occurred_at"] + timedelta(hours=1),
        "batch_id": "b1",
    }


@pytest.fixture
def wh() -> Iterator[Warehouse]:
    with Warehouse.open(":memory:") as warehouse:
        warehouse.ensure_tables()
        yield warehouse


def _load(wh: Warehouse, events: pl.DataFrame) -> None:
    wh.replace(
        "core.events",
        pl.DataFrame([_core_event(row) for row in events.to_dicts()]).filter(
            pl.col("customer_key").is_not_null()
        ),
    )


def test_two_runs_record_sizes_and_who_entered_and_left(wh: Warehouse, tmp_path: Path) -> None:
    rules = audiences.load_audiences()
    _load(wh, EVENTS.filter(pl.col("occurred_at") <= AS_OF))
    first = jobs._build_audiences(wh, rules)
    # five days later: c1 buys and c20 views a product; as_of moves 5 days on, so c1's and
    # c13's views leave the 7-day window, and c7's order is 8 days old without a pick-up
    later = pl.DataFrame(
        [
            _event("c1", "order_placed", -5, conversion=True),
            _event("c20", "product_view", -5),
        ]
    )
    _load(wh, pl.concat([EVENTS.filter(pl.col("occurred_at") <= AS_OF), later]))
    second = jobs._build_audiences(wh, rules)
    assert first.height == 6
    assert second.rows() == [
        ("click-and-collect-no-show", "c5"),
        ("click-and-collect-no-show", "c7"),
        ("click-and-collect-no-show", "c8"),
        ("online-researchers-no-store", "c20"),
        ("tried-in-store-no-purchase", "c11"),
        ("tried-in-store-no-purchase", "c9"),
    ]
    sizes = wh.query(
        "select as_of, audience, members, entered, exited from ops.audience_sizes "
        "order by run_at, audience"
    )
    assert sizes.rows() == [
        (AS_OF, "click-and-collect-no-show", 2, 2, 0),
        (AS_OF, "online-researchers-no-store", 2, 2, 0),
        (AS_OF, "tried-in-store-no-purchase", 2, 2, 0),
        (AS_OF + timedelta(days=5), "click-and-collect-no-show", 3, 1, 0),  # c7 in
        (AS_OF + timedelta(days=5), "online-researchers-no-store", 1, 1, 2),  # c20 in; c1, c13 out
        (AS_OF + timedelta(days=5), "tried-in-store-no-purchase", 2, 0, 0),
    ]
    assert wh.read("marts.audience_members").rows() == second.rows()


def test_exports_are_written_per_audience_without_raw_identifiers(
    wh: Warehouse, tmp_path: Path
) -> None:
    rules = audiences.load_audiences()
    _load(wh, EVENTS.filter(pl.col("occurred_at") <= AS_OF))
    wh.replace(
        "core.customers", IDENTIFIERS.with_columns(pl.lit(None, pl.String).alias("group_key"))
    )
    members = jobs._build_audiences(wh, rules)
    folder = tmp_path / "audiences"
    folder.mkdir()
    (folder / "old-audience.csv").write_text("customer_key\nc1\n")  # a rule since removed
    written = jobs.export_audiences(wh, rules, members, folder)
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        f"{audience.name}{suffix}" for audience in rules.audience for suffix in (".csv", ".parquet")
    )
    assert len(written) == 6
    researchers = pl.read_csv(folder / "online-researchers-no-store.csv", infer_schema=False)
    assert researchers.rows() == [("c1", "e1;e2", "p1"), ("c13", "", "")]
    assert pl.read_parquet(folder / "click-and-collect-no-show.parquet").rows() == [
        ("c5", "", ""),
        ("c8", "", ""),
    ]
    for path in written:
        data = path.read_bytes()
        assert b"u-raw-1" not in data
        assert b"L-raw-1" not in data


def test_edge_cases_of_the_rules(tmp_path: Path) -> None:
    rules = _rules(
        """
[[audience]]
name = "no-show"
within_days = 60
[[audience.did]]
touchpoint = ["order_placed"]
older_than_days = 7
not_followed_by = { touchpoint = ["store_pickup"], same = "order_id" }

[[audience]]
name = "tried-no-purchase"
within_days = 14
[[audience.did]]
touchpoint = ["try_on"]
not_followed_by = { is_conversion = true }

[[audience]]
name = "no-second-shoe"
within_days = 30
[[audience.did]]
touchpoint = ["store_purchase"]
not_followed_by = { is_conversion = true, same = "category" }
""",
        tmp_path,
    )
    events = pl.DataFrame(
        [
            # picked up by another customer (a partner, not stitched): not a no-show
            _order("a1", "OA", 20),
            _pickup("a2", "OA", 18),
            # exactly 7 days old: older_than_days includes the boundary
            _order("b1", "OB", 7),
            # a purchase at the very moment of the try-on does not follow it: still a member
            _event("c1", "try_on", 3, channel="store"),
            _event("c1", "store_purchase", 3, channel="store", conversion=True),
            # a later purchase in another category does not undo one in the same category
            {**_event("d1", "store_purchase", 10, channel="store", conversion=True)},
            {**_event("d1", "order_placed", 5, conversion=True), "category": "bags"},
            {**_event("d2", "store_purchase", 10, channel="store", conversion=True)},
            {**_event("d2", "order_placed", 5, conversion=True)},  # shoes again: undone
        ]
    )
    members = audiences.audience_members(events, rules, as_of=AS_OF)
    # (d1's and d2's orders are 5 days old: not yet no-shows)
    assert members.rows() == [
        ("no-second-shoe", "c1"),
        ("no-second-shoe", "d1"),
        ("no-show", "b1"),
        ("tried-no-purchase", "c1"),
    ]


def test_an_empty_database_has_empty_audiences(wh: Warehouse) -> None:
    members = jobs._build_audiences(wh, audiences.load_audiences())
    assert members.is_empty()
    assert wh.query("select audience, members, entered, exited from ops.audience_sizes").rows() == [
        ("online-researchers-no-store", 0, 0, 0),
        ("click-and-collect-no-show", 0, 0, 0),
        ("tried-in-store-no-purchase", 0, 0, 0),
    ]
