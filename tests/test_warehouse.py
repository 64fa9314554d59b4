from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from journey_analytics.errors import DatabaseLockedError, JourneyError
from journey_analytics.warehouse import Warehouse


def test_a_file_named_journeys_is_not_confused_with_the_journeys_schema(tmp_path: Path) -> None:
    with Warehouse.open(tmp_path / "journeys.duckdb") as wh:
        wh.ensure_tables()
        assert wh.read("journeys.journeys").height == 0


def test_read_gives_the_columns_asked_for_in_their_order(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"journey_id": ["j1", "j2"], "dimension": ["all"] * 2, "segment": ["a", "b"]}
    )
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        wh.append("marts.journey_segments", frame)
        found = wh.read("marts.journey_segments", columns=("segment", "journey_id"))
    assert found.sort("journey_id").rows() == [("a", "j1"), ("b", "j2")]
    assert found.columns == ["segment", "journey_id"]


def test_transaction_rolls_back_every_write(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "touchpoint": ["x"],
            "journeys_through": [1],
            "exits": [0],
            "dropoff_rate": [0.0],
            "leaks": [0],
            "leakage_rate": [0.0],
        }
    )
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        with pytest.raises(RuntimeError), wh.transaction():
            wh.append("marts.dropoffs", frame)
            raise RuntimeError
        assert wh.read("marts.dropoffs").height == 0


def test_unsafe_table_names_are_refused() -> None:
    with Warehouse.open(":memory:") as wh, pytest.raises(JourneyError, match=r"schema\.table"):
        wh.read("core.events; drop table x")


def test_second_writer_gets_a_clear_message(tmp_path: Path) -> None:
    database = tmp_path / "j.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from journey_analytics.warehouse import Warehouse\n"
            f"with Warehouse.open({str(database)!r}) as wh:\n"
            "    print('open', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with (
            pytest.raises(DatabaseLockedError, match=r"j\.duckdb is in use by another process"),
            Warehouse.open(database),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with Warehouse.open(database) as wh:  # released once the holder is gone
        wh.ensure_tables()


def test_raw_tables_gain_the_columns_a_newer_parser_keeps(tmp_path: Path) -> None:
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        old = pl.DataFrame({"record_key": ["a"], "source": ["web"]})
        wh.ensure_raw_table("raw.clickstream", old)
        wh.append("raw.clickstream", old)
        new = pl.DataFrame({"record_key": ["b"], "source": ["web"], "referrer_host": ["x.com"]})
        wh.ensure_raw_table("raw.clickstream", new)
        wh.append("raw.clickstream", new)
        assert wh.query("select * from raw.clickstream order by record_key").rows() == [
            ("a", "web", None),
            ("b", "web", "x.com"),
        ]


def test_an_older_ops_batches_gets_the_columns_added_since(tmp_path: Path) -> None:
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        # ops.batches as made before 2026-12-01, with one batch in it
        wh.execute("drop table ops.batches")
        wh.execute(
            "create table ops.batches (batch_id varchar primary key, source varchar, "
            "file varchar, checksum varchar, rows_read bigint, rows_loaded bigint, "
            "rows_duplicate bigint, rows_rejected bigint, status varchar, "
            "key_fingerprint varchar, started_at timestamptz, finished_at timestamptz)"
        )
        wh.execute(
            "insert into ops.batches values ('web:1', 'web', 'web.jsonl', 'c', 1, 1, 0, 0, "
            "'loaded', 'f', now(), now())"
        )
        wh.ensure_tables()
        assert wh.query("select file_bytes, file_modified_ns from ops.batches").rows() == [
            (None, None)
        ]


def test_a_derived_table_of_an_older_shape_is_made_anew(tmp_path: Path) -> None:
    # journeys.* and marts.* are rebuilt by every run: a table an older version made with
    # other columns is dropped and created from today's DDL; core tables are never dropped.
    database = tmp_path / "old.duckdb"
    with Warehouse.open(database) as wh:
        wh.ensure_tables()
        wh.execute("alter table journeys.steps drop column store_id")
        wh.execute("insert into core.customers values ('user_id', 'u1', 'c1', 'g1')")
    with Warehouse.open(database) as wh:
        wh.ensure_tables()
        assert "store_id" in wh.tables("journeys")["journeys.steps"]
        assert wh.query("select count(*) from core.customers").item() == 1


def test_replace_if_changed_replaces_the_rows_and_keeps_the_primary_key(tmp_path: Path) -> None:
    columns = ("customer_key", "events", "hash_high", "hash_low")
    first = pl.DataFrame([("a", 1, 0, 0), ("b", 2, 0, 0)], schema=columns, orient="row")
    second = pl.DataFrame([("c", 3, 0, 0)], schema=columns, orient="row")
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        wh.replace_if_changed("ops.customer_fingerprints", first)
        wh.replace_if_changed("ops.customer_fingerprints", second)
        assert wh.read("ops.customer_fingerprints").rows() == [("c", 3, 0, 0)]
        # the table is made from its DDL file again: the key still refuses a duplicate
        with pytest.raises(duckdb.ConstraintException):
            wh.append("ops.customer_fingerprints", second)


