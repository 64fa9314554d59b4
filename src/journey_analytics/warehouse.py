"""DuckDB at the edge: the one module that opens the database, runs ``sql/`` files and moves frames.

Every other module works on Polars frames. Tables are created from the DDL files in
``sql/tables/`` (one file per table, grain in its header); marts computed in SQL come from
``sql/marts/``. Values are passed as ``$name`` parameters, never pasted into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from journey_analytics.errors import ComputeError, DatabaseLockedError, JourneyError

SCHEMAS = ("raw", "quarantine", "core", "journeys", "marts", "ops")
DERIVED_SCHEMAS = ("journeys", "marts")  # rebuilt from core.* by every run
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def sql_dir() -> Path:
    """The folder of SQL files: shipped inside the wheel, or ``sql/`` of a source checkout."""
    packaged = Path(__file__).parent / "_sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sql"


# No extension downloads: nothing at run time reaches the network.
_CONFIG: dict[str, Any] = {"autoinstall_known_extensions": False}


def compute(
    query_file: str,
    params: dict[str, Any],
    *,
    macros: tuple[str, ...] = (),
    frames: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Runs the query ``sql/<query_file>`` with ``$name`` parameters in a private in-memory
    DuckDB (no database file): DuckDB as a vectorised reader and engine, e.g. to parse a
    source file on every core. ``macros``: files of ``sql/`` that define macros the query
    uses, run first; ``frames``: frames the query reads as views of those names.
    """
    query = (sql_dir() / query_file).read_text(encoding="utf-8")
    connection = duckdb.connect(":memory:", config=_CONFIG)
    try:
        connection.execute("set TimeZone = 'UTC'")
        _quiet(connection)
        for macro in macros:
            connection.execute((sql_dir() / macro).read_text(encoding="utf-8"))
        for name, frame in (frames or {}).items():
            connection.register(name, frame)
        result: pl.DataFrame = connection.sql(query, params=params).pl()
    except duckdb.Error as error:
        raise ComputeError(str(error)) from None
    except UnicodeDecodeError as error:
        # DuckDB quoted the input in its message and cut a character in two
        raise ComputeError(f"DuckDB's error message could not be read: {error}") from None
    finally:
        connection.close()
    return result


def _quiet(connection: duckdb.DuckDBPyConnection) -> None:
    """No progress bar over the log of a run. In a Jupyter kernel DuckDB refuses the setting
    unless ipywidgets is installed (it draws its bar there with widgets, and draws none
    without them), so a notebook keeps DuckDB's own choice."""
    with suppress(duckdb.InvalidInputException):
        connection.execute("set enable_progress_bar = false")


def _checked_table(name: str) -> str:
    if not _IDENTIFIER.match(name):
        msg = f"Table name {name!r} is not of the form schema.table (lower case)."
        raise JourneyError(msg)
    return name


def _quoted(column: str) -> str:
    """A column name as a DuckDB identifier (double quotes, inner quotes doubled)."""
    return '"' + column.replace('"', '""') + '"'


