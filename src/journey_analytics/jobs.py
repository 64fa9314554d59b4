"""Jobs: what each Prefect task calls. Read from the warehouse or files, call the pure stage
functions, write back. No analytics logic lives here, and none lives in ``pipelines/``.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeGuard
from zoneinfo import available_timezones

import networkx as nx
import polars as pl
import polars.selectors as cs

from journey_analytics import (
    attribution,
    audiences,
    dashboards,
    evaluate,
    graphs,
    identity,
    incremental,
    ingest,
    journeys,
    leakage,
    personas,
    privacy,
    reconstruct,
)
from journey_analytics import patterns as pattern_rules
from journey_analytics.config import (
    DATABASE_ENV,
    CrmSource,
    PosSource,
    SegmentSource,
    Settings,
    TableSource,
)
from journey_analytics.errors import (
    ConfigError,
    JourneyError,
    NotFoundError,
    RejectRateError,
    SourceError,
    format_problems,
)
from journey_analytics.taxonomy import load_referrers, load_taxonomy
from journey_analytics.warehouse import Warehouse, sql_dir

IDENTIFIER_COLUMNS = (
    "anonymous_id",
    "user_id",
    "email_hash",
    "phone_hash",
    "loyalty_id",
    "payment_hash",
)
# built with the marts, after them (build_personas)
PERSONA_MARTS = (
    "marts.personas",
    "marts.customer_personas",
    "marts.persona_funnel",
    "marts.persona_dropoffs",
    "marts.persona_patterns",
    "marts.persona_transitions",
    "marts.persona_paths",
)
MARTS = (
    "marts.transitions",
    "marts.transition_nodes",
    "marts.journey_segments",
    "marts.leakage",
    "marts.dropoffs",
    "marts.funnel",
    "marts.patterns",
    "marts.paths",
    "marts.attribution",
    "marts.period_kpis",
    "marts.pattern_periods",
    "marts.pattern_kpis",
    "marts.segment_kpis",
    "marts.touchpoint_scorecard",
    "marts.audience_members",
    *PERSONA_MARTS,
)
STEP_COLUMNS = (
    "journey_id",
    "position",
    "event_id",
    "customer_key",
    "session_id",
    "occurred_at",
    "touchpoint",
    "channel",
    "stage",
    "is_conversion",
    "is_fulfilment",
    "store_id",
    "revenue",
)


@dataclass(frozen=True)
class BatchReport:
    """What happened to one source file."""

    source: str
    file: str
    status: str  # loaded | skipped (already loaded, same checksum)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    rows_erased: int = 0  # of the rejected: rows of a person erased by `journey forget`


@dataclass(frozen=True)
class CoreReport:
    events: int
    customers: int
    identifiers: int
    links: int
    links_dropped: int
    # loaded rows that make no event yet, by reason (e.g. receipt lines whose receipt has not
    # arrived); they stay in raw and become events when what they wait for is loaded
    pending: dict[str, int] = field(default_factory=dict)
    stitch_mode: str = "full"  # or "incremental": only the groups new links touch
    identifiers_decided: int = 0
    identity_changes: int = 0  # rows of the merge ledger (ops.identity_changes)
    mode: str = "full"  # or "incremental": only the rows of batches loaded since the last build
    events_written: int = 0  # events inserted or made anew by this build
    events_rekeyed: int = 0  # events already stored whose customer_key this build changed


@dataclass(frozen=True)
class JourneyReport:
    sessions: int
    journeys: int
    conversions: int
    dropped: int
    open: int
    patterns: dict[str, int] = field(default_factory=dict)
    mode: str = "full"  # or incremental: only the customers whose events changed
    customers: int = 0  # customers with events
    customers_rebuilt: int = 0


def _open(settings: Settings, *, read_only: bool = False) -> AbstractContextManager[Warehouse]:
    """The run's database, with the config's memory limit for DuckDB (spilling to
    ``<work_dir>/duckdb-spill`` beyond it)."""
    limit = settings.scale.memory_limit
    return Warehouse.open(
        settings.database_path,
        read_only=read_only,
        memory_limit=limit,
        spill_dir=settings.work_path / "duckdb-spill" if limit else None,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _display(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _files(settings: Settings, pattern: str) -> list[Path]:
    base = settings.resolve(pattern)
    files = sorted(base.parent.glob(base.name))
    if not files:
        msg = f"No file matches {pattern!r} (looked for {base}); check the sources in the config."
        raise SourceError(msg)
    return files


def _read_stores(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False)
    except FileNotFoundError:
        msg = f"Stores file {path} not found (config key: stores)."
        raise SourceError(msg) from None


def store_regions(settings: Settings) -> dict[str, str]:
    """store_id -> region, from the stores file's optional ``region`` column (stores with
    an empty region are in none)."""
    stores = _read_stores(settings.resolve(settings.stores))
    if not {"store_id", "region"} <= set(stores.columns):
        return {}
    return dict(stores.select("store_id", "region").drop_nulls().iter_rows())


def store_zones(settings: Settings) -> dict[str, str]:
    """store_id -> IANA time zone, from the stores file named in the config.

    Raises:
        SourceError: naming the file and every line whose store id or zone is unusable.
    """
    path = settings.resolve(settings.stores)
    stores = _read_stores(path)
    missing = {"store_id", "timezone"} - set(stores.columns)
    if missing:
        msg = (
            f"{path}: expected columns store_id and timezone; missing {', '.join(sorted(missing))}"
        )
        raise SourceError(msg)
    problems, zones = [], {}
    for line_no, (store_id, zone) in enumerate(
        stores.select("store_id", "timezone").iter_rows(), start=2
    ):
        if not store_id:
            problems.append(f"line {line_no}: store_id is empty")
        elif store_id in zones:
            problems.append(f"line {line_no}: store_id {store_id!r} is listed twice")
        elif zone not in available_timezones():
            problems.append(
                f"line {line_no}: timezone of {store_id}: expected an IANA zone such as "
                f"Europe/Rome, found {zone!r}"
            )
        else:
            zones[store_id] = zone
    if problems:
        raise SourceError(format_problems(f"{path} is not a valid stores file", problems))
    return zones


class Parser(Protocol):
    """A ``parse_*`` function of ``ingest`` with its options bound."""

    def __call__(self, data: bytes, *, file: str) -> ingest.Parsed: ...


@dataclass
class _Batch:
    """One parsed file waiting to be written."""

    report: BatchReport  # rows_loaded and rows_duplicate are counted when it is written
    raw_table: str
    rows: pl.DataFrame  # accepted, duplicates not dropped yet
    shape: pl.DataFrame  # the columns the parser gives, for ``ensure_raw_table``
    rejects: pl.DataFrame
    checksum: str
    batch_id: str
    started_at: datetime
    stat: tuple[int, int]  # the file's size and modification time (ns) before it was read


def _stat(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _unchanged(wh: Warehouse, source: str, file: str, stat: tuple[int, int]) -> bool:
    """Whether ``ops.batches`` holds this file of ``source``, loaded when it had this size and
    modification time: then it is skipped without being read (a daily job would otherwise
    hash every file it ever loaded, each morning). A file rewritten in place keeps neither,
    unless it is written back with the same size and its old time set on purpose."""
    found = wh.query(
        "select count(*) as n from ops.batches where source = $source and file = $file "
        "and file_bytes = $bytes and file_modified_ns = $modified",
        {"source": source, "file": file, "bytes": stat[0], "modified": stat[1]},
    ).item()
    return bool(found)


def _parse_file(
    wh: Warehouse,
    *,
    source: str,
    path: Path,
    raw_table: str,
    parser: Parser,
    base: Path,
    waiting: list[_Batch],
    checksum: str | None = None,
) -> _Batch | BatchReport:
    """Parses one file; a file loaded before unchanged (``_unchanged``), or whose checksum was
    loaded (or is waiting), is skipped. ``checksum``: the file's, when known."""
    file = _display(path, base)
    stat = _stat(path)
    if _unchanged(wh, source, file, stat):
        return BatchReport(source, file, "skipped")
    data = path.read_bytes()
    checksum = checksum or hashlib.sha256(data).hexdigest()
    if _loaded(wh, source, checksum):
        # touched, or loaded before the times were kept: the next run need not read it
        wh.execute(
            "update ops.batches set file_bytes = $bytes, file_modified_ns = $modified "
            "where source = $source and file = $file and checksum = $checksum",
            {
                "bytes": stat[0],
                "modified": stat[1],
                "source": source,
                "file": file,
                "checksum": checksum,
            },
        )
        return BatchReport(source, file, "skipped")
    if any(b.checksum == checksum and b.report.source == source for b in waiting):
        return BatchReport(source, file, "skipped")
    started_at = _now()
    batch_id = f"{source}:{checksum[:16]}"
    parsed = parser(data, file=file)
    rows = parsed.rows.with_columns(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(source).alias("source"),
        pl.lit(started_at, dtype=ingest.UTC_TIME).alias("ingested_at"),
    )
    report = BatchReport(source, file, "loaded", parsed.rows_read, 0, 0, parsed.rejects.height)
    rejects = parsed.rejects.with_columns(
        pl.lit(batch_id).alias("batch_id"), pl.lit(source).alias("source")
    )
    return _Batch(
        report, raw_table, rows, rows.head(0), rejects, checksum, batch_id, started_at, stat
    )


# What an unmapped reject's detail names, by the raw table its parser fills.
_UNMAPPED = {
    "event": ("segment", "raw.clickstream"),
    "type": ("crm", "raw.crm_interactions"),
    "line_type": ("pos", "raw.pos_lines"),
}
_UNMAPPED_DETAIL = re.compile(r"^(event|type|line_type) ('.*'|\".*\") is not in the taxonomy$")


def _unmapped_name(detail: str) -> tuple[str, str] | None:
    """(what, name) from an ``unmapped_event`` reject's detail, e.g. ("event", "Wishlist")."""
    found = _UNMAPPED_DETAIL.match(detail)
    if found is None:
        return None
    name = ast.literal_eval(found.group(2))
    return (found.group(1), name) if isinstance(name, str) else None


def retry_unmapped(
    wh: Warehouse,
    *,
    parsers: dict[tuple[str, str], Parser],
    known: dict[str, frozenset[str]],
    base: Path,
) -> list[BatchReport]:
    """Loads the rows quarantined as ``unmapped_event`` whose name the taxonomy now knows.

    Their raw text is masked, so each such file is read again (when it is still there with the
    checksum it was loaded with), parsed with today's taxonomy, and the rows of those lines
    are loaded into their batch; the rejects go, and the batch's counts follow.
    """
    rejects = wh.query(
        "select q.batch_id, q.source, q.line_no, q.detail, b.file, b.checksum "
        "from quarantine.rejects q join ops.batches b using (batch_id) "
        "where q.reason = 'unmapped_event' order by q.batch_id, q.line_no"
    )
    retry: dict[tuple[str, str, str, str, str], set[int]] = {}
    for batch_id, source, line_no, detail, file, checksum in rejects.iter_rows():
        unmapped = _unmapped_name(detail)
        if unmapped is None:
            continue
        kind, raw_table = _UNMAPPED[unmapped[0]]
        if unmapped[1] in known[kind] and (source, raw_table) in parsers:
            retry.setdefault((batch_id, source, file, checksum, raw_table), set()).add(line_no)
    reports = []
    for (batch_id, source, file, checksum, raw_table), lines in retry.items():
        path = base / file
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != checksum:
            continue  # the file is gone or changed: its rejects stay as they are
        parsed = _reading(parsers[source, raw_table], path)(data, file=file)
        rows = parsed.rows.filter(pl.col("line_no").is_in(sorted(lines))).with_columns(
            pl.lit(batch_id).alias("batch_id"),
            pl.lit(source).alias("source"),
            pl.lit(_now(), dtype=ingest.UTC_TIME).alias("ingested_at"),
        )
        existing = wh.existing_keys(raw_table, source=source, keys=rows.get_column("record_key"))
        fresh, duplicates = ingest.drop_duplicates(rows, existing_keys=existing)
        released = sorted(rows.get_column("line_no").to_list())
        wh.ensure_raw_table(raw_table, rows.head(0))  # before the transaction: see _write
        with wh.transaction():
            wh.append(raw_table, fresh)
            wh.execute(
                "delete from quarantine.rejects where batch_id = $batch_id "
                "and reason = 'unmapped_event' and list_contains($lines, line_no)",
                {"batch_id": batch_id, "lines": released},
            )
            # the batch is read again by the next core build (its other rows are made anew
            # as they were)
            wh.execute(
                "delete from ops.core_batches where batch_id = $batch_id", {"batch_id": batch_id}
            )
            wh.execute(
                "update ops.batches set rows_loaded = rows_loaded + $loaded, "
                "rows_duplicate = rows_duplicate + $duplicates, "
                "rows_rejected = rows_rejected - $released where batch_id = $batch_id",
                {
                    "batch_id": batch_id,
                    "loaded": fresh.height,
                    "duplicates": duplicates,
                    "released": len(released),
                },
            )
        reports.append(BatchReport(source, file, "reloaded", 0, fresh.height, duplicates, 0))
    return reports


def _write(
    wh: Warehouse,
    waiting: list[_Batch],
    *,
    fingerprint: str,
    reports: list[BatchReport],
    key: str,
) -> None:
    """Writes the waiting files in one transaction: all of them, or none (a crash leaves the
    database as before them, and the next run loads them again). Their reports in
    ``reports`` get the rows loaded and the duplicates dropped."""
    if not waiting:
        return
    fresh = _without_duplicates(wh, waiting)
    erased = _without_erased(wh, waiting, fresh, key=key)
    batches = []
    for b, rows, gone in zip(waiting, fresh, erased, strict=True):
        report = replace(
            b.report,
            rows_loaded=rows.height,
            rows_duplicate=b.rows.height - rows.height - gone.height,
            rows_rejected=b.report.rows_rejected + gone.height,
            rows_erased=gone.height,
        )
        b.rejects = pl.concat([b.rejects, gone], how="diagonal_relaxed")
        reports[next(i for i, r in enumerate(reports) if r is b.report)] = report
        batches.append(
            {
                "batch_id": b.batch_id,
                "source": report.source,
                "file": report.file,
                "checksum": b.checksum,
                "rows_read": report.rows_read,
                "rows_loaded": report.rows_loaded,
                "rows_duplicate": report.rows_duplicate,
                "rows_rejected": report.rows_rejected,
                "status": "loaded",
                "key_fingerprint": fingerprint,
                "started_at": b.started_at,
                "finished_at": _now(),
                "file_bytes": b.stat[0],
                "file_modified_ns": b.stat[1],
            }
        )
    # A table created (or altered) in the transaction that then fills it with whole row groups
    # shows DuckDB 2.0's scans none of those rows after the commit, until a checkpoint: the
    # next group's duplicate check would not see them. Shape the tables first, on their own.
    for b in waiting:
        wh.ensure_raw_table(b.raw_table, b.shape)
    with wh.transaction():
        for table in dict.fromkeys(b.raw_table for b in waiting):
            mine = [i for i, b in enumerate(waiting) if b.raw_table == table]
            wh.append(table, pl.concat([fresh[i] for i in mine], how="diagonal_relaxed"))
        wh.append("quarantine.rejects", pl.concat([b.rejects for b in waiting]))
        wh.append("ops.batches", pl.DataFrame(batches))
    waiting.clear()