def test_replace_if_changed_leaves_a_table_that_holds_the_rows_already(tmp_path: Path) -> None:
    frame = pl.DataFrame({"journey_id": ["j1"], "dimension": ["all"], "segment": ["all"]})
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        wh.replace_if_changed("marts.journey_segments", frame)
        oid = wh.query(
            "select table_oid from duckdb_tables() where table_name = 'journey_segments'"
        ).item()
        wh.replace_if_changed("marts.journey_segments", frame)
        assert (
            wh.query(
                "select table_oid from duckdb_tables() where table_name = 'journey_segments'"
            ).item()
            == oid
        )  # not dropped and made again
        assert wh.read("marts.journey_segments").rows() == [("j1", "all", "all")]


def test_replace_makes_the_table_anew_with_its_constraints_and_rolls_back(tmp_path: Path) -> None:
    prints = pl.DataFrame(
        {"customer_key": ["a", "b"], "events": [1, 2], "hash_high": [3, 4], "hash_low": [5, 6]}
    )
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        wh.replace("ops.customer_fingerprints", prints)
        wh.replace("ops.customer_fingerprints", prints.head(1))
        assert wh.read("ops.customer_fingerprints").rows() == [("a", 1, 3, 5)]
        # the primary key came back with the table
        with pytest.raises(duckdb.ConstraintException):
            wh.append("ops.customer_fingerprints", prints)
        with pytest.raises(RuntimeError), wh.transaction():
            wh.replace("ops.customer_fingerprints", prints.tail(1))
            raise RuntimeError
        assert wh.read("ops.customer_fingerprints").rows() == [("a", 1, 3, 5)]


def _with_old_key(wh: Warehouse, table: str, key: str) -> None:
    """Makes ``table`` anew empty, as an older version defined it: its columns now, and a
    primary key on ``key``."""
    schema, name = table.split(".")
    columns = wh.query(
        "select string_agg(column_name || ' ' || data_type, ', ' order by column_index) "
        "from duckdb_columns() where schema_name = $schema and table_name = $name",
        {"schema": schema, "name": name},
    ).item()
    wh.execute(f"drop table {table}")
    wh.execute(f"create table {table} ({columns}, primary key ({key}))")


def test_a_derived_table_with_another_primary_key_is_made_anew(tmp_path: Path) -> None:
    # journeys.steps had a primary key before 2026-12-02; the same columns without it now
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        _with_old_key(wh, "journeys.steps", "journey_id, position")
        wh.ensure_tables()
        keys = wh.query(
            "select count(*) from duckdb_constraints() where schema_name = 'journeys' "
            "and table_name = 'steps' and constraint_type = 'PRIMARY KEY'"
        ).item()
        assert keys == 0


def test_a_kept_table_loses_the_primary_key_its_file_no_longer_declares(tmp_path: Path) -> None:
    # core.events had a primary key before 2026-12-03: its rows are copied into the table
    # the file makes now, once; a table that keeps its key (ops.batches) is left alone
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        _with_old_key(wh, "core.events", "event_id")
        wh.execute(
            "insert into core.events (event_id, source, channel, touchpoint, stage, "
            "is_managed, is_conversion, occurred_at, ingested_at, batch_id) values "
            "('web:1', 'web', 'web', 'product_view', 'interest', true, false, "
            "'2026-03-01 10:00:00+00', '2026-03-02 00:00:00+00', 'b1')"
        )

    def keys() -> list[tuple[str, str]]:
        return wh.query(
            "select table_name, array_to_string(constraint_column_names, ', ') "
            "from duckdb_constraints() where schema_name in ('core', 'ops') "
            "and table_name in ('events', 'batches') and constraint_type = 'PRIMARY KEY' "
            "order by table_name"
        ).rows()

    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        assert keys() == [("batches", "batch_id"), ("events", "event_id")]
        wh.ensure_tables()
        assert keys() == [("batches", "batch_id")]
        assert wh.query("select event_id, stage from core.events").rows() == [("web:1", "interest")]
        wh.ensure_tables()  # nothing left to do
        assert wh.query("select count(*) from core.events").item() == 1
        tables = wh.query("select count(*) from duckdb_tables() where table_name like '%keyed'")
        assert tables.item() == 0


def test_update_from_changes_only_the_rows_whose_value_differs(tmp_path: Path) -> None:
    prints = pl.DataFrame(
        {
            "customer_key": ["a", "b", "c"],
            "events": [1, 2, 3],
            "hash_high": [0] * 3,
            "hash_low": [0] * 3,
        }
    )
    with Warehouse.open(tmp_path / "j.duckdb") as wh:
        wh.ensure_tables()
        wh.append("ops.customer_fingerprints", prints)
        changes = pl.DataFrame({"customer_key": ["a", "b", "z"], "events": [1, 5, 9]})
        # a: the same value; b: another; z: no such row
        assert (
            wh.update_from(
                "ops.customer_fingerprints", changes, key="customer_key", column="events"
            )
            == 1
        )
        assert wh.query(
            "select customer_key, events from ops.customer_fingerprints order by 1"
        ).rows() == [("a", 1), ("b", 5), ("c", 3)]


def test_replaced_steps_has_the_columns_of_the_steps(tmp_path: Path) -> None:
    # the journey build copies replaced steps with `insert ... select *`: the two definitions
    # (sql/tables/journeys.steps.sql and .replaced_steps.sql) must not drift apart
    with Warehouse.open(tmp_path / "w.duckdb") as wh:
        wh.ensure_tables()
        steps = wh.query("select * from journeys.steps").schema
        replaced = wh.query("select * from journeys.replaced_steps").schema
    assert list(replaced.items()) == list(steps.items())
    assert len(steps) == 13