class Warehouse:
    """Handles all interactions with the DuckDB file.

    Use as a context manager so the connection (and DuckDB's file lock) is held only while
    needed::

        with Warehouse.open("journeys.duckdb") as wh:
            events = wh.read("core.events")
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._con = connection
        self._in_transaction = False
        self._con.execute("set TimeZone = 'UTC'")
        # A partitioned COPY (copy_to_parquet) holds up to this many rows per partition and
        # thread before writing them: DuckDB's 524,288 held 3.9 GB for 10M events in 10
        # partitions, 50,000 holds 0.9 GB (and was as fast: 3.7 s against 5.5 s)
        self._con.execute("set partitioned_write_flush_threshold = 50000")

    @classmethod
    @contextmanager
    def open(
        cls,
        path: Path | str,
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
        spill_dir: Path | None = None,
    ) -> Iterator[Warehouse]:
        """Opens the database file (``":memory:"`` for an in-memory one) and closes it after.

        ``memory_limit`` (``"4GB"``) caps DuckDB's memory; beyond it DuckDB writes the
        intermediate results of large sorts, joins and aggregates to ``spill_dir``.
        """
        target = str(path)
        # Offline: DuckDB never downloads an extension (json, parquet and icu are built in).
        config = dict(_CONFIG)
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if spill_dir is not None:
            spill_dir.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(spill_dir)
        connection = duckdb.connect(":memory:", config=config)
        _quiet(connection)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            # Attached under a fixed name: a file called journeys.duckdb would otherwise be a
            # catalog named "journeys", which DuckDB cannot tell from the schema "journeys".
            quoted = target.replace("'", "''")
            mode = " (read_only)" if read_only else ""
            try:
                connection.execute(f"attach '{quoted}' as warehouse{mode}")
            except duckdb.Error as error:
                connection.close()
                if "lock" in str(error).lower():
                    msg = (
                        f"The database {target} is in use by another process (a running "
                        f"`journey run`, or a notebook holding it open). Wait for it to finish "
                        f"or close it, then try again.\nDuckDB said: {error}"
                    )
                    raise DatabaseLockedError(msg) from None
                raise
            connection.execute("use warehouse")
        try:
            yield cls(connection)
        finally:
            connection.close()

    def ensure_tables(self) -> None:
        """Creates every schema and every table of ``sql/tables/`` that does not exist yet,
        makes anew a derived table defined otherwise, and drops a kept table's primary key its
        definition no longer declares (``_drop_undeclared_keys``)."""
        for schema in SCHEMAS:
            self._con.execute(f"create schema if not exists {schema}")
        ddls = {
            ddl.stem: ddl.read_text(encoding="utf-8")
            for ddl in sorted((sql_dir() / "tables").glob("*.sql"))
        }
        # Derived tables are rebuilt from core.* (in full, or a day's customers at a time):
        # one made by an older version with other columns (or another primary key) is
        # dropped and made anew, rather than migrated. The marts' kept tables are among them:
        # their definitions are part of jobs.marts_fingerprint, so one made anew is followed
        # by a full marts build.
        present = self._columns()
        derived = {
            table: text
            for table, text in ddls.items()
            if table.split(".", maxsplit=1)[0] in DERIVED_SCHEMAS and table in present
        }
        wanted = self._ddl_columns(derived)
        for table in derived:
            if present[table] != wanted.get(table):
                self._con.execute(f"drop table {_checked_table(table)}")
        for text in ddls.values():
            self._con.execute(text)
        self._drop_undeclared_keys(ddls)

    def _drop_undeclared_keys(self, ddls: dict[str, str]) -> None:
        """Copies each kept table (not rebuilt by every run) whose primary key its DDL file no
        longer declares into the table the file makes: DuckDB cannot drop a primary key
        (core.events and core.customers had one before 2026-12-03). Once per database."""
        present = self._columns()
        keyed = {
            table: text
            for table, text in ddls.items()
            if table.split(".", maxsplit=1)[0] not in DERIVED_SCHEMAS
            and "primary key" not in text.lower()
            and any(column == "primary key" for column, _ in present.get(table, []))
        }
        wanted = self._ddl_columns(keyed)
        for table, text in keyed.items():
            unkeyed = [entry for entry in present[table] if entry[0] != "primary key"]
            if wanted.get(table) != unkeyed:
                continue
            name = _checked_table(table)
            schema, bare = name.split(".")
            with self._atomic():
                self._con.execute(f"alter table {name} rename to {bare}_keyed")
                self._con.execute(text)
                self._con.execute(f"insert into {name} select * from {schema}.{bare}_keyed")
                self._con.execute(f"drop table {schema}.{bare}_keyed")

    def _columns(self) -> dict[str, list[tuple[str, str]]]:
        """Every table of the current catalog with its columns (name, type) in order, then
        its primary key (``("primary key", "a, b")``) if it has one."""
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in self._con.execute(
            "select table_schema || '.' || table_name, column_name, data_type "
            "from information_schema.columns where table_catalog = current_database() "
            "order by table_schema, table_name, ordinal_position"
        ).fetchall():
            columns.setdefault(table, []).append((column, kind))
        for table, key in self._con.execute(
            "select schema_name || '.' || table_name, array_to_string(constraint_column_names, "
            "', ') from duckdb_constraints() where database_name = current_database() "
            "and constraint_type = 'PRIMARY KEY'"
        ).fetchall():
            columns.setdefault(table, []).append(("primary key", key))
        return columns

    def _ddl_columns(self, ddls: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
        """The columns the DDL files of these tables create, found by running them in a
        scratch catalog."""
        if not ddls:
            return {}
        current = self._con.execute("select current_database()").fetchall()
        self._con.execute("attach if not exists ':memory:' as ddl_scratch")
        self._con.execute("use ddl_scratch")
        try:
            for table, ddl in ddls.items():
                self._con.execute(f"create schema if not exists {table.split('.', maxsplit=1)[0]}")
                self._con.execute(ddl)
            return self._columns()
        finally:
            for table in ddls:
                self._con.execute(f"drop table if exists {_checked_table(table)}")
            self._con.execute(f"use {current[0][0] if current else 'memory'}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together, or not at all."""
        self._con.execute("begin transaction")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._con.execute("rollback")
            raise
        finally:
            self._in_transaction = False
        self._con.execute("commit")

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Runs a query and returns its result as a Polars frame."""
        frame: pl.DataFrame = self._con.sql(sql, params=params or {}).pl()
        return frame

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Runs a statement that returns nothing (a delete, an update)."""
        self._con.execute(sql, params or {})

    def read(self, table: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The whole table as a Polars frame; with ``columns``, only those (read from disk)."""
        selected = "*" if columns is None else ", ".join(_quoted(column) for column in columns)
        return self.query(f"select {selected} from {_checked_table(table)}")

    def table_exists(self, table: str) -> bool:
        schema, name = _checked_table(table).split(".")
        found = self.query(
            "select count(*) as n from information_schema.tables "
            "where table_schema = $schema and table_name = $name",
            {"schema": schema, "name": name},
        ).item()
        return bool(found)

    def append(self, table: str, frame: pl.DataFrame) -> None:
        """Inserts the frame's rows, matching columns by name."""
        if frame.is_empty():
            return
        # Plain Arrow strings in one chunk: DuckDB takes them several times faster than
        # Polars' string views spread over the chunks of each parsed file
        self._con.register(
            "_incoming", frame.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
        )
        try:
            self._con.execute(
                f"insert into {_checked_table(table)} by name select * from _incoming"
            )
        finally:
            self._unregister("_incoming")

    def append_parquet(self, table: str, files: list[Path]) -> None:
        """Inserts the rows of Parquet files (written by Polars with the table's columns),
        matching columns by name; DuckDB reads them itself, in parallel."""
        if files:
            self._con.execute(
                f"insert into {_checked_table(table)} by name select * from read_parquet($files)",
                {"files": [str(path) for path in files]},
            )

    def copy_to_parquet(self, query: str, folder: Path, *, partition_by: str) -> list[Path]:
        """Writes the rows of ``query`` (registered frames may be named in it) to Parquet files
        under ``folder``, one folder per value of the ``partition_by`` column
        (``folder/<column>=<value>/``, without the column), by DuckDB itself: the rows never
        pass through Python. Returns those folders, in name order."""
        target = str(folder).replace("'", "''")
        self._con.execute(
            f"copy ({query}) to '{target}' "
            f"(format parquet, partition_by ({_quoted(partition_by)}), overwrite_or_ignore)"
        )
        return sorted(path for path in folder.glob(f"{partition_by}=*") if path.is_dir())

    def existing_keys(self, table: str, *, source: str, keys: pl.Series) -> pl.Series:
        """The ``record_key`` values among ``keys`` that ``table`` already holds for ``source``
        (none when the table does not exist yet)."""
        if keys.is_empty() or not self.table_exists(table):
            return pl.Series("record_key", [], dtype=pl.String)
        self._con.register("_keys", keys.to_frame("record_key").to_arrow())
        try:
            found = self.query(
                f"select record_key from {_checked_table(table)} where source = $source "
                "and record_key in (select record_key from _keys)",
                {"source": source},
            )
        finally:
            self._unregister("_keys")
        return found.get_column("record_key")

    @contextmanager
    def registered(self, **frames: pl.DataFrame) -> Iterator[None]:
        """Makes frames queryable by name (e.g. ``_ids``) for the statements inside."""
        for name, frame in frames.items():
            self._con.register(name, frame.to_arrow())
        try:
            yield
        finally:
            for name in frames:
                self._unregister(name)

    def delete(self, table: str, where: str, params: dict[str, Any] | None = None) -> int:
        """Deletes the rows of ``table`` that match ``where`` (SQL built from column names,
        values only as ``$name`` parameters or registered frames); returns how many."""
        deleted = self._con.execute(
            f"delete from {_checked_table(table)} where {where}", params or {}
        ).fetchone()
        return int(deleted[0]) if deleted else 0

    def update_from(self, table: str, frame: pl.DataFrame, *, key: str, column: str) -> int:
        """Sets ``column`` of the rows whose ``key`` is in the frame to the frame's value,
        where it differs (nulls compare as values); returns how many rows changed."""
        name, key_, column_ = _checked_table(table), _quoted(key), _quoted(column)
        with self.registered(_updates=frame.select(key, column)):
            changed = self._con.execute(
                f"update {name} set {column_} = u.{column_} from _updates u "
                f"where {name}.{key_} = u.{key_} and {name}.{column_} is distinct from u.{column_}"
            ).fetchone()
        return int(changed[0]) if changed else 0

    def tables(self, schema: str) -> dict[str, list[str]]:
        """The tables of a schema with their column names."""
        rows = self.query(
            "select table_schema || '.' || table_name as name, list(column_name) as columns "
            "from information_schema.columns where table_schema = $schema group by all "
            "order by name",
            {"schema": schema},
        ).rows()
        return {name: list(columns) for name, columns in rows}

    def replace(self, table: str, frame: pl.DataFrame) -> None:
        """Replaces every row of the table with the frame's rows (in one transaction)."""
        with self._atomic():
            self.empty(table)
            self.append(table, frame)

    def empty(self, table: str) -> None:
        """Removes every row of the table by making it anew from its own definition (columns,
        constraints): DuckDB commits that many times faster than deleting every row of a table
        with a primary key and inserting the same keys again (at 1M events 1 s against 30 s).
        """
        name = _checked_table(table)
        schema, bare = name.split(".")
        found = self._con.execute(
            "select sql from duckdb_tables() where database_name = current_database() "
            "and schema_name = $schema and table_name = $name",
            {"schema": schema, "name": bare},
        ).fetchall()
        if not found:
            msg = f"Table {name} does not exist."
            raise JourneyError(msg)
        with self._atomic():
            self._con.execute(f"drop table {name}")
            self._con.execute(found[0][0])

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction of its own, unless the caller's :meth:`transaction` is open."""
        if self._in_transaction:
            yield
        else:
            with self.transaction():
                yield

    def replace_if_changed(self, table: str, frame: pl.DataFrame) -> None:
        """:meth:`replace`, unless the table holds the frame's rows already, in its order (a
        re-run over the same journeys writes nothing): for a large table with a primary key,
        reading it costs less than building its index again."""
        if not self.read(table).equals(frame):
            self.replace(table, frame)

    def ensure_raw_table(self, table: str, frame: pl.DataFrame) -> None:
        """Creates a ``raw.*`` table shaped like the frame, or adds the frame's new columns to
        it (a newer parser may keep more fields; older rows get nulls).

        Raw tables mirror the parsed source rows, so their shape is defined in ``ingest.py``
        next to the parser rather than in a DDL file.
        """
        name = _checked_table(table)
        self._con.register("_shape", frame.head(0).to_arrow())
        try:
            self._con.execute(f"create table if not exists {name} as select * from _shape")
            wanted = self.query("select column_name, column_type from (describe _shape)").rows()
            schema, bare = name.split(".")
            present = set(
                self.query(
                    "select column_name from information_schema.columns "
                    "where table_schema = $schema and table_name = $name",
                    {"schema": schema, "name": bare},
                ).get_column("column_name")
            )
            for column, column_type in wanted:
                if column not in present:
                    self._con.execute(f'alter table {name} add column "{column}" {column_type}')
        finally:
            self._unregister("_shape")

    def _unregister(self, name: str) -> None:
        # Inside a failed transaction this raises too; the first error is the one to report.
        with suppress(duckdb.Error):
            self._con.unregister(name)

    def query_file(self, name: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Runs the query ``sql/queries/<name>.sql`` with ``$name`` parameters and returns
        its result as a Polars frame."""
        query = (sql_dir() / "queries" / f"{name}.sql").read_text(encoding="utf-8")
        return self.query(query, params)

    def build_mart(self, table: str, params: dict[str, Any] | None = None) -> None:
        """Recomputes a mart from its query file ``sql/marts/<name>.sql``."""
        name = _checked_table(table).split(".")[1]
        query = (sql_dir() / "marts" / f"{name}.sql").read_text(encoding="utf-8")
        self._con.execute(f"delete from {table}")
        self._con.execute(f"insert into {table} by name {query}", params or {})