def erased_digests(kinds_and_values: pl.DataFrame, *, key: str) -> pl.Series:
    """The keyed digest that ``ops.erased_identifiers`` keeps of an identifier (type and
    stored value): it tells an erased person's identifier when it comes back, and tells
    nothing without the key."""
    text = pl.concat_str("identifier_type", pl.lit(":"), "identifier_value")
    return privacy.keyed_hash(kinds_and_values.select(text).to_series(), key=key)


def _without_erased(
    wh: Warehouse, waiting: list[_Batch], fresh: list[pl.DataFrame], *, key: str
) -> list[pl.DataFrame]:
    """Takes out of ``fresh`` (in place) the rows that carry an identifier of a person erased
    by ``journey forget`` (a CRM export written before the erasure reached it, say), and
    returns them as rejects with reason ``erased`` and no text."""
    digests = wh.query("select identifier_digest from ops.erased_identifiers")
    gone = [b.rejects.clear() for b in waiting]
    if digests.is_empty():
        return gone
    known = digests.get_column("identifier_digest").implode()
    for i, rows in enumerate(fresh):
        columns = [c for c in identity.IDENTIFIER_TYPES if c in rows.columns]
        if not columns or rows.is_empty():
            continue
        flagged = pl.repeat(value=False, n=rows.height, eager=True)
        for column in columns:
            values = rows.select(
                pl.lit(column).alias("identifier_type"),
                pl.col(column).alias("identifier_value"),
            )
            flagged |= erased_digests(values, key=key).is_in(known).fill_null(value=False)
        if not flagged.any():
            continue
        fresh[i] = rows.filter(~flagged)
        gone[i] = rows.filter(flagged).select(
            "batch_id",
            "source",
            "file",
            "line_no",
            pl.lit("erased").alias("reason"),
            pl.lit("carries an identifier of a person erased by `journey forget`").alias("detail"),
            pl.lit(None, dtype=pl.String).alias("raw_text"),
        )
    return gone


def _without_duplicates(wh: Warehouse, waiting: list[_Batch]) -> list[pl.DataFrame]:
    """Each waiting file's rows less the duplicates: of a row loaded before, or of an earlier
    row of the same source (in the file or in one before it). One look at the table for all
    the files of a source, not one per file."""
    fresh: list[pl.DataFrame] = [b.rows for b in waiting]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, b in enumerate(waiting):
        groups.setdefault((b.raw_table, b.report.source), []).append(i)
    for (table, source), members in groups.items():
        keys = pl.concat([waiting[i].rows.get_column("record_key") for i in members])
        existing = wh.existing_keys(table, source=source, keys=keys)
        kept = ingest.fresh_rows(keys, existing_keys=existing)
        start = 0
        for i in members:
            height = waiting[i].rows.height
            fresh[i] = waiting[i].rows.filter(kept.slice(start, height))
            start += height
    return fresh


def _reading(parser: Parser, path: Path, ahead: _ReadAhead | None = None) -> Parser:
    """The Segment parser takes what DuckDB read of the file ahead (``_SegmentReader``), or reads
    the file itself; the others parse the bytes already read for the checksum."""
    if not _is_segment(parser):
        return parser
    if ahead is not None:
        return partial(ingest.parse_segment_fields, fields=ahead.fields, **parser.keywords)
    return partial(parser, path=path)


def _is_segment(parser: Parser) -> TypeGuard[partial[ingest.Parsed]]:
    """Whether ``parser`` is the Segment parser with its options bound."""
    return isinstance(parser, partial) and parser.func is ingest.parse_segment


@dataclass
class _ReadAhead:
    """What DuckDB read of a Segment file ahead of parsing it (nothing for a file loaded
    before, which is skipped)."""

    fields: pl.DataFrame | None
    checksum: str


class _SegmentReader:
    """Reads a run's Segment files with DuckDB ahead of parsing them, in groups of files of
    one source of about ``rows`` lines: one statement per file would leave a core idle for
    every file smaller than DuckDB's buffer (``ingest.read_segment_files``).

    The next group is read on a second thread while the files of the current one are parsed
    and written: DuckDB and Polars let go of Python's lock while they work, so the parts of
    a load that use one core (hashing, Python, the append) overlap DuckDB's reading. Files
    loaded before unchanged are not even hashed, files with a checksum loaded before or met
    earlier in the run are hashed but not read; their turn skips them.
    """

    def __init__(
        self,
        wh: Warehouse,
        files: list[tuple[str, Path, str, Parser]],
        *,
        rows: int,
        pool: ThreadPoolExecutor,
        base: Path,
    ) -> None:
        self._wh = wh
        self._files = files
        self._rows = rows
        self._pool = pool
        self._base = base
        # a file's read and checksum; neither for a file loaded before unchanged
        self._ahead: dict[Path, tuple[Future[dict[Path, pl.DataFrame | None]], str] | None] = {}
        self._firsts: set[Path] = set()  # the first file of each group
        self._seen: set[tuple[str, str]] = set()  # (source, checksum) of every file planned
        self._end = 0  # the index after the last file planned

    def take(self, index: int) -> _ReadAhead | None:
        """What DuckDB read of the file at ``index`` of ``files`` (None if not Segment)."""
        _, path, _, parser = self._files[index]
        if not _is_segment(parser):
            return None
        if path not in self._ahead:
            self._plan(index)
        if path in self._firsts:
            self._firsts.discard(path)
            if self._end < len(self._files) and _is_segment(self._files[self._end][3]):
                self._plan(self._end)
        ahead = self._ahead.pop(path)
        if ahead is None:
            return None
        future, checksum = ahead
        return _ReadAhead(future.result().get(path), checksum)

    def _plan(self, start: int) -> None:
        """Hashes the group of files that begins at ``start`` and has DuckDB read it."""
        source, first, _, parser = self._files[start]
        lines: dict[Path, int] = {}
        checksums: dict[Path, str] = {}
        end = start
        for name, path, _, other in self._files[start:]:
            if name != source or other is not parser or sum(lines.values()) >= self._rows:
                break
            end += 1
            if _unchanged(self._wh, source, _display(path, self._base), _stat(path)):
                self._ahead[path] = None
                continue
            data = path.read_bytes()
            checksums[path] = checksum = hashlib.sha256(data).hexdigest()
            if (source, checksum) not in self._seen and not _loaded(self._wh, source, checksum):
                self._seen.add((source, checksum))
                lines[path] = ingest.line_count(data)
        future = self._pool.submit(ingest.read_segment_files, lines)
        self._ahead |= {path: (future, checksum) for path, checksum in checksums.items()}
        self._firsts.add(first)
        self._end = max(self._end, end)


def _loaded(wh: Warehouse, source: str, checksum: str) -> bool:
    """Whether ``ops.batches`` holds a file of ``source`` with this checksum."""
    found = wh.query(
        "select count(*) as n from ops.batches where source = $source and checksum = $checksum",
        {"source": source, "checksum": checksum},
    ).item()
    return bool(found)


def ingest_sources(
    settings: Settings, *, sources: Collection[str] | None = None
) -> list[BatchReport]:
    """Loads every new file of the configured sources (or of the ones named in ``sources``)
    into ``raw.*``, ``quarantine.rejects`` and ``ops.batches``."""
    taxonomy = load_taxonomy(settings.resolve(settings.taxonomy) if settings.taxonomy else None)
    known = {
        kind: frozenset(taxonomy.filter(pl.col("source_kind") == kind).get_column("event_name"))
        for kind in ("segment", "crm", "pos")
    }
    key = settings.hash_key()
    blocked = frozenset(value.strip().lower() for value in settings.identity.blocked_values)
    zones = store_zones(settings)
    plan: list[tuple[str, str, str, Parser]] = []
    for name, source in settings.sources.items():
        if sources is not None and name not in sources:
            continue
        if isinstance(source, SegmentSource):
            segment = partial(
                ingest.parse_segment,
                known_events=known["segment"],
                hash_key=key,
                blocked_values=blocked,
            )
            plan.append((name, source.path, "raw.clickstream", segment))
        elif isinstance(source, CrmSource):
            contacts = partial(ingest.parse_crm_contacts, hash_key=key, blocked_values=blocked)
            interactions = partial(
                ingest.parse_crm_interactions,
                known_events=known["crm"],
                hash_key=key,
                blocked_values=blocked,
            )
            plan.append((name, source.contacts, "raw.crm_contacts", contacts))
            plan.append((name, source.interactions, "raw.crm_interactions", interactions))
        elif isinstance(source, TableSource):
            table = partial(
                ingest.parse_table,
                columns=source.columns.mapped(),
                hash_key=key,
                file_format=source.format,
                delimiter=source.delimiter,
                timezone=source.timezone,
                blocked_values=blocked,
            )
            plan.append((name, source.path, "raw.tables", table))
        elif isinstance(source, PosSource):
            receipts = partial(
                ingest.parse_pos_receipts, store_zones=zones, hash_key=key, blocked_values=blocked
            )
            lines = partial(ingest.parse_pos_lines, known_events=known["pos"])
            plan.append((name, source.receipts, "raw.pos_receipts", receipts))
            plan.append((name, source.lines, "raw.pos_lines", lines))
    # Every glob resolves before anything loads: a missing source stops the run up front.
    files = [
        (name, path, table, parser)
        for name, pattern, table, parser in plan
        for path in _files(settings, pattern)
    ]
    fingerprint = key_fingerprint(key)
    reports: list[BatchReport] = []
    with _open(settings) as wh:
        wh.ensure_tables()
        check_key(wh, fingerprint)
        reports += retry_unmapped(
            wh,
            parsers={(name, table): parser for name, _, table, parser in plan},
            known=known,
            base=settings.base_dir,
        )
        waiting: list[_Batch] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment-reader") as pool:
            reader = _SegmentReader(
                wh, files, rows=settings.ingest.commit_rows, pool=pool, base=settings.base_dir
            )
            for index, (name, path, raw_table, parser) in enumerate(files):
                ahead = reader.take(index)
                parsed = _parse_file(
                    wh,
                    source=name,
                    path=path,
                    raw_table=raw_table,
                    parser=_reading(parser, path, ahead),
                    checksum=ahead.checksum if ahead else None,
                    base=settings.base_dir,
                    waiting=waiting,
                )
                if isinstance(parsed, BatchReport):
                    reports.append(parsed)
                    continue
                reports.append(parsed.report)
                waiting.append(parsed)
                # DuckDB writes whole row groups (122,880 rows) straight to the file; a small
                # commit goes through its write-ahead log first, which costs several times more
                if sum(b.rows.height for b in waiting) >= settings.ingest.commit_rows:
                    _write(wh, waiting, fingerprint=fingerprint, reports=reports, key=key)
        _write(wh, waiting, fingerprint=fingerprint, reports=reports, key=key)
    check_reject_rates(reports, max_rate=settings.ingest.max_reject_rate)
    return reports


def check_reject_rates(reports: list[BatchReport], *, max_rate: float) -> None:
    """Fails loudly when a source rejected more than ``max_rate`` of the rows it read in this
    run (counted per source, so one bad row in a small weekly file does not trip it).

    Raises:
        RejectRateError: naming each such source with its counts and its worst files.
    """
    over = []
    for source in sorted({report.source for report in reports}):
        mine = [report for report in reports if report.source == source]
        read = sum(report.rows_read for report in mine)
        # rows of an erased person are not bad rows
        rejected = sum(report.rows_rejected - report.rows_erased for report in mine)
        if read and rejected / read > max_rate:
            worst = sorted(mine, key=lambda report: -report.rows_rejected)[:3]
            files = ", ".join(f"{r.file} ({r.rows_rejected:,})" for r in worst if r.rows_rejected)
            over.append(
                f"{source}: {rejected:,} of {read:,} rows rejected ({rejected / read:.1%}), "
                f"most in {files}"
            )
    if over:
        title = (
            f"More than {max_rate:.1%} of the rows of a source were rejected (ingest."
            "max_reject_rate); their valid rows are loaded. "
            "See `journey status` and quarantine.rejects"
        )
        raise RejectRateError(format_problems(title, over))


def key_fingerprint(key: str) -> str:
    """A value that tells hashing keys apart without revealing them."""
    return hmac.new(key.encode(), b"journey-analytics key fingerprint", "sha256").hexdigest()[:16]


def check_key(wh: Warehouse, fingerprint: str) -> None:
    """Refuses a hashing key other than the one earlier batches were hashed with: the same
    e-mail would get another hash and every customer would split in two."""
    used = wh.query(
        "select distinct key_fingerprint from ops.batches where key_fingerprint <> $fingerprint",
        {"fingerprint": fingerprint},
    )
    if used.height:
        msg = (
            "The hashing key differs from the one the database was loaded with (ops.batches "
            f"key_fingerprint {used.item(0, 0)}, now {fingerprint}). Set JOURNEY_HASH_KEY (or "
            "[privacy] hash_key) to the original key, or load into a new database."
        )
        raise ConfigError(msg)


def _raw(wh: Warehouse, table: str, source: str, where: str = "true") -> pl.DataFrame | None:
    """A source's rows of a raw table (those ``where`` selects), without where in which file
    they were (no event carries it: reading the file names of a million rows costs as much
    as two columns)."""
    if not wh.table_exists(table):
        return None
    return wh.query(
        f"select * exclude (file, line_no) from {table} where source = $source and ({where})",
        {"source": source},
    )


# Rows of the batches registered as ``_batches`` (incremental builds).
_NEW_ROWS = "batch_id in (select batch_id from _batches)"


