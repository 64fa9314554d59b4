"""Row-for-row comparison of the tables two runs wrote: a speed change must not change them.

    python benchmarks/compare_outputs.py before.duckdb after.duckdb

Compares ``core.*``, ``journeys.*``, ``marts.patterns``, ``ops.customer_fingerprints`` and the
identity and journey run ledgers, each sorted by all its columns, with
``polars.testing.assert_frame_equal``; the times of the runs themselves (``run_at``,
``changed_at``) are left out. Exits 1 when a table differs.
"""

from __future__ import annotations

import sys

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

RUN_TIMES = {"run_at", "changed_at"}
LEDGERS = ("ops.customer_fingerprints", "ops.identity_changes", "ops.identity_runs")
COMPARED = ("marts.patterns", *LEDGERS, "ops.journey_runs")


def _tables(path: str) -> list[str]:
    with duckdb.connect(path, read_only=True) as con:
        rows = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() "
            "where schema_name in ('core', 'journeys', 'marts', 'ops') order by 1"
        ).fetchall()
    return [name for (name,) in rows if name.startswith(("core.", "journeys.")) or name in COMPARED]


def _rows(path: str, table: str) -> pl.DataFrame:
    with duckdb.connect(path, read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        columns = [
            name
            for (name,) in con.execute(
                "select column_name from duckdb_columns() "
                "where schema_name || '.' || table_name = $table order by column_index",
                {"table": table},
            ).fetchall()
            if name not in RUN_TIMES
        ]
        listed = ", ".join(f'"{name}"' for name in columns)
        return con.sql(f"select {listed} from {table} order by all").pl()


def main(before: str, after: str) -> int:
    tables = _tables(before)
    if tables != _tables(after):
        print(f"Other tables: {sorted(set(tables) ^ set(_tables(after)))}")
        return 1
    differ = 0
    for table in tables:
        old, new = _rows(before, table), _rows(after, table)
        try:
            assert_frame_equal(old, new)
        except AssertionError as error:
            differ += 1
            print(f"DIFF {table}: {old.height} vs {new.height} rows\n{str(error)[:800]}")
        else:
            print(f"OK   {table}: {old.height} rows")
    print("IDENTICAL" if not differ else f"{differ} tables differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