def _pos_rows(
    wh: Warehouse, source: str, *, incremental: bool
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """A POS source's receipts and lines: all of them, or (``incremental``) those of every
    receipt a new batch brought or brought lines of (a receipt's event is made anew with
    the lines that came after it)."""
    if not (wh.table_exists("raw.pos_receipts") and wh.table_exists("raw.pos_lines")):
        return None
    if not incremental:
        receipts, lines = _raw(wh, "raw.pos_receipts", source), _raw(wh, "raw.pos_lines", source)
        assert receipts is not None and lines is not None
        return receipts, lines
    touched = wh.query(
        f"select record_key as receipt_id from raw.pos_receipts where source = $source "
        f"and {_NEW_ROWS} union select receipt_id from raw.pos_lines where source = $source "
        f"and {_NEW_ROWS}",
        {"source": source},
    )
    with wh.registered(_receipts=touched):
        receipts = _raw(
            wh, "raw.pos_receipts", source, "record_key in (select receipt_id from _receipts)"
        )
        lines = _raw(
            wh, "raw.pos_lines", source, "receipt_id in (select receipt_id from _receipts)"
        )
    assert receipts is not None and lines is not None
    return receipts, lines


def canonical_events(
    wh: Warehouse,
    settings: Settings,
    taxonomy: pl.DataFrame,
    *,
    referrers: pl.DataFrame | None = None,
    batches: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The canonical events and CRM contact records of the raw tables: of every row, or of
    the rows of ``batches`` (a frame with ``batch_id``), with every event of a receipt that
    one of them brought lines of."""
    if batches is not None:
        with wh.registered(_batches=batches.select("batch_id")):
            return _canonical_events(wh, settings, taxonomy, referrers, incremental=True)
    return _canonical_events(wh, settings, taxonomy, referrers, incremental=False)


def _canonical_events(
    wh: Warehouse,
    settings: Settings,
    taxonomy: pl.DataFrame,
    referrers: pl.DataFrame | None,
    *,
    incremental: bool,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if referrers is None:
        referrers = load_referrers(
            settings.resolve(settings.referrers) if settings.referrers else None
        )
    where = _NEW_ROWS if incremental else "true"
    events = [pl.DataFrame(schema=ingest.EVENT_SCHEMA)]
    contacts = []
    for name, source in settings.sources.items():
        if isinstance(source, SegmentSource):
            rows = _raw(wh, "raw.clickstream", name, where)
            if rows is not None:
                events.append(
                    ingest.events_from_segment(
                        rows,
                        source=name,
                        channel=source.channel,
                        taxonomy=taxonomy,
                        referrers=referrers,
                    )
                )
        elif isinstance(source, CrmSource):
            rows = _raw(wh, "raw.crm_interactions", name, where)
            if rows is not None:
                events.append(ingest.events_from_crm(rows, source=name, taxonomy=taxonomy))
            contact_rows = _raw(wh, "raw.crm_contacts", name, where)
            if contact_rows is not None:
                contacts.append(contact_rows)
        elif isinstance(source, TableSource):
            rows = _raw(wh, "raw.tables", name, where)
            if rows is not None:
                events.append(
                    ingest.events_from_table(
                        rows,
                        source=name,
                        channel=source.channel,
                        taxonomy=taxonomy,
                        conversion_events=source.conversion_events,
                        stage=source.stage,
                        managed=source.managed,
                    )
                )
        elif isinstance(source, PosSource):
            pos = _pos_rows(wh, name, incremental=incremental)
            if pos is not None:
                events.append(ingest.events_from_pos(*pos, source=name, taxonomy=taxonomy))
    contact_frame = (
        pl.concat(contacts)
        if contacts
        else pl.DataFrame(schema={"source": pl.String, "created_at": ingest.UTC_TIME})
    )
    return pl.concat(events), contact_frame


def pending_rows(wh: Warehouse, settings: Settings) -> dict[str, int]:
    """Loaded rows that make no event yet, by reason: rows whose event name the taxonomy no
    longer has, receipt lines whose receipt has not arrived, receipts without lines (counted
    in the warehouse over every raw row: nothing is dropped unseen)."""
    pending: Counter[str] = Counter()
    events = wh.query("select source, count(*) as n from core.events group by source")
    made = dict(events.iter_rows())
    for name, source in settings.sources.items():
        table = (
            "raw.clickstream"
            if isinstance(source, SegmentSource)
            else "raw.crm_interactions"
            if isinstance(source, CrmSource)
            else None
        )
        if table and wh.table_exists(table):
            rows = wh.query(
                f"select count(*) from {table} where source = $source", {"source": name}
            ).item()
            pending["event name no longer in the taxonomy"] += max(rows - made.get(name, 0), 0)
        elif (
            isinstance(source, PosSource)
            and wh.table_exists("raw.pos_receipts")
            and wh.table_exists("raw.pos_lines")
        ):
            counts = wh.query(
                "select (select count(*) from raw.pos_lines l where l.source = $source and "
                "not exists (select 1 from raw.pos_receipts r where r.source = $source and "
                "r.record_key = l.receipt_id)) as orphans, "
                "(select count(*) from raw.pos_receipts r where r.source = $source and "
                "not exists (select 1 from raw.pos_lines l where l.source = $source and "
                "l.receipt_id = r.record_key)) as empty",
                {"source": name},
            ).row(0)
            pending["receipt lines without their receipt"] += counts[0]
            pending["receipts without lines"] += counts[1]
    return {reason: count for reason, count in pending.items() if count > 0}


# Raise when a change to the code that makes canonical events, identity evidence or customer
# keys of raw rows changes their rows: the next build is then full.
CORE_LOGIC_VERSION = 1


def core_fingerprint(settings: Settings, taxonomy: pl.DataFrame, referrers: pl.DataFrame) -> str:
    """sha256 of everything that makes events and identity evidence of raw rows besides the
    rows themselves: the sources' settings, the taxonomy, the referrer rules and the
    identity settings (a change in any of them makes the next build full)."""
    described = {
        "logic": CORE_LOGIC_VERSION,
        "sources": {
            name: source.model_dump(mode="json") for name, source in settings.sources.items()
        },
        "identity": settings.identity.model_dump(mode="json"),
        "taxonomy": taxonomy.write_csv(),
        "referrers": referrers.write_csv(),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


def _identity_records(events: pl.DataFrame, contacts: pl.DataFrame) -> pl.DataFrame:
    """What stitching reads of events and CRM contacts: source, time and identifiers."""
    return pl.concat(
        [
            events.select("source", pl.col("occurred_at").alias("seen_at"), *IDENTIFIER_COLUMNS),
            contacts.select(
                "source",
                pl.col("created_at").alias("seen_at"),
                *[c for c in IDENTIFIER_COLUMNS if c in contacts.columns],
            ),
        ],
        how="diagonal_relaxed",
    )


# What customer keys are decided from (identity.assign_customer_keys).
_KEYING_COLUMNS = ("event_id", "occurred_at", "is_conversion", "order_id", *IDENTIFIER_COLUMNS)


def _events_to_key_again(wh: Warehouse, made: pl.DataFrame, changed: pl.DataFrame) -> pl.DataFrame:
    """The stored events (their keying columns) whose customer key may change: those with an
    identifier whose customer changed or is new, and every event of an order that one of
    those or of the ``made`` events names (an event with no identifier of its own takes
    its order's customer). ``made`` events themselves are left out: they are stored anew."""
    columns = ", ".join(_KEYING_COLUMNS)
    by_identifier = " or ".join(
        f"{kind} in (select identifier_value from _changed where identifier_type = '{kind}')"
        for kind in IDENTIFIER_COLUMNS
    )
    with wh.registered(_changed=changed, _made=made.select("event_id", "order_id")):
        return wh.query(
            f"with orders as (select order_id from core.events where {by_identifier} "
            "union select order_id from _made) "
            f"select {columns} from core.events "
            "where event_id not in (select event_id from _made) and "
            f"({by_identifier} or order_id in "
            "(select order_id from orders where order_id is not null))"
        )


def build_core(settings: Settings, *, full: bool = False) -> CoreReport:
    """Builds ``core.events``, ``core.identity_links`` and ``core.customers`` from raw.

    Incremental when the inputs' fingerprint is that of the last build (and ``full`` is not
    asked): the events of the batches loaded since (and of the receipts they complete) are
    made and stored, identity evidence of their records is merged with the stored links
    and stitched again where it touches, and the stored events of customers that changed
    are keyed again. Equals a full build, row for row (``tests/test_stitching_runs.py``).
    """
    taxonomy = load_taxonomy(settings.resolve(settings.taxonomy) if settings.taxonomy else None)
    referrers = load_referrers(settings.resolve(settings.referrers) if settings.referrers else None)
    fingerprint = core_fingerprint(settings, taxonomy, referrers)
    with _open(settings) as wh:
        wh.ensure_tables()
        last = wh.query(
            "select inputs_fingerprint, events = (select count(*) from core.events) "
            "and identifiers = (select count(*) from core.customers) "
            "and links = (select count(*) from core.identity_links) "
            "from ops.core_runs order by run_at desc limit 1"
        )
        # (and the core tables hold what the last build left: not emptied or copied in since)
        incremental = not full and last.rows() == [(fingerprint, True)]
        batches = wh.query(
            "select batch_id, rows_loaded from ops.batches"
            + (" anti join ops.core_batches using (batch_id)" if incremental else "")
            + " order by started_at, batch_id"
        )
        inputs = _CoreInputs(taxonomy, referrers, fingerprint, batches)
        if incremental and _stitched_alike(wh, settings):
            return _build_core_on(wh, settings, inputs)
        previous = identity.Stitched(wh.read("core.identity_links"), wh.read("core.customers"))
        return _build_core_in_full(wh, settings, inputs, previous)


# The identity rows an incremental stitch can read (identity.restitch), found in the
# warehouse from the new records' identifiers (_later_ids): those identifiers and their
# partners, every identifier of their groups (_near), the links with an end among them, and
# the links whose weaker side is an end of one of those (whether an identifier is shared
# depends on every link where it is the weaker side).
_NEAR_IDENTIFIERS = """
create or replace temp table _near as
with seeds as (
    select identifier_type, identifier_value from _later_ids
    union
    select l.right_type, l.right_value from core.identity_links l
    semi join _later_ids i
        on l.left_type = i.identifier_type and l.left_value = i.identifier_value
    union
    select l.left_type, l.left_value from core.identity_links l
    semi join _later_ids i
        on l.right_type = i.identifier_type and l.right_value = i.identifier_value
)
select identifier_type, identifier_value from seeds
union
select c.identifier_type, c.identifier_value from core.customers c
where c.group_key in (
    select c.group_key from core.customers c
    semi join seeds using (identifier_type, identifier_value)
)
"""
_NEAR_LINKS = """
with touching as (
    select l.* from core.identity_links l
    semi join _near n on l.left_type = n.identifier_type and l.left_value = n.identifier_value
    union
    select l.* from core.identity_links l
    semi join _near n on l.right_type = n.identifier_type and l.right_value = n.identifier_value
),
ends as (
    select left_type as kind, left_value as value from touching
    union
    select right_type, right_value from touching
)
select * from touching
union
select l.* from core.identity_links l
semi join ends e on l.right_type = e.kind and l.right_value = e.value
"""


def _identity_around(wh: Warehouse, later: identity.Evidence) -> identity.Stitched:
    """The stored identity rows :func:`identity.restitch` reads for the evidence of new
    records (a superset: every row it could touch), read by DuckDB instead of the whole graph:
    at 10M events tens of thousands of rows instead of 3.1M links and 4.2M identifiers."""
    with wh.registered(_later_ids=later.identifiers.select(list(identity.IDENTIFIER_SCHEMA))):
        wh.execute(_NEAR_IDENTIFIERS)
    try:
        return identity.Stitched(
            wh.query(_NEAR_LINKS),
            wh.query(
                "select c.* from core.customers c "
                "semi join _near using (identifier_type, identifier_value)"
            ),
        )
    finally:
        wh.execute("drop table if exists _near")


def _build_core_on(wh: Warehouse, settings: Settings, inputs: _CoreInputs) -> CoreReport:
    """Makes the events of the new batches, decides again the identity groups their records
    touch (:func:`identity.restitch`) and keys again the stored events whose customer may
    have changed; only the rows that changed are written."""
    events, contacts = canonical_events(
        wh, settings, inputs.taxonomy, referrers=inputs.referrers, batches=inputs.batches
    )
    later = identity.evidence(
        _new_records(wh, events, contacts), blocked_values=settings.identity.blocked_values
    )
    del contacts
    previous = _identity_around(wh, later)
    restitched = identity.restitch(previous, later, identity_guards(settings))
    key = list(identity.IDENTIFIER_SCHEMA)
    before = previous.customers.join(restitched.region, on=key, how="semi")
    now = datetime.now(UTC)
    changes = identity.identity_changes(before, restitched.customers, changed_at=now)
    changed = restitched.customers.join(before, on=[*key, "customer_key"], how="anti").select(key)
    again = _events_to_key_again(wh, events, changed)
    to_key = pl.concat([again, events.select(_KEYING_COLUMNS)])
    keyed_again = identity.assign_customer_keys(
        to_key, _customers_of(wh, to_key, restitched)
    ).select("event_id", "customer_key")
    keyed = events.drop("customer_key").join(keyed_again, on="event_id", how="left")
    with wh.transaction():
        rekeyed = wh.update_from(
            "core.events",
            keyed_again.join(again, on="event_id", how="semi"),
            key="event_id",
            column="customer_key",
        )
        with wh.registered(_made=keyed.select("event_id")):
            wh.delete("core.events", "event_id in (select event_id from _made)")
        wh.append("core.events", keyed.select(events.columns))
        replaced = pl.concat([restitched.links, restitched.gone_links], how="diagonal")
        _store_changed(
            wh,
            "core.identity_links",
            previous.links.join(replaced, on=_IDENTITY_KEYS["core.identity_links"], how="semi"),
            restitched.links,
        )
        _store_changed(wh, "core.customers", before, restitched.customers)
        identity_run = _identity_run(
            _stored_identity_counts(wh),
            _guards_fingerprint(settings),
            mode="incremental",
            decided=restitched.customers.height,
            changes=changes,
            now=now,
        )
        _store_bookkeeping(wh, identity_run, inputs.batches, now=now)
        total = wh.query("select count(*) from core.events").item()
        _record_core_run(
            wh,
            now=now,
            mode="incremental",
            fingerprint=inputs.fingerprint,
            batches=inputs.batches,
            events=total,
            written=keyed.height,
            rekeyed=rekeyed,
        )
    return _core_report(
        wh,
        settings,
        identity_run,
        events=total,
        written=keyed.height,
        rekeyed=rekeyed,
        mode="incremental",
    )


def _customers_of(
    wh: Warehouse, events: pl.DataFrame, restitched: identity.Restitched
) -> pl.DataFrame:
    """The rows of ``core.customers`` after ``restitched`` for the identifiers the events
    carry (what keying them reads, without reading the whole table)."""
    key = list(identity.IDENTIFIER_SCHEMA)
    carried = pl.concat(
        [
            events.select(
                pl.lit(kind).alias("identifier_type"), pl.col(kind).alias("identifier_value")
            ).drop_nulls()
            for kind in IDENTIFIER_COLUMNS
        ]
    ).unique()
    with wh.registered(_carried=carried):
        stored = wh.query(
            "select c.* from core.customers c "
            "semi join _carried using (identifier_type, identifier_value)"
        )
    return pl.concat(
        [
            stored.join(restitched.region, on=key, how="anti").select(
                list(identity.CUSTOMER_SCHEMA)
            ),
            restitched.customers,
        ]
    )


@dataclass(frozen=True)
class _CoreInputs:
    """What a build makes events of: the rules, their fingerprint, the batches to read."""

    taxonomy: pl.DataFrame
    referrers: pl.DataFrame
    fingerprint: str
    batches: pl.DataFrame  # batch_id, rows_loaded; in load order


def _core_report(
    wh: Warehouse,
    settings: Settings,
    identity_run: _IdentityRun,
    *,
    events: int,
    written: int,
    rekeyed: int,
    mode: str,
) -> CoreReport:
    return CoreReport(
        events=events,
        customers=identity_run.row.item(0, "customers"),
        identifiers=identity_run.row.item(0, "identifiers"),
        links=identity_run.row.item(0, "links"),
        links_dropped=identity_run.row.item(0, "links_dropped"),
        pending=pending_rows(wh, settings),
        stitch_mode=identity_run.mode,
        identifiers_decided=identity_run.decided,
        identity_changes=identity_run.changes.height,
        mode=mode,
        events_written=written,
        events_rekeyed=rekeyed,
    )


def _new_records(wh: Warehouse, events: pl.DataFrame, contacts: pl.DataFrame) -> pl.DataFrame:
    """The identity records of events not stored yet and of CRM contacts: a receipt's event
    made anew with lines that came later is no new record."""
    with wh.registered(_made=events.select("event_id")):
        stored = wh.query(
            "select event_id from core.events where event_id in (select event_id from _made)"
        )
    return _identity_records(events.join(stored, on="event_id", how="anti"), contacts)


# A full build makes the events of about this many loaded rows at a time (of whole batches):
# at 10M events, making them all at once held ~17 GB.
CORE_CHUNK_ROWS = 2_000_000
# ... and keys and appends them this many events at a time (each lookup and the Arrow copy
# for the append hold the events keyed at once)
KEYING_ROWS = 500_000


def _chunks(batches: pl.DataFrame, rows: int) -> list[pl.DataFrame]:
    """Consecutive runs of ``batches`` of about ``rows`` loaded rows each (at least one
    batch each)."""
    chunk = (pl.col("rows_loaded").cum_sum() - pl.col("rows_loaded")) // max(rows, 1)
    return [
        part.drop("_chunk")
        for part in batches.with_columns(chunk.alias("_chunk")).partition_by(
            "_chunk", maintain_order=True
        )
    ]


def _parquet_parts(path: Path, rows: int) -> Iterator[pl.DataFrame]:
    """The rows of a Parquet file, ``rows`` at a time."""
    scan = pl.scan_parquet(path)
    total = scan.select(pl.len()).collect().item()
    for start in range(0, total, rows):
        yield scan.slice(start, rows).collect()


def _build_core_in_full(
    wh: Warehouse, settings: Settings, inputs: _CoreInputs, previous: identity.Stitched
) -> CoreReport:
    """Makes every event again, a chunk of batches at a time, in two passes with bounded
    memory: the first makes each chunk's events (as an incremental build does: a receipt
    with lines in a later chunk is made anew then), merges their identity evidence and
    keeps them in a Parquet file; after one stitch, the second keys each file's events and
    stores them (the last version of an event made twice)."""
    blocked = settings.identity.blocked_values
    pos = [name for name, source in settings.sources.items() if isinstance(source, PosSource)]
    found = identity.evidence(
        pl.DataFrame(schema={"source": pl.String, "seen_at": ingest.UTC_TIME}),
        blocked_values=blocked,
    )
    folder = settings.work_path / "core-chunks"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    remade = pl.DataFrame(schema={"event_id": pl.String})  # events a later chunk may make again
    conversions = [pl.DataFrame(schema=ingest.EVENT_SCHEMA).select(_KEYING_COLUMNS)]
    try:
        files = []
        for number, chunk in enumerate(_chunks(inputs.batches, CORE_CHUNK_ROWS)):
            events, contacts = canonical_events(
                wh, settings, inputs.taxonomy, referrers=inputs.referrers, batches=chunk
            )
            records = _identity_records(events.join(remade, on="event_id", how="anti"), contacts)
            found = identity.merged(found, identity.evidence(records, blocked_values=blocked))
            remade = pl.concat(
                [remade, events.filter(pl.col("source").is_in(pos)).select("event_id")]
            )
            conversions.append(events.filter(pl.col("is_conversion")).select(_KEYING_COLUMNS))
            files.append(folder / f"{number:05d}.parquet")
            events.write_parquet(files[-1], compression="lz4")  # read once, soon: fast
            del events, contacts, records
        stitched, identity_run = _stitch(wh, found, previous, settings)
        del found
        lookup = identity.KeyLookup.of(stitched.customers)
        orders = identity.order_customers(
            pl.concat(conversions).unique("event_id", keep="last"), lookup
        )
        del conversions
        now = datetime.now(UTC)
        # A chunk a transaction: DuckDB holds a transaction's new rows in memory until its
        # commit (at 10M events one transaction grew by ~1 GB a chunk, to 14 GB). Until the
        # last commit the build is marked started, so that an interrupted one is redone.
        with wh.transaction():
            _record_core_run(
                wh,
                now=now,
                mode="full-started",
                fingerprint="",
                batches=inputs.batches,
                events=0,
                written=0,
                rekeyed=0,
            )
            wh.empty("core.events")
        for path in files:
            with wh.transaction():
                for part in _parquet_parts(path, KEYING_ROWS):
                    events = identity.assign_customer_keys(part, lookup, orders=orders)
                    with wh.registered(_made=events.join(remade, on="event_id", how="semi")):
                        wh.delete("core.events", "event_id in (select event_id from _made)")
                        wh.append("core.events", events)
                    del events, part
        with wh.transaction():
            wh.empty("ops.core_batches")
            _store_core(wh, stitched, identity_run, inputs.batches, now=now)
            total = wh.query("select count(*) from core.events").item()
            _record_core_run(
                wh,
                now=datetime.now(UTC),  # after the 'full-started' row
                mode="full",
                fingerprint=inputs.fingerprint,
                batches=inputs.batches,
                events=total,
                written=total,
                rekeyed=0,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _core_report(
        wh, settings, identity_run, events=total, written=total, rekeyed=0, mode="full"
    )


def _store_core(
    wh: Warehouse,
    stitched: identity.Stitched,
    identity_run: _IdentityRun,
    batches: pl.DataFrame,
    *,
    now: datetime,
) -> None:
    """Stores the identity graph in full and the build's bookkeeping."""
    wh.replace("core.identity_links", stitched.links)
    wh.replace("core.customers", stitched.customers)
    _store_bookkeeping(wh, identity_run, batches, now=now)


def _store_bookkeeping(
    wh: Warehouse, identity_run: _IdentityRun, batches: pl.DataFrame, *, now: datetime
) -> None:
    wh.append("ops.identity_changes", identity_run.changes)
    wh.append("ops.identity_runs", identity_run.row)
    wh.append("ops.core_batches", batches.select("batch_id", pl.lit(now).alias("built_at")))


# The primary key of each identity table.
_IDENTITY_KEYS = {
    "core.identity_links": ["left_type", "left_value", "right_type", "right_value"],
    "core.customers": ["identifier_type", "identifier_value"],
}


def _store_changed(wh: Warehouse, table: str, before: pl.DataFrame, after: pl.DataFrame) -> None:
    """Makes the table's rows ``before`` (of some keys) what ``after`` holds for those keys:
    writes the rows of ``after`` that ``before`` does not hold as they are, over the rows with
    their key, and removes the keys ``after`` lacks. At 10M events an incremental build
    changes a few thousand rows, where writing the whole table again costs seconds."""
    key = _IDENTITY_KEYS[table]
    changed = after.join(before, on=after.columns, how="anti", nulls_equal=True)
    removed = before.select(key).join(after, on=key, how="anti")
    if changed.is_empty() and removed.is_empty():
        return
    columns = ", ".join(key)
    with wh.registered(_changed=pl.concat([changed.select(key), removed])):
        wh.delete(table, f"({columns}) in (select ({columns}) from _changed)")
    wh.append(table, changed)


def _record_core_run(
    wh: Warehouse,
    *,
    now: datetime,
    mode: str,
    fingerprint: str,
    batches: pl.DataFrame,
    events: int,
    written: int,
    rekeyed: int,
) -> None:
    wh.append(
        "ops.core_runs",
        pl.DataFrame(
            {
                "run_at": [now],
                "mode": [mode],
                "inputs_fingerprint": [fingerprint],
                "batches": [batches.height],
                "events": [events],
                "identifiers": [wh.query("select count(*) from core.customers").item()],
                "links": [wh.query("select count(*) from core.identity_links").item()],
                "events_written": [written],
                "events_rekeyed": [rekeyed],
            }
        ),
    )


@dataclass(frozen=True)
class _IdentityRun:
    mode: str
    decided: int
    changes: pl.DataFrame
    row: pl.DataFrame


def identity_guards(settings: Settings) -> identity.Guards:
    """The identity guards of the config."""
    return identity.Guards(
        shared_limits=settings.identity.shared_limits,
        customer_limits=settings.identity.customer_limits,
    )


def _guards_fingerprint(settings: Settings) -> str:
    return hashlib.sha256(settings.identity.model_dump_json().encode("utf-8")).hexdigest()


def _stitched_alike(wh: Warehouse, settings: Settings) -> bool:
    """Whether the stored identity graph was decided with these identity settings and holds
    every decision an update builds on (a group for every identifier)."""
    last = wh.query("select guards_fingerprint from ops.identity_runs order by run_at desc limit 1")
    incomplete = wh.query("select count(*) from core.customers where group_key is null").item()
    return bool(last.height) and last.item() == _guards_fingerprint(settings) and not incomplete


def _stitch(
    wh: Warehouse, found: identity.Evidence, previous: identity.Stitched, settings: Settings
) -> tuple[identity.Stitched, _IdentityRun]:
    """Stitches incrementally on the last run's decisions when they were made with the same
    identity settings (and the database has them all), else from scratch."""
    guards = identity_guards(settings)
    if _stitched_alike(wh, settings):
        stitched, decided = identity.update(previous, found, guards)
        mode = "incremental"
    else:
        stitched = identity.resolve(found, guards)
        decided, mode = stitched.customers.height, "full"
    now = datetime.now(UTC)
    changes = identity.identity_changes(previous.customers, stitched.customers, changed_at=now)
    counts = {
        "identifiers": stitched.customers.height,
        "customers": stitched.customers.get_column("customer_key").n_unique(),
        "links": stitched.links.height,
        "links_dropped": stitched.links.filter(~pl.col("is_active")).height,
    }
    run = _identity_run(
        counts, _guards_fingerprint(settings), mode=mode, decided=decided, changes=changes, now=now
    )
    return stitched, run


def _stored_identity_counts(wh: Warehouse) -> dict[str, int]:
    """Identifiers, customers, links and dropped links in the core tables."""
    row = wh.query(
        "select (select count(*) from core.customers) as identifiers, "
        "(select count(distinct customer_key) from core.customers) as customers, "
        "(select count(*) from core.identity_links) as links, "
        "(select count(*) from core.identity_links where not is_active) as links_dropped"
    )
    return {name: int(value) for name, value in row.row(0, named=True).items()}


def _identity_run(
    counts: dict[str, int],
    fingerprint: str,
    *,
    mode: str,
    decided: int,
    changes: pl.DataFrame,
    now: datetime,
) -> _IdentityRun:
    """The ``ops.identity_runs`` row of a stitch with these counts of its result."""
    row = pl.DataFrame(
        {
            "run_at": [now],
            "mode": [mode],
            "guards_fingerprint": [fingerprint],
            "identifiers": [counts["identifiers"]],
            "identifiers_decided": [decided],
            "customers": [counts["customers"]],
            "links": [counts["links"]],
            "links_dropped": [counts["links_dropped"]],
            "changes": [changes.height],
        }
    )
    return _IdentityRun(mode, decided, changes, row)


def end_of_data(events: pl.DataFrame) -> datetime:
    """The moment the data ends: the last event, but never after the last load (a device
    clock in the future must not make every open journey look abandoned)."""
    bounds = events.select(pl.col("occurred_at").max(), pl.col("ingested_at").max())
    return _earlier_end(bounds.item(0, 0), bounds.item(0, 1))


def _earlier_end(last_event: datetime | None, last_load: datetime | None) -> datetime:
    if last_event is None or last_load is None:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return min(last_event, last_load)


# Raise when a change to the code that builds sessions, journeys, paths or patterns changes
# their rows: the next run then rebuilds every customer instead of keeping stale rows.
# 2: the customers' fingerprints hash only ``JOURNEY_EVENT_COLUMNS``
# 3: the journey tables have no primary key (an older database's are made anew, empty)
# 4: the fingerprints are DuckDB's hash (all differ from version 3's: a full build, rather
#    than an incremental one of everyone that keeps every row for the marts)
JOURNEY_LOGIC_VERSION = 4
JOURNEY_TABLES = ("journeys.sessions", "journeys.journeys", "journeys.steps", "marts.patterns")
# The columns of core.events a journey build reads: those the sessions, journeys, paths and
# pattern rules use or the steps table keeps, and ingested_at (the end of the data). Not the
# identifiers, the source, the currency or the properties (at 1M events these 14 columns read
# in 0.17 s, the whole table in 1.0-1.2 s): the customers' fingerprints hash these columns
# only, so a change elsewhere rebuilds no journey.
JOURNEY_EVENT_COLUMNS = (
    "event_id",
    "customer_key",
    "channel",
    "touchpoint",
    "stage",
    "occurred_at",
    "ingested_at",
    "is_conversion",
    "order_id",
    "store_id",
    "product_id",
    "category",
    "fulfilment",
    "revenue",
)


def rules_fingerprint(settings: Settings, rules: tuple[pattern_rules.Rule, ...]) -> str:
    """sha256 of every rule the journey tables are built with: sessions, journeys, paths and
    the pattern rules (a change in any of them makes the next run rebuild everyone)."""
    paths = settings.paths.model_dump(mode="json")
    # first match wins: the aliases' order is part of the rule (sort_keys must not sort it)
    paths["aliases"] = list(settings.paths.aliases.items())
    described = {
        "logic": JOURNEY_LOGIC_VERSION,
        "sessions": settings.sessions.model_dump(mode="json"),
        "journeys": settings.journeys.model_dump(mode="json"),
        "paths": paths,
        "patterns": [rule.model_dump(mode="json") for rule in rules],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


def customer_fingerprints(wh: Warehouse) -> pl.DataFrame:
    """One row per customer of ``core.events``: their number of events and an order-free
    fingerprint of their events' :data:`JOURNEY_EVENT_COLUMNS`
    (``sql/queries/customer_fingerprints.sql``), computed in the warehouse without reading the
    events out."""
    return wh.query_file("customer_fingerprints")


def end_of_data_in(wh: Warehouse) -> datetime:
    """:func:`end_of_data` of ``core.events``, computed in the warehouse (1970 when empty)."""
    bounds = wh.query("select max(occurred_at), max(ingested_at) from core.events")
    return _earlier_end(bounds.item(0, 0), bounds.item(0, 1))


def steps_in_others_journeys(wh: Warehouse) -> pl.DataFrame:
    """The pairs (``before``: the journey's customer, ``customer_key``: the step's) where the
    journey tables hold a step of one customer in another's journey: a pick-up of an order
    someone else placed. Only fulfilment steps join another customer's journey
    (:func:`journeys.assign_journeys`), so only they are joined to their journeys."""
    return wh.query(
        "select distinct j.customer_key as before, s.customer_key from journeys.steps s "
        "join journeys.journeys j using (journey_id) "
        "where s.is_fulfilment and s.customer_key <> j.customer_key"
    )


def _to_rebuild(
    wh: Warehouse,
    prints: pl.DataFrame,
    orders: pl.DataFrame,
    *,
    fingerprint: str,
    as_of: datetime,
) -> tuple[pl.Series, pl.Series] | None:
    """The customers whose journey rows this run must rebuild (``incremental``) and those
    whose fingerprint changed, came or went among them; or None when it must rebuild
    everyone: no earlier build, other rules, or an earlier end of data. ``orders``: the
    distinct (order_id, customer_key) pairs of ``core.events``."""
    last = wh.query(
        "select rules_fingerprint, as_of from ops.journey_runs order by run_at desc limit 1"
    )
    if not last.height or last.item(0, 0) != fingerprint or last.item(0, 1) > as_of:
        return None
    # journey tables made anew (empty) since, e.g. by a newer version's definition
    if wh.query("select count(*) from journeys.journeys").item() == 0 and prints.height:
        return None
    changed = incremental.changed_customers(wh.read("ops.customer_fingerprints"), prints)
    open_journeys = wh.query(
        "select distinct customer_key from journeys.journeys where status = 'open'"
    ).get_column("customer_key")
    previous_links = steps_in_others_journeys(wh)
    wanted = incremental.customers_to_rebuild(
        orders, changed=changed, open_journeys=open_journeys, previous_links=previous_links
    )
    return wanted, changed


def _journey_rows(
    events: pl.DataFrame,
    settings: Settings,
    *,
    rules: tuple[pattern_rules.Rule, ...],
    as_of: datetime,
    workers: int,
) -> dict[str, pl.DataFrame]:
    """The rows of ``JOURNEY_TABLES`` for these events (whole customers, with everyone they
    share an order with): sessions, journeys, steps and hits of the pattern ``rules``."""
    built = reconstruct.rebuild(
        events,
        timeouts_minutes=settings.sessions.timeout_minutes,
        default_timeout_minutes=settings.sessions.default_timeout_minutes,
        max_session_minutes=settings.sessions.max_session_minutes,
        timeout=timedelta(days=settings.journeys.timeout_days),
        noise_touchpoints=settings.journeys.noise_touchpoints,
        as_of=as_of,
        drop_touchpoints=settings.paths.drop_touchpoints,
        collapse_repeats=settings.paths.collapse_repeats,
        max_length=settings.paths.max_length,
        aliases=settings.paths.aliases,
        shards=reconstruct.shards_for(events.height),
        workers=workers,
    )
    hits = pattern_rules.detect_patterns(built.steps, rules)
    return {
        "journeys.sessions": built.sessions,
        "journeys.journeys": pattern_rules.with_patterns(built.journeys, hits),
        "journeys.steps": built.steps.select(STEP_COLUMNS),
        "marts.patterns": hits,
    }


def _pattern_rules(settings: Settings) -> tuple[pattern_rules.Rule, ...]:
    return pattern_rules.load_rules(
        settings.resolve(settings.patterns) if settings.patterns else None
    )


@dataclass(frozen=True)
class _JourneyScope:
    """Which customers a journey build rebuilds, at which end of the data."""

    events: int  # their events (all events on a full build)
    wanted: pl.Series | None  # their keys; None: everyone (a full build)
    customers: int  # in core.events
    # the fingerprints that change: every customer's on a full build; else those of the
    # customers whose fingerprint changed (``changed``, absent ones gone from core.events)
    prints: pl.DataFrame
    changed: pl.Series | None
    as_of: datetime
    rules: tuple[pattern_rules.Rule, ...]  # read once: the ones the fingerprint describes
    fingerprint: str
    orders: pl.DataFrame  # the distinct (order_id, customer_key) pairs of the events


def _journey_scope(
    wh: Warehouse, settings: Settings, *, as_of: datetime | None, full: bool
) -> _JourneyScope:
    as_of = as_of or end_of_data_in(wh)
    prints = customer_fingerprints(wh)
    rules = _pattern_rules(settings)
    fingerprint = rules_fingerprint(settings, rules)
    # read once: what links customers into one rebuild, and into one shard
    orders = wh.query(
        "select distinct order_id, customer_key from core.events where order_id is not null"
    )
    scoped = None if full else _to_rebuild(wh, prints, orders, fingerprint=fingerprint, as_of=as_of)
    wanted, changed = (None, None) if scoped is None else scoped
    with wh.registered(_wanted=_wanted_frame(wanted)):
        events = wh.query(f"select count(*) from core.events {_OF_WANTED[wanted is None]}").item()
    if wanted is not None:
        orders = orders.filter(pl.col("customer_key").is_in(wanted.implode()))
    stored = (
        prints
        if changed is None
        else prints.filter(pl.col("customer_key").is_in(changed.implode()))
    )
    return _JourneyScope(
        events, wanted, prints.height, stored, changed, as_of, rules, fingerprint, orders
    )


# the events of the customers a journey build rebuilds: all of them, or those of ``_wanted``
_OF_WANTED = {True: "", False: "where customer_key in (select customer_key from _wanted)"}


def _wanted_frame(wanted: pl.Series | None) -> pl.DataFrame:
    return (pl.Series("customer_key", [], pl.String) if wanted is None else wanted).to_frame()


def _write_event_shards(wh: Warehouse, scope: _JourneyScope, folder: Path, shards: int) -> None:
    """Writes the events of the customers the build rebuilds to ``folder/shard=N/``, by DuckDB
    (they never pass through Python): each customer in shard ``hash(key) % shards``, customers
    linked by shared order ids (a pick-up by someone else) in the shard of the smallest key
    among them, so that each shard holds whole journeys."""
    events = f"(select * from core.events {_OF_WANTED[scope.wanted is None]})"
    columns = ", ".join(f"e.{column}" for column in JOURNEY_EVENT_COLUMNS)
    with (
        wh.registered(_wanted=_wanted_frame(scope.wanted)),
        wh.registered(_leaders=incremental.order_groups(scope.orders)),
    ):
        wh.copy_to_parquet(
            f"select {columns}, hash(coalesce(l.first, e.customer_key)) % {int(shards)} "
            f"as shard from {events} e left join _leaders l using (customer_key)",
            folder,
            partition_by="shard",
        )


# what the marts read of a journey (not its path, pattern list, ...); what
# journeys.replaced_journeys keeps
MART_JOURNEY_COLUMNS = (
    "journey_id",
    "customer_key",
    "started_at",
    "status",
    "converted",
    "revenue",
    "first_channel",
)
REPLACED_TABLES = (
    "journeys.replaced_customers",
    "journeys.replaced_steps",
    "journeys.replaced_journeys",
)


def _keep_replaced_rows(wh: Warehouse, *, full: bool) -> None:
    """Keeps the rows an incremental build is about to replace (those of the customers in
    ``_rebuilt``) as the marts last saw them, for the next marts build to subtract: the rows of
    a customer already replaced since are not the marts' any more, and are not kept again. A
    full build keeps nothing: the marts are built in full after it."""
    if full:
        for table in REPLACED_TABLES:
            wh.empty(table)
        return
    wh.execute(
        "create or replace temp table _first_replaced as select customer_key from _rebuilt "
        "where customer_key not in (select customer_key from journeys.replaced_customers)"
    )
    wh.execute(
        "insert into journeys.replaced_steps select * from journeys.steps "
        "where customer_key in (select customer_key from _first_replaced)"
    )
    wh.execute(
        f"insert into journeys.replaced_journeys by name select {', '.join(MART_JOURNEY_COLUMNS)} "
        "from journeys.journeys where customer_key in (select customer_key from _first_replaced)"
    )
    wh.execute("insert into journeys.replaced_customers select * from _first_replaced")
    wh.execute("drop table _first_replaced")


def _store_journey_rows(
    wh: Warehouse,
    scope: _JourneyScope,
    write: Callable[[str], None],
    *,
    events_rebuilt: int,
) -> JourneyReport:
    """Writes a build in one transaction: replaces the journey tables (full) or the rebuilt
    customers' rows (incremental) through ``write(table)``, then the fingerprints and the
    ``ops.journey_runs`` row. Returns the tables' totals after it."""
    wanted = scope.wanted
    mode = "full" if wanted is None else "incremental"
    rebuilt = pl.Series("customer_key", [], pl.String) if wanted is None else wanted
    with wh.transaction(), wh.registered(_rebuilt=rebuilt.to_frame()):
        _keep_replaced_rows(wh, full=wanted is None)
        for table in JOURNEY_TABLES:
            if wanted is None:
                wh.empty(table)
            else:
                wh.delete(table, "customer_key in (select customer_key from _rebuilt)")
            write(table)
        if scope.changed is None:
            wh.replace("ops.customer_fingerprints", scope.prints)
        else:  # only the customers whose fingerprint changed, came or went
            with wh.registered(_changed=scope.changed.to_frame()):
                wh.delete(
                    "ops.customer_fingerprints",
                    "customer_key in (select customer_key from _changed)",
                )
            wh.append("ops.customer_fingerprints", scope.prints)
        totals = wh.query(
            "select (select count(*) from journeys.sessions) as sessions, "
            "count(*) as journeys, "
            "count(*) filter (where status = 'converted') as converted, "
            "count(*) filter (where status = 'dropped') as dropped, "
            "count(*) filter (where status = 'open') as open, "
            "count(*) filter (where $full or customer_key in (select customer_key from _rebuilt))"
            " as rebuilt "
            "from journeys.journeys",
            {"full": wanted is None},
        ).row(0)
        wh.append(
            "ops.journey_runs",
            pl.DataFrame(
                {
                    "run_at": [datetime.now(UTC)],
                    "mode": [mode],
                    "rules_fingerprint": [scope.fingerprint],
                    "as_of": [scope.as_of],
                    "customers": [scope.customers],
                    "customers_rebuilt": [scope.customers if wanted is None else wanted.len()],
                    "events_rebuilt": [events_rebuilt],
                    "journeys_rebuilt": [totals[5]],
                }
            ),
        )
    patterns = wh.query(
        "select pattern, count(*) as hits from marts.patterns group by pattern order by pattern"
    )
    return JourneyReport(
        sessions=totals[0],
        journeys=totals[1],
        conversions=totals[2],
        dropped=totals[3],
        open=totals[4],
        patterns=dict(patterns.iter_rows()),
        mode=mode,
        customers=scope.customers,
        customers_rebuilt=scope.customers if wanted is None else wanted.len(),
    )


def build_journeys(
    settings: Settings, *, as_of: datetime | None = None, full: bool = False
) -> JourneyReport:
    """Builds sessions, journeys, steps and ``marts.patterns`` from ``core.events``: for the
    customers whose events changed since the last run (and those linked to them or with an
    open journey; ``incremental``), or for everyone on the first run, when the rules changed,
    or with ``full``. Either way the tables equal a full rebuild row for row.

    ``as_of`` is the end of the data (default: :func:`end_of_data`); an erasure passes the one
    from before it, so that removing the last event does not re-open other journeys.
    """
    plan = plan_journeys(settings, full=full, as_of=as_of)
    try:
        for shard in plan.shards:
            build_journey_shard(settings, shard, workers=os.cpu_count() or 1)
        return load_journey_shards(settings, plan)
    finally:
        shutil.rmtree(plan.folder, ignore_errors=True)  # they hold events, identifiers too


@dataclass(frozen=True)
class JourneyPlan:
    """A journey build split into customer shards, built one after another
    (:func:`build_journeys`) or by workers (``journey run --executor dask``): the events of
    each shard in Parquet files under ``folder``."""

    folder: Path
    shards: tuple[Path, ...]  # folder/events/shard=N/, a folder of Parquet files each
    events: int


def plan_journeys(
    settings: Settings, *, full: bool = False, as_of: datetime | None = None
) -> JourneyPlan:
    """Writes the events of the customers this run rebuilds (all on a full build) to Parquet
    under ``<work_dir>/journeys/``, a folder per customer shard of about
    ``[scale] events_per_shard`` events, with the scope of the build (``scope.parquet``;
    ``fingerprints.parquet``, the fingerprints it changes; on an incremental build
    ``wanted.parquet`` and ``changed.parquet``, the customers it rebuilds and those whose
    fingerprint changed), for :func:`build_journey_shard`. Only a shard at a time is then in
    memory."""
    # a folder of this run's own (two databases may share a work_dir)
    folder = settings.work_path / "journeys" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        return _plan_journeys_in(folder, settings, full=full, as_of=as_of)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a part written holds events
        raise


def _plan_journeys_in(
    folder: Path, settings: Settings, *, full: bool, as_of: datetime | None
) -> JourneyPlan:
    with _open(settings) as wh:
        wh.ensure_tables()
        scope = _journey_scope(wh, settings, as_of=as_of, full=full)
        shards = max(1, -(-scope.events // settings.scale.events_per_shard))
        _write_event_shards(wh, scope, folder / "events", shards)
    scope.prints.write_parquet(folder / "fingerprints.parquet")
    pl.DataFrame(
        {
            "as_of": [scope.as_of],
            "fingerprint": [scope.fingerprint],
            "full": [scope.wanted is None],
            "customers": [scope.customers],
        }
    ).write_parquet(folder / "scope.parquet")
    if scope.wanted is not None:
        scope.wanted.to_frame().write_parquet(folder / "wanted.parquet")
    if scope.changed is not None:
        scope.changed.to_frame().write_parquet(folder / "changed.parquet")
    shards_written = sorted(path for path in (folder / "events").glob("shard=*") if path.is_dir())
    return JourneyPlan(folder, tuple(shards_written), scope.events)


def build_journey_shard(settings: Settings, shard: Path, *, workers: int = 1) -> Path:
    """Builds the journey rows of one shard's events (a worker's task, on ``workers``
    threads): one Parquet file per table in ``<plan folder>/<table>/``, named as the shard.
    Reads no database."""
    folder = shard.parent.parent
    scope = pl.read_parquet(folder / "scope.parquet")
    rules = _pattern_rules(settings)
    # the worker reads the rules itself: they must be the ones the plan was made with (the
    # fingerprint recorded for this build), or the shards would disagree with each other
    if rules_fingerprint(settings, rules) != scope.item(0, "fingerprint"):
        msg = (
            f"{shard.name}: the pattern rules or journey settings this worker reads differ from "
            "the ones the run planned with (changed during the run, or another version on the "
            "worker); run again"
        )
        raise JourneyError(msg)
    as_of = scope.item(0, "as_of")
    events = _read_part(shard)
    rows = _journey_rows(events, settings, rules=rules, as_of=as_of, workers=workers)
    del events
    for table, frame in rows.items():
        (folder / table).mkdir(exist_ok=True)
        frame.write_parquet(folder / table / f"{shard.name}.parquet")
    return folder


def load_journey_shards(settings: Settings, plan: JourneyPlan) -> JourneyReport:
    """Writes the shards' rows (:func:`build_journey_shard`) into the journey tables, as
    :func:`build_journeys` writes its own, and removes the plan's files."""
    folder = plan.folder
    missing = [
        f"{table}/{shard.name}.parquet"
        for table in JOURNEY_TABLES
        for shard in plan.shards
        if not (folder / table / f"{shard.name}.parquet").is_file()
    ]
    if missing:
        msg = (
            f"{folder}: expected every shard's rows of {len(JOURNEY_TABLES)} tables, "
            f"found {len(missing)} files missing (first: {missing[0]}); nothing was loaded"
        )
        raise SourceError(msg)
    scope_row = pl.read_parquet(folder / "scope.parquet")
    wanted = changed = None
    if not scope_row.item(0, "full"):
        wanted = pl.read_parquet(folder / "wanted.parquet").get_column("customer_key")
        changed = pl.read_parquet(folder / "changed.parquet").get_column("customer_key")
    scope = _JourneyScope(
        events=plan.events,
        wanted=wanted,
        customers=scope_row.item(0, "customers"),
        prints=pl.read_parquet(folder / "fingerprints.parquet"),
        changed=changed,
        as_of=scope_row.item(0, "as_of"),
        rules=(),  # the shards are built: only the fingerprint is written
        fingerprint=scope_row.item(0, "fingerprint"),
        orders=pl.DataFrame(),  # the shards are written
    )
    with _open(settings) as wh:
        report = _store_journey_rows(
            wh,
            scope,
            lambda table: wh.append_parquet(table, sorted((folder / table).glob("*.parquet"))),
            events_rebuilt=plan.events,
        )
    shutil.rmtree(folder, ignore_errors=True)
    return report


JOURNEY_SHARD_TABLES = ("sessions", "steps", "journeys")


@dataclass(frozen=True)
class JourneyShards:
    """What :func:`write_journey_shards` wrote: ``folder/<table>/part-NNNNN.parquet``, one
    file per customer group and table (read them with ``pl.scan_parquet(folder / "steps")`` or
    DuckDB's ``read_parquet('folder/steps/*.parquet')``), the rows of each table, and the
    transition edges of all the groups (``reconstruct.join_edges``: journeys numbered as the
    rows of the journeys files read in order)."""

    folder: Path
    rows: dict[str, int]
    edges: pl.DataFrame

    def graph(self) -> nx.DiGraph:
        """The transition graph of all the groups' journeys."""
        return reconstruct.edge_graph(self.edges)


def write_journey_shards(groups: Iterable[reconstruct.Rebuilt], folder: Path) -> JourneyShards:
    """Writes each group of ``reconstruct.rebuild_groups`` to Parquet as it comes and lets it
    go, so that only the groups being rebuilt and the edges are in memory: data of any number
    of customers in bounded memory. The files are written aside and replace those of an
    earlier run in ``folder`` only once all are written: a run that fails leaves them as they
    were. The journeys' numbers in the edges are their rows in the journeys files read in name
    order (``part-00000``, ``part-00001``, …).

    Example (``events`` and ``rules`` as for ``reconstruct.rebuild_groups``)::

        groups = reconstruct.rebuild_groups(events, rules, shards=8, workers=2)
        shards = write_journey_shards(groups, Path("out"))
        shards.rows["journeys"], shards.graph().number_of_edges()
    """
    staging = folder / ".writing"  # the new files, put in place once all are written
    if staging.exists():
        shutil.rmtree(staging)
    for table in JOURNEY_SHARD_TABLES:
        (staging / table).mkdir(parents=True)
    rows = dict.fromkeys(JOURNEY_SHARD_TABLES, 0)
    edges: list[pl.DataFrame] = []
    journeys: list[int] = []
    customers: list[int] = []
    for number, group in enumerate(groups):
        for table in JOURNEY_SHARD_TABLES:
            frame: pl.DataFrame = getattr(group, table)
            frame.write_parquet(staging / table / f"part-{number:05d}.parquet", compression="lz4")
            rows[table] += frame.height
        edges.append(group.edges)
        journeys.append(group.journeys.height)
        customers.append(group.customers)
        del group
    for table in JOURNEY_SHARD_TABLES:
        if (folder / table).exists():
            shutil.rmtree(folder / table)
        (staging / table).rename(folder / table)
    staging.rmdir()
    return JourneyShards(
        folder, rows, reconstruct.join_edges(edges, journeys=journeys, customers=customers)
    )


MART_LOGIC_VERSION = 1
# what an incremental marts build reads as it was left by the builds before it
KEPT_TABLES = (
    "marts.journey_edges",
    "marts.journey_segments",
    "marts.journey_facts",
    "marts.leaked_journeys",
    "marts.transitions",
    "marts.transition_nodes",
    "marts.attribution_numerators",
    "marts.attribution_chain",
    "journeys.replaced_customers",
    "journeys.replaced_steps",
    "journeys.replaced_journeys",
)


def marts_fingerprint(settings: Settings) -> str:
    """sha256 of every setting the marts' kept rows are built with: paths, segments, periods,
    leakage and the store regions (a change in any of them makes the next build full)."""
    described = {
        "logic": MART_LOGIC_VERSION,
        "paths": {
            "drop_touchpoints": list(settings.paths.drop_touchpoints),
            "collapse_repeats": settings.paths.collapse_repeats,
            "aliases": list(settings.paths.aliases.items()),  # first match wins: keep the order
        },
        "graphs": settings.graphs.model_dump(mode="json"),
        "leakage": settings.leakage.model_dump(mode="json"),
        "omnichannel": list(dashboards.OMNICHANNEL_PATTERNS),  # marts.journey_facts
        "regions": store_regions(settings),
        # a kept table made anew (empty) by a new definition must not be read as kept
        "tables": {
            table: (sql_dir() / "tables" / f"{table}.sql").read_text(encoding="utf-8")
            for table in KEPT_TABLES
        },
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


_MART_STEPS = "select * exclude (session_id) from {table}"
_MART_JOURNEYS = "select " + ", ".join(MART_JOURNEY_COLUMNS) + " from {table}"
# and what marts.journey_facts takes of the journeys it keeps (replaced ones are not read)
FACT_JOURNEY_COLUMNS = (*MART_JOURNEY_COLUMNS, "last_touchpoint", "patterns")
_FACT_JOURNEYS = "select " + ", ".join(FACT_JOURNEY_COLUMNS) + " from {table}"
_OF_REBUILT = " where customer_key in (select customer_key from _rebuilt)"


@dataclass(frozen=True)
class _MartRows:
    """What the marts take from a set of whole customers' journeys: the rows the marts keep
    per journey, and the counts that add up across sets."""

    # marts.journey_edges, .journey_facts, .leaked_journeys; None for replaced rows (not kept)
    edges: pl.DataFrame | None
    memberships: pl.DataFrame  # marts.journey_segments
    facts: pl.DataFrame | None
    leaked: pl.DataFrame | None
    transition_counts: pl.DataFrame
    node_counts: pl.DataFrame
    numerators: pl.DataFrame  # marts.attribution_numerators
    chain: pl.DataFrame  # marts.attribution_chain


def _mart_rows(
    steps: pl.DataFrame,
    summary: pl.DataFrame,
    settings: Settings,
    regions: dict[str, str],
    *,
    kept: bool = True,
) -> _MartRows:
    """The mart rows of whole customers' journeys (``summary``: :data:`FACT_JOURNEY_COLUMNS`);
    not ``kept``, those of replaced journeys (:data:`MART_JOURNEY_COLUMNS`), whose counts are
    subtracted, without the kept edges, facts and leaked journeys (None)."""
    # in one order whatever order the rows were written in (an incremental run appends the
    # customers it rebuilt)
    steps = steps.sort("journey_id", "position")
    summary = summary.sort("journey_id")
    edges = graphs.transition_edges(
        steps.with_columns(
            journeys.alias_touchpoints(pl.col("touchpoint"), settings.paths.aliases)
        ),
        summary,
        drop_touchpoints=settings.paths.drop_touchpoints,
        collapse_repeats=settings.paths.collapse_repeats,
    )
    attributes = journeys.journey_attributes(
        steps, summary, store_regions=regions, period=settings.graphs.period
    )
    dimensions = tuple(dict.fromkeys(("status", *settings.graphs.segments)))
    memberships = graphs.segment_memberships(attributes, dimensions=dimensions)
    transition_counts, node_counts = graphs.segment_counts(edges, memberships)
    numerators, chain = attribution.attribution_state(
        steps, summary, drop_touchpoints=settings.paths.drop_touchpoints
    )
    kept_edges = kept_facts = leaked = None
    if kept:
        leaked = leakage.leaked_journeys(
            steps,
            online_channels=settings.leakage.online_channels,
            offline_channels=settings.leakage.offline_channels,
            window=timedelta(days=settings.leakage.window_days),
            drop_touchpoints=settings.paths.drop_touchpoints,
        )
        segments = graphs.segment_columns(attributes, dimensions=dimensions)
        # only the edges with seconds: the medians of an edge without any are null either way
        kept_edges = (
            edges.filter(pl.col("seconds").is_not_null())
            .select("journey_id", "from_touchpoint", "to_touchpoint", "seconds")
            .join(segments, on="journey_id", how="left", maintain_order="left")
        )
        kept_facts = (
            journeys.journey_facts(
                steps,
                summary,
                drop_touchpoints=settings.paths.drop_touchpoints,
                omnichannel=dashboards.OMNICHANNEL_PATTERNS,
                online_channels=settings.leakage.online_channels,
                offline_channels=settings.leakage.offline_channels,
            )
            .join(graphs.path_ends(edges), on="journey_id", how="left", maintain_order="left")
            .join(segments, on="journey_id", how="left", maintain_order="left")
        )
    return _MartRows(
        kept_edges,
        memberships,
        kept_facts,
        leaked,
        transition_counts,
        node_counts,
        numerators,
        chain,
    )


def _transition_seconds(wh: Warehouse) -> pl.DataFrame:
    """The median and p90 seconds of every edge of every segment, over the kept rows
    (``sql/queries/transition_seconds.sql``, a dimension at a time)."""
    dimensions = wh.query("select distinct dimension from marts.journey_segments order by 1")
    parts = [
        wh.query_file("transition_seconds", {"dimension": dimension})
        for dimension in dimensions.get_column("dimension")
    ]
    return pl.concat(parts) if parts else wh.query_file("transition_seconds", {"dimension": ""})


def _marts_to_rebuild(wh: Warehouse, fingerprint: str) -> pl.Series | None:
    """The customers whose rows an incremental marts build replaces, or None when it must be
    full: no earlier build, other settings, journeys rebuilt in full since, or kept rows that
    no longer hold the journeys the last build recorded."""
    last = wh.query(
        "select run_at, settings_fingerprint, journeys from ops.mart_runs "
        "order by run_at desc limit 1"
    )
    if not last.height or last.item(0, "settings_fingerprint") != fingerprint:
        return None
    full_since = wh.query(
        "select count(*) from ops.journey_runs where run_at > $at and mode = 'full'",
        {"at": last.item(0, "run_at")},
    ).item()
    kept = wh.query("select count(*) from marts.journey_segments where dimension = 'all'").item()
    if full_since or kept != last.item(0, "journeys"):
        return None
    return wh.read("journeys.replaced_customers").get_column("customer_key")


@dataclass(frozen=True)
class _MartCounts:
    transitions: pl.DataFrame
    nodes: pl.DataFrame
    numerators: pl.DataFrame
    chain: pl.DataFrame

    @staticmethod
    def of(rows: _MartRows) -> _MartCounts:
        return _MartCounts(rows.transition_counts, rows.node_counts, rows.numerators, rows.chain)

    def frames(self) -> tuple[pl.DataFrame, ...]:
        return (self.transitions, self.nodes, self.numerators, self.chain)


# the count tables of the marts, with their keys and counts (in _MartCounts' order)
_COUNT_TABLES = (
    ("marts.transitions", graphs.TRANSITION_KEYS, graphs.TRANSITION_COUNTS),
    ("marts.transition_nodes", graphs.NODE_KEYS, graphs.NODE_COUNTS),
    ("marts.attribution_numerators", attribution.NUMERATOR_KEYS, attribution.NUMERATOR_SUMS),
    ("marts.attribution_chain", attribution.CHAIN_KEYS, ("transitions",)),
)


def _summed_counts(
    current: _MartCounts, added: _MartCounts, removed: _MartCounts | None = None
) -> _MartCounts:
    """``current`` + ``added`` - ``removed`` (none if None), count table by count table."""
    less = tuple(frame.head(0) for frame in added.frames()) if removed is None else removed.frames()
    return _MartCounts(
        *(
            incremental.add_counts(now, plus, minus, keys=keys, counts=counts)
            for (_, keys, counts), now, plus, minus in zip(
                _COUNT_TABLES, current.frames(), added.frames(), less, strict=True
            )
        )
    )


def _counts_after(wh: Warehouse, new: _MartRows, old: _MartRows) -> _MartCounts | None:
    """The marts' counts with the rebuilt customers' new rows added and their replaced rows
    subtracted; None if a count would go below zero (kept rows that do not match)."""
    stored = _MartCounts(
        *(wh.read(table, columns=[*keys, *counts]) for table, keys, counts in _COUNT_TABLES)
    )
    summed = _summed_counts(stored, _MartCounts.of(new), _MartCounts.of(old))
    # (whole numbers only: revenue can be negative, a sale of returns)
    for frame in summed.frames():
        if frame.select(pl.any_horizontal(cs.integer() < 0).any()).item():
            return None
    return summed


# the tables the marts keep per journey, and the rows of each
_KEPT_PER_JOURNEY = (
    "marts.journey_edges",
    "marts.journey_segments",
    "marts.journey_facts",
    "marts.leaked_journeys",
)


def _kept_rows(rows: _MartRows) -> dict[str, pl.DataFrame]:
    assert rows.edges is not None and rows.facts is not None and rows.leaked is not None, (
        "replaced rows are not kept"
    )
    return dict(
        zip(
            _KEPT_PER_JOURNEY,
            (rows.edges, rows.memberships, rows.facts, rows.leaked),
            strict=True,
        )
    )


def _read_part(folder: Path) -> pl.DataFrame:
    """The rows of a folder of Parquet files (a shard DuckDB wrote)."""
    return pl.read_parquet(sorted(folder.glob("*.parquet")), hive_partitioning=False)


def _keep_all_rows(wh: Warehouse, settings: Settings, regions: dict[str, str]) -> _MartCounts:
    """A full build's kept rows and counts, a customer shard at a time (about ``[scale]
    events_per_shard`` steps each, by a hash of the journey's customer): the shards' steps and
    journeys go to Parquet by DuckDB, and only one shard's rows are in memory at a time. The
    counts add up across shards of whole customers: every count hangs off a journey's own
    customer (the transitions skip fulfilment steps, the only steps another customer's
    journey holds; tested with such steps in ``tests/test_incremental.py``)."""
    folder = settings.work_path / "marts" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        steps = wh.query("select count(*) from journeys.steps").item()
        shards = max(1, -(-steps // settings.scale.events_per_shard))
        sharded = f"select *, hash(customer_key) % {int(shards)} as shard from journeys.journeys"
        parts = wh.copy_to_parquet(
            f"select {', '.join(FACT_JOURNEY_COLUMNS)}, shard from ({sharded})",
            folder / "journeys",
            partition_by="shard",
        )
        wh.copy_to_parquet(
            "select s.* exclude (session_id), j.shard from journeys.steps s "
            f"join ({sharded}) j using (journey_id)",
            folder / "steps",
            partition_by="shard",
        )
        for table in _KEPT_PER_JOURNEY:
            wh.empty(table)
        counts: _MartCounts | None = None
        for part in parts:
            rows = _mart_rows(
                _read_part(folder / "steps" / part.name),
                _read_part(part),
                settings,
                regions,
            )
            for table, frame in _kept_rows(rows).items():
                wh.append(table, frame)
            counts = (
                _MartCounts.of(rows)
                if counts is None
                else _summed_counts(counts, _MartCounts.of(rows))
            )
            del rows
        if counts is None:  # no journeys: the counts of none
            counts = _MartCounts.of(
                _mart_rows(
                    wh.query(_MART_STEPS.format(table="journeys.steps")),
                    wh.query(_FACT_JOURNEYS.format(table="journeys.journeys")),
                    settings,
                    regions,
                )
            )
        return counts
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # they hold the journeys' steps


def build_marts(settings: Settings, *, full: bool = False) -> dict[str, int]:
    """Builds the marts from the journeys tables: transitions and their nodes per segment,
    leakage, attribution, funnel, drop-offs, paths; writes the graph exports of segments
    ``all``, ``converted`` and ``dropped``. Returns the row count of each mart.

    Incremental unless ``full`` (or the first build, other settings, journeys rebuilt in full
    since): the customers whose journeys were rebuilt since the last build
    (``journeys.replaced_customers``) have their rows replaced, and the counts of the
    transitions, nodes and attribution add theirs and subtract those of the rows they replaced
    (``journeys.replaced_steps``, ``.replaced_journeys``). The medians and the SQL marts are
    computed over every journey's kept rows (its edges, segments and facts: the funnel,
    drop-offs and segment KPIs read one row per journey, not its steps). Either way the marts
    equal a full build row for row.
    """
    fingerprint = marts_fingerprint(settings)
    regions = store_regions(settings)
    with _open(settings) as wh:
        wh.ensure_tables()
        rebuilt = None if full else _marts_to_rebuild(wh, fingerprint)
        counts = None
        if rebuilt is not None:
            with wh.registered(_rebuilt=rebuilt.to_frame()):
                new = _mart_rows(
                    wh.query(_MART_STEPS.format(table="journeys.steps") + _OF_REBUILT),
                    wh.query(_FACT_JOURNEYS.format(table="journeys.journeys") + _OF_REBUILT),
                    settings,
                    regions,
                )
            replaced = wh.query(_MART_JOURNEYS.format(table="journeys.replaced_journeys"))
            old = _mart_rows(
                wh.query(_MART_STEPS.format(table="journeys.replaced_steps")),
                replaced,
                settings,
                regions,
                kept=False,
            )
            counts = _counts_after(wh, new, old)
        with wh.transaction():
            if counts is None:
                rebuilt = None
                counts = _keep_all_rows(wh, settings, regions)
            else:
                with wh.registered(_replaced=replaced.select("journey_id")):
                    for table, frame in _kept_rows(new).items():
                        wh.delete(table, "journey_id in (select journey_id from _replaced)")
                        wh.append(table, frame)
            transitions = graphs.transitions_from_counts(
                counts.transitions, _transition_seconds(wh)
            )
            nodes = graphs.nodes_from_counts(counts.nodes)
            wh.replace("marts.transitions", transitions)
            wh.replace("marts.transition_nodes", nodes)
            wh.replace("marts.leakage", leakage.leakage_summary(wh.read("marts.leaked_journeys")))
            wh.replace("marts.attribution_numerators", counts.numerators)
            wh.replace("marts.attribution_chain", counts.chain)
            finished = wh.query(
                "select count(*) as conversions, coalesce(sum(revenue), 0) as revenue "
                "from journeys.journeys where status <> 'open' and converted"
            )
            wh.replace(
                "marts.attribution",
                attribution.attribution_from_state(
                    counts.numerators,
                    counts.chain,
                    conversions=int(finished.item(0, "conversions")),
                    revenue=float(finished.item(0, "revenue")),
                ),
            )
            wh.build_mart("marts.funnel")
            wh.build_mart("marts.dropoffs")
            wh.build_mart("marts.paths")
            periods = {"period": settings.graphs.period}
            omnichannel = {"omnichannel": list(dashboards.OMNICHANNEL_PATTERNS)}
            reported = wh.read("marts.period_kpis")
            wh.build_mart("marts.period_kpis", {**periods, **omnichannel})
            wh.append(
                "ops.restatements",
                restatements(reported, wh.read("marts.period_kpis"), run_at=datetime.now(UTC)),
            )
            wh.build_mart("marts.pattern_periods", periods)
            wh.build_mart("marts.pattern_kpis")
            wh.build_mart("marts.segment_kpis")
            wh.build_mart(
                "marts.touchpoint_scorecard",
                {**periods, **settings.scorecard.model_dump()},
            )
            _build_personas(wh, settings)
            rules = _audience_rules(settings)
            members = _build_audiences(wh, rules)
            journey_count = wh.query("select count(*) from journeys.journeys").item()
            wh.append(
                "ops.mart_runs",
                pl.DataFrame(
                    {
                        "run_at": [datetime.now(UTC)],
                        "mode": ["full" if rebuilt is None else "incremental"],
                        "settings_fingerprint": [fingerprint],
                        "journeys": [journey_count],
                        "customers_rebuilt": [
                            wh.query(
                                "select count(distinct customer_key) from journeys.journeys"
                            ).item()
                            if rebuilt is None
                            else rebuilt.len()
                        ],
                    }
                ),
            )
            for table in REPLACED_TABLES:
                wh.empty(table)
        exported = (
            wh.query(
                "select distinct segment from marts.journey_segments "
                "where segment in ('all', 'converted', 'dropped') order by segment"
            )
            .get_column("segment")
            .to_list()
        )
        export_audiences(wh, rules, members, settings.reports_path / "audiences")
        for segment, graph in graphs.graphs_of_segments(transitions, nodes, exported).items():
            for suffix in graphs.GRAPH_FORMATS:
                graphs.export_graph(
                    graph, settings.reports_path / "graphs" / f"transitions-{segment}{suffix}"
                )
        return {
            table: int(wh.query(f"select count(*) as n from {table}").item()) for table in MARTS
        }


def _audience_rules(settings: Settings) -> audiences.AudienceRules:
    return audiences.load_audiences(
        settings.resolve(settings.audiences) if settings.audiences else None
    )


def _audience_events(
    wh: Warehouse, rules: audiences.AudienceRules, *, as_of: datetime
) -> pl.DataFrame:
    """The events the audiences' rules look at: those of the longest window before ``as_of``."""
    since = as_of - timedelta(days=max(audience.within_days for audience in rules.audience))
    return wh.query(
        f"select {', '.join(audiences.EVENT_COLUMNS)} from core.events "
        "where occurred_at between $since and $as_of",
        {"since": since, "as_of": as_of},
    )


def audience_members_in(
    wh: Warehouse, rules: audiences.AudienceRules, *, as_of: datetime | None = None
) -> pl.DataFrame:
    """The audiences' members in the database of ``wh`` as of ``as_of`` (default: the end of
    the data, as a run takes it)."""
    as_of = as_of or end_of_data_in(wh)
    return audiences.audience_members(_audience_events(wh, rules, as_of=as_of), rules, as_of=as_of)


def _build_audiences(wh: Warehouse, rules: audiences.AudienceRules) -> pl.DataFrame:
    """The audiences' members as of the end of the data (``marts.audience_members``), and
    their sizes with who entered and left since the last run (appended to
    ``ops.audience_sizes``). Returns the members."""
    if wh.query("select count(*) = 0 from core.events").item():  # every audience is empty
        as_of = None
        members = pl.DataFrame(schema={"audience": pl.String, "customer_key": pl.String})
    else:
        as_of = end_of_data_in(wh)  # as the journeys' statuses see it
        members = audience_members_in(wh, rules, as_of=as_of)
    changes = audiences.audience_changes(wh.read("marts.audience_members"), members, rules)
    wh.replace("marts.audience_members", members)
    wh.append(
        "ops.audience_sizes",
        changes.select(
            pl.lit(datetime.now(UTC)).alias("run_at"),
            pl.lit(as_of, pl.Datetime("us", "UTC")).alias("as_of"),
            pl.all(),
        ),
    )
    return members


def member_hashes(wh: Warehouse, members: pl.DataFrame) -> pl.DataFrame:
    """The keyed identifiers an audience export may carry (``audiences.EXPORT_IDENTIFIERS``)
    of the customers in ``members``: ``core.customers`` rows."""
    with wh.registered(_members=members.select("customer_key").unique()):
        return wh.query(
            "select identifier_type, identifier_value, customer_key from core.customers "
            "where list_contains($types, identifier_type) "
            "and customer_key in (select customer_key from _members)",
            {"types": list(audiences.EXPORT_IDENTIFIERS)},
        )


def export_audiences(
    wh: Warehouse, rules: audiences.AudienceRules, members: pl.DataFrame, folder: Path
) -> list[Path]:
    """Writes each audience as ``<folder>/<name>.csv`` and ``.parquet`` for a CRM import:
    the pseudonymous customer key and the keyed e-mail and phone hashes, no raw identifier;
    removes the files of audiences no longer in the rules."""
    folder.mkdir(parents=True, exist_ok=True)
    identifiers = member_hashes(wh, members)
    names = {audience.name for audience in rules.audience}
    for stale in (*folder.glob("*.csv"), *folder.glob("*.parquet")):
        if stale.stem not in names:
            stale.unlink()
    written = []
    for audience in rules.audience:
        rows = audiences.audience_export(
            members.filter(pl.col("audience") == audience.name), identifiers
        )
        for path, write in (
            (folder / f"{audience.name}.csv", rows.write_csv),
            (folder / f"{audience.name}.parquet", rows.write_parquet),
        ):
            write(path)
            written.append(path)
    return written


def build_personas(settings: Settings) -> personas.PersonaModel:
    """Builds the personas and their marts again from the journeys and marts already built
    (``journey personas --k``): what :func:`build_marts` does at its end."""
    with _open(settings) as wh:
        wh.ensure_tables()
        with wh.transaction():
            return _build_personas(wh, settings)


def _build_personas(wh: Warehouse, settings: Settings) -> personas.PersonaModel:
    """Clusters every customer with a journey into personas (``[personas]``) and builds the
    persona marts from the journeys and the kept rows; records the run in ``ops.persona_runs``.
    Done in full every time, from tables that equal a full build's: the same data and seed
    give the same personas, whichever runs built the journeys."""
    options = settings.personas
    features = wh.query_file("persona_features")
    model = personas.fit_personas(
        features, k=options.k, max_k=options.max_k, seed=options.seed, sample=options.sample
    )
    assigned = personas.assign_personas(features, model)
    wh.replace("marts.customer_personas", assigned)
    wh.build_mart("marts.persona_paths")
    typical = wh.query(
        "select persona, path as typical_path from marts.persona_paths where rank = 1"
    )
    wh.replace(
        "marts.personas",
        personas.describe_personas(features, assigned).join(
            typical, on="persona", how="left", maintain_order="left"
        ),
    )
    for mart in ("persona_funnel", "persona_dropoffs", "persona_patterns", "persona_transitions"):
        wh.build_mart(f"marts.{mart}")
    wh.append(
        "ops.persona_runs",
        pl.DataFrame(
            {
                "run_at": [datetime.now(UTC)],
                "customers": [features.height],
                "personas": [model.k],
                "chosen_by": [model.chosen_by],
                "seed": [model.seed],
                "silhouettes": [json.dumps({str(k): v for k, v in model.silhouettes.items()})],
                "features": [",".join(personas.FEATURE_NAMES)],
            }
        ),
    )
    return model


def rebuild_as_of(settings: Settings, *, loaded_by: datetime, folder: Path) -> Settings:
    """Rebuilds the tables and the dashboard as they were once the files loaded until
    ``loaded_by`` were in: a database of its own, ``folder/journeys.duckdb``, made from the raw
    rows ingested by then (event time and ingest time are both kept), stitched, sessionized
    and summarised again with this config; the dashboard in ``folder/dashboard.html``.
    Returns the settings that read it.

    Raises:
        ConfigError: ``JOURNEY_DATABASE`` is set (the copy would overwrite that database).
        NotFoundError: nothing had been loaded by then.
    """
    target = settings.model_copy(
        update={
            "output": settings.output.model_copy(
                update={"database": str(folder / "journeys.duckdb"), "reports_dir": str(folder)}
            )
        }
    )
    if target.database_path.resolve() == settings.database_path.resolve():
        msg = (
            f"as-of: the environment variable {DATABASE_ENV} names the database to write; "
            "unset it to rebuild a copy as of a day"
        )
        raise ConfigError(msg)
    with _open(settings, read_only=True) as wh:
        by = {"by": loaded_by}
        raw = {
            table: wh.query(f"select * from {table} where ingested_at <= $by", by)
            for table in wh.tables("raw")
        }
        batches = wh.query("select * from ops.batches where started_at <= $by", by)
        erased = wh.read("ops.erased_identifiers")
    if batches.is_empty():
        msg = f"as-of: no file had been loaded by {loaded_by:%Y-%m-%d %H:%M:%S %Z}"
        raise NotFoundError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (target.database_path, target.database_path.with_name("journeys.duckdb.wal")):
        stale.unlink(missing_ok=True)
    with _open(target) as out:
        out.ensure_tables()
        for table, frame in raw.items():
            out.ensure_raw_table(table, frame)
            out.append(table, frame)
        out.append("ops.batches", batches)
        out.append("ops.erased_identifiers", erased)  # an erased person stays erased
    build_core(target)
    build_journeys(target, full=True)
    build_marts(target)
    export_dashboard(target)
    return target


RESTATED_FIGURES = ("journeys", "conversions", "revenue")


def restatements(before: pl.DataFrame, after: pl.DataFrame, *, run_at: datetime) -> pl.DataFrame:
    """The figures of ``marts.period_kpis`` that changed for periods already settled in
    ``before`` (late events that landed in a period already reported): one row per period
    and figure, with the number before and after. A period gone from ``after`` (its journeys
    all erased) counts as 0."""
    settled = before.filter("is_settled").select("period", *RESTATED_FIGURES)
    joined = settled.join(
        after.select("period", *RESTATED_FIGURES), on="period", how="left", suffix="_after"
    )
    rows = pl.concat(
        [
            joined.select(
                pl.lit(run_at, dtype=pl.Datetime("us", "UTC")).alias("run_at"),
                "period",
                pl.lit(figure).alias("figure"),
                pl.col(figure).cast(pl.Float64).alias("before"),
                pl.col(f"{figure}_after").cast(pl.Float64).fill_null(0).alias("after"),
            )
            for figure in RESTATED_FIGURES
        ]
    )
    return rows.filter(pl.col("before") != pl.col("after")).sort("period", "figure")


def read_restatements(settings: Settings, *, since: datetime) -> pl.DataFrame:
    """The restatements (:func:`restatements`) of the runs since ``since``."""
    with _open(settings, read_only=True) as wh:
        return wh.query(
            "select * from ops.restatements where run_at >= $since order by run_at, period, figure",
            {"since": since},
        )


FORGET_BY = {
    "email": "email_hash",
    "phone": "phone_hash",
    "loyalty_id": "loyalty_id",
    "customer_key": "customer_key",
}
# identifiers that appear in source text as they are (e-mail, phone and card only as hashes)
_PLAIN_IDENTIFIERS = ("user_id", "loyalty_id", "anonymous_id")


@dataclass(frozen=True)
class ErasureReport:
    identifiers: int
    events: int
    rows_deleted: dict[str, int]


def _identifier_to_forget(by: str, value: str, *, key: str) -> tuple[str, str]:
    """(identifier type, stored value) of what ``journey forget`` was given."""
    if by not in FORGET_BY:
        msg = f"forget by: expected one of {', '.join(FORGET_BY)}, found {by!r}"
        raise JourneyError(msg)
    normalise = {"email": privacy.normalise_email, "phone": privacy.normalise_phone}.get(by)
    if normalise is None:
        return FORGET_BY[by], value.strip()
    clean = pl.select(normalise(pl.lit(value, dtype=pl.String))).to_series()
    return FORGET_BY[by], str(privacy.keyed_hash(clean, key=key).item())


def _person_rows(columns: list[str]) -> str:
    """A where clause over a raw table's columns: the row carries one of the person's
    identifiers (``_ids``) or is the record of one of the person's events (``_records``)."""
    tests = [
        f"{column} in (select identifier_value from _ids where identifier_type = '{column}')"
        for column in identity.IDENTIFIER_TYPES
        if column in columns
    ]
    if "record_key" in columns:
        tests.append("source || ':' || record_key in (select record from _records)")
    if "receipt_id" in columns:
        tests.append("source || ':' || receipt_id in (select record from _records)")
    return " or ".join(tests) or "false"


def forget(settings: Settings, *, by: str, value: str) -> ErasureReport:
    """Erases one person: their events and identifiers from every schema (raw, core,
    journeys, quarantine, the merge ledger), then rebuilds the journeys and marts they fed.

    Other customers' journeys stay as they were: the end of the data is kept as it was
    before, and identities are not stitched again (an identifier the person shared is not
    theirs and stays). ``ops.erasures`` records the erasure without the identifier.

    Raises:
        NotFoundError: no customer has the identifier; nothing was changed.
    """
    kind, stored = _identifier_to_forget(by, value, key=settings.hash_key())
    with _open(settings) as wh:
        wh.ensure_tables()
        if kind == "customer_key":
            customer = stored
        else:
            found = wh.query(
                "select customer_key from core.customers "
                "where identifier_type = $kind and identifier_value = $value",
                {"kind": kind, "value": stored},
            )
            customer = found.item() if found.height else ""
        ids = wh.query(
            "select identifier_type, identifier_value from core.customers "
            "where customer_key = $customer",
            {"customer": customer},
        )
        events = wh.query(
            "select event_id, source from core.events where customer_key = $customer",
            {"customer": customer},
        )
        if ids.is_empty() and events.is_empty():
            msg = (
                f"No customer in {settings.database_path} has this {by.replace('_', ' ')}; "
                "nothing was erased. Check the value (an e-mail or phone is matched after "
                "normalising, with the config's hashing key)."
            )
            raise NotFoundError(msg)
        as_of = end_of_data_in(wh)
        pos = [name for name, source in settings.sources.items() if isinstance(source, PosSource)]
        records = events.select(
            pl.when(pl.col("source").is_in(pos))
            .then(pl.col("event_id").str.replace(r":[^:]*$", ""))
            .otherwise(pl.col("event_id"))
            .alias("record")
        ).unique()
        plain = ids.filter(pl.col("identifier_type").is_in(_PLAIN_IDENTIFIERS))
        deleted: dict[str, int] = {}
        with wh.transaction(), wh.registered(_ids=ids, _records=records):
            for table, columns in wh.tables("raw").items():
                if table == "raw.pos_lines":
                    continue  # after its receipts' keys are known (below)
                deleted[table] = wh.delete(table, _person_rows(columns))
            if "raw.pos_lines" in wh.tables("raw"):
                deleted["raw.pos_lines"] = wh.delete(
                    "raw.pos_lines", _person_rows(["receipt_id", "source"])
                )
            if plain.height:
                # a rejected line is only text: find the person's by their identifiers in it
                pattern = (
                    "(^|[^A-Za-z0-9_.@-])("
                    + "|".join(re.escape(v) for v in plain.get_column("identifier_value").to_list())
                    + ")($|[^A-Za-z0-9_.@-])"
                )
                deleted["quarantine.rejects"] = wh.delete(
                    "quarantine.rejects", "regexp_matches(raw_text, $pattern)", {"pattern": pattern}
                )
            deleted["core.events"] = wh.delete(
                "core.events", "customer_key = $customer", {"customer": customer}
            )
            deleted["core.identity_links"] = wh.delete(
                "core.identity_links",
                "(left_type, left_value) in (select (identifier_type, identifier_value) from _ids)"
                " or (right_type, right_value) in "
                "(select (identifier_type, identifier_value) from _ids)",
            )
            deleted["core.customers"] = wh.delete(
                "core.customers", "customer_key = $customer", {"customer": customer}
            )
            deleted["ops.identity_changes"] = wh.delete(
                "ops.identity_changes",
                "customer_key_before = $customer or customer_key_after = $customer",
                {"customer": customer},
            )
            deleted = {table: count for table, count in deleted.items() if count}
            # identities are not stitched again now; the next core build is full (the
            # stored links no longer hold the evidence of every raw row), and it stitches
            # from scratch: the person's links are gone from the stored graph and from the
            # evidence alike, so an update could not see what their removal changes (an
            # identifier shared with the person is shared no more)
            wh.append(
                "ops.identity_runs",
                _identity_run(
                    _stored_identity_counts(wh),
                    "",  # no settings' fingerprint: the next stitch is full
                    mode="erasure",
                    decided=0,
                    changes=pl.DataFrame(schema=identity.CHANGE_SCHEMA),
                    now=datetime.now(UTC),
                ).row,
            )
            _record_core_run(
                wh,
                now=datetime.now(UTC),
                mode="erasure",
                fingerprint="",
                batches=pl.DataFrame(schema={"batch_id": pl.String}),
                events=wh.query("select count(*) from core.events").item(),
                written=0,
                rekeyed=0,
            )
            # kept so that a file written before the erasure does not bring the person back
            wh.append(
                "ops.erased_identifiers",
                ids.select(
                    "identifier_type",
                    erased_digests(ids, key=settings.hash_key()).alias("identifier_digest"),
                ).unique(),
            )
            wh.append(
                "ops.erasures",
                pl.DataFrame(
                    {
                        "erased_at": [datetime.now(UTC)],
                        "requested_by": [by],
                        "identifiers": [ids.height],
                        "events": [events.height],
                        "rows_deleted": [sum(deleted.values())],
                        "tables": [json.dumps(deleted, sort_keys=True)],
                    }
                ),
            )
    build_journeys(settings, as_of=as_of)
    build_marts(settings)
    # shards of a run that failed before it cleaned up hold events in the clear (a work_dir
    # is one database's: another's run using it now would lose its shards)
    for folder in ("journeys", "marts"):
        shutil.rmtree(settings.work_path / folder, ignore_errors=True)
    return ErasureReport(identifiers=ids.height, events=events.height, rows_deleted=deleted)


def read_dashboard_data(settings: Settings) -> dashboards.DashboardData:
    with _open(settings, read_only=True) as wh:
        return dashboards.DashboardData(
            transitions=wh.read("marts.transitions"),
            dropoffs=wh.read("marts.dropoffs"),
            funnel=wh.read("marts.funnel"),
            patterns=wh.read("marts.patterns"),
            paths=wh.read("marts.paths"),
            attribution=wh.read("marts.attribution"),
            period_kpis=wh.read("marts.period_kpis"),
            pattern_periods=wh.read("marts.pattern_periods"),
            pattern_kpis=wh.read("marts.pattern_kpis"),
            segment_kpis=wh.read("marts.segment_kpis"),
            leakage=wh.read("marts.leakage"),
            personas=wh.read("marts.personas"),
            scorecard=wh.read("marts.touchpoint_scorecard"),
        )


def export_dashboard(settings: Settings) -> Path:
    """Writes ``<reports_dir>/dashboard.html`` from the marts."""
    with _open(settings, read_only=True) as wh:
        first, last = wh.query(
            "select min(started_at) as first, max(ended_at) as last from journeys.journeys"
        ).row(0)
    period = f", {first:%d %b %Y} to {last:%d %b %Y}" if first and last else ""
    html = dashboards.render_dashboard(
        read_dashboard_data(settings),
        title=f"Customer journeys{period}",
        generated_at=_now().strftime("%Y-%m-%d %H:%M UTC"),
    )
    return dashboards.write_dashboard(html, settings.reports_path / "dashboard.html")


def read_truth(folder: Path) -> evaluate.Truth:
    """Reads a simulation's ``truth/`` folder."""
    if not (folder / "events.csv").exists():
        msg = f"{folder} is not a truth folder: expected events.csv and journeys.csv in it."
        raise SourceError(msg)
    summary = folder / "summary.json"
    customers = folder / "customers.csv"
    return replace(
        evaluate.truth_from(
            pl.read_csv(folder / "events.csv", infer_schema=False),
            pl.read_csv(folder / "journeys.csv", infer_schema=False),
            json.loads(summary.read_text()) if summary.exists() else None,
        ),
        customers=pl.read_csv(customers, infer_schema=False) if customers.exists() else None,
    )


def evaluate_run(database: Path, truth_dir: Path, out: Path | None) -> dict[str, Any]:
    """Scores the run in ``database`` against ``truth_dir``; writes the scores as JSON."""
    with Warehouse.open(database, read_only=True) as wh:
        run = evaluate.RunTables(
            events=wh.query("select event_id, customer_key from core.events"),
            steps=wh.query("select event_id, journey_id, position from journeys.steps"),
            journeys=wh.query(
                "select journey_id, status, conversion_event_id, revenue, last_touchpoint "
                "from journeys.journeys"
            ),
            patterns=wh.query("select journey_id, pattern, variant from marts.patterns"),
            batches=wh.read("ops.batches"),
            personas=wh.read("marts.customer_personas")
            if "marts.customer_personas" in wh.tables("marts")
            else None,
        )
    scores = evaluate.evaluate(run, read_truth(truth_dir))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
    return scores


@dataclass(frozen=True)
class Status:
    """The load history of a database, for ``journey status``."""

    sources: pl.DataFrame  # one row per source: files, rows read, loaded, duplicates, rejected
    batches: pl.DataFrame  # one row per loaded file, newest first
    reasons: pl.DataFrame  # one row per (source, reject reason), most frequent first


def load_status(database: Path, *, last: int = 20) -> Status:
    """Reads what each source and each batch loaded, and why rows were rejected."""
    with Warehouse.open(database, read_only=True) as wh:
        batches = wh.query(
            "select source, file, rows_read, rows_loaded, rows_duplicate, rows_rejected, "
            "finished_at from ops.batches order by finished_at desc, source, file"
        )
        reasons = wh.query(
            "select source, reason, count(*) as rows, min(file || ':' || line_no) as first_seen "
            "from quarantine.rejects group by all order by rows desc, source, reason"
        )
    sources = (
        batches.group_by("source")
        .agg(
            pl.len().alias("files"),
            pl.col("rows_read", "rows_loaded", "rows_duplicate", "rows_rejected").sum(),
            pl.col("finished_at").max().alias("last_load"),
        )
        .sort("source")
    )
    return Status(sources, batches.head(last), reasons)
