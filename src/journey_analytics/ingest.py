"""Ingest: source files to accepted rows and rejects, then accepted rows to canonical events.

Input grain: one line of a JSON-lines file, or one data row of a CSV file.
Output grain: ``parse_*`` give one row per accepted source row (typed, identifiers hashed,
with ``file``, ``line_no`` and ``record_key``) and one reject per refused row (reason code,
line, raw text with PII masked); ``events_from_*`` give one canonical event (DESIGN.md §3)
per touchpoint. Every source row ends accepted, as a duplicate, or rejected: nothing is
dropped silently.

Everything here is pure: bytes in, frames out (the Segment parser has DuckDB read the file,
through ``warehouse.compute``, and Polars decide; ``_segment_columns.py``). Writing tables is
done by ``jobs.py`` through ``warehouse.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import polars as pl

from journey_analytics import _csv_columns
from journey_analytics._segment_columns import SEGMENT_TYPES, segment_rows
from journey_analytics.errors import ComputeError, SourceError
from journey_analytics.privacy import (
    PERSONAL_TEXT,
    PII_KEYS,
    keyed_hash,
    masked_json,
    normalise_email,
    normalise_phone,
    redact,
    strip_query,
)
from journey_analytics.warehouse import compute

MONEY = pl.Decimal(18, 2)
UTC_TIME = pl.Datetime("us", "UTC")

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "source": pl.String(),
    "channel": pl.String(),
    "touchpoint": pl.String(),
    "stage": pl.String(),
    "is_managed": pl.Boolean(),
    "is_conversion": pl.Boolean(),
    "occurred_at": UTC_TIME,
    "ingested_at": UTC_TIME,
    "batch_id": pl.String(),
    "anonymous_id": pl.String(),
    "user_id": pl.String(),
    "email_hash": pl.String(),
    "phone_hash": pl.String(),
    "loyalty_id": pl.String(),
    "payment_hash": pl.String(),
    "customer_key": pl.String(),
    "order_id": pl.String(),
    "store_id": pl.String(),
    "product_id": pl.String(),
    "category": pl.String(),
    "fulfilment": pl.String(),
    "revenue": MONEY,
    "currency": pl.String(),
    "properties": pl.String(),
}
REJECT_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(),
    "line_no": pl.Int64(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw_text": pl.String(),
}
# Properties the pipeline computes with; others (price, rating, ...) are kept as sent.
NUMERIC_PROPERTIES = ("revenue",)
IDENTIFIER_FIELDS = ("anonymous_id", "user_id", "email", "phone", "loyalty_id", "payment_token")
PII_FIELDS = frozenset({"email", "phone", "payment_token"})
# Placeholder values that identify nobody (lower case); the config's identity.blocked_values.
BLOCKED_VALUES = frozenset(
    {"0", "-1", "null", "none", "nan", "undefined", "anonymous", "unknown", "test"}
)

CONTACT_COLUMNS = (
    "contact_id",
    "email",
    "phone",
    "loyalty_id",
    "user_id",
    "consent_email",
    "created_at",
)
INTERACTION_COLUMNS = (
    "interaction_id",
    "occurred_at",
    "type",
    "channel",
    "email",
    "phone",
    "loyalty_id",
    "store_id",
    "product_id",
    "category",
    "campaign",
)
RECEIPT_COLUMNS = (
    "receipt_id",
    "store_id",
    "receipt_ts",
    "loyalty_id",
    "payment_token",
    "currency",
    "total",
)
LINE_COLUMNS = (
    "receipt_id",
    "line_no",
    "sku",
    "category",
    "quantity",
    "amount",
    "line_type",
    "order_id",
)


@dataclass(frozen=True)
class Parsed:
    """Accepted rows and rejects of one source file."""

    rows: pl.DataFrame
    rejects: pl.DataFrame

    @property
    def rows_read(self) -> int:
        return self.rows.height + self.rejects.height


class RowRejected(Exception):
    """Raised inside a row parser; becomes one row of ``quarantine.rejects``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- small value parsers


def _text(value: Any) -> str | None:
    """A non-empty string, or None; numbers are accepted as their decimal text."""
    if isinstance(value, str):  # first: nearly every value is text
        return value.strip() or None
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return str(value).strip() or None


def _utc_timestamp(value: Any, field: str) -> datetime:
    """An ISO-8601 timestamp with a zone (``Z`` or an offset), as an aware UTC datetime."""
    text = _text(value)
    if text is None:
        raise RowRejected("missing_timestamp", f"{field} is missing")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RowRejected(
            "invalid_timestamp", f"{field}: expected ISO-8601 with a zone, found {text!r}"
        ) from None
    if parsed.tzinfo is None:
        raise RowRejected(
            "invalid_timestamp", f"{field}: expected a zone (Z or +hh:mm), found {text!r}"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is in year 10000 in UTC
        raise RowRejected(
            "invalid_timestamp", f"{field}: out of range in UTC (years 1-9999), found {text!r}"
        ) from None


def _local_timestamp(value: Any, field: str) -> datetime:
    """A wall-clock timestamp without zone, ``YYYY-MM-DD HH:MM:SS``."""
    text = _text(value)
    if text is None:
        raise RowRejected("missing_timestamp", f"{field} is missing")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None or len(text) <= len("2026-01-01"):
        # A zone would contradict the store's own zone; a date alone has no time of day.
        raise RowRejected(
            "invalid_timestamp",
            f"{field}: expected store-local 'YYYY-MM-DD HH:MM:SS' without a zone, found {text!r}",
        )
    return parsed


def _money(value: Any, field: str) -> Decimal | None:
    text = _text(value)
    if text is None:
        return None
    try:
        amount = Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise RowRejected("invalid_number", f"{field}: expected a number, found {text!r}") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise RowRejected("invalid_number", f"{field}: out of range, found {text!r}")
    return amount


def _boolean(value: Any) -> bool | None:
    """true/false, 1/0, yes/no (any case); anything else (empty, "opt-in", a date) is
    unknown: the row still counts for its identifiers."""
    text = (_text(value) or "").lower()
    if text in {"true", "1", "yes", "y"}:
        return True
    if text in {"false", "0", "no", "n"}:
        return False
    return None


def _integer(value: Any, field: str, *, default: int | None = None) -> int:
    """An integer; a missing value is an error unless a default is given."""
    text = _text(value)
    if text is None:
        if default is None:
            raise RowRejected("missing_value", f"{field} is missing")
        return default
    try:
        number = int(text)
    except ValueError:
        raise RowRejected(
            "invalid_number", f"{field}: expected an integer, found {text!r}"
        ) from None
    if not -(2**63) <= number < 2**63:  # the column's 64 bits
        raise RowRejected("invalid_number", f"{field}: out of range, found {text!r}")
    return number


def local_to_utc(local: pl.Expr, zone: str) -> pl.Expr:
    """Converts a wall-clock time in ``zone`` to UTC.

    The rule at daylight-saving changes is Python's ``fold=0`` (PEP 495): a repeated time
    (clocks go back) is its first occurrence; a missing time (clocks go forward) is read with
    the offset in force before the change, so Europe/Rome 2026-03-29 02:30 is 01:30 UTC, and
    2026-10-25 02:30 is 00:30 UTC.
    """
    direct = local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    before_gap = (local - pl.duration(hours=1)).dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null"
    ) + pl.duration(hours=1)
    return pl.coalesce(direct, before_gap).dt.convert_time_zone("UTC")


def _hash_pii(frame: pl.DataFrame, *, key: str) -> pl.DataFrame:
    """Replaces ``email``/``phone``/``payment_token`` columns with keyed hashes."""
    normalisers: dict[str, tuple[str, Callable[[pl.Expr], pl.Expr]]] = {
        "email": ("email_hash", normalise_email),
        "phone": ("phone_hash", normalise_phone),
        "payment_token": ("payment_hash", lambda column: column.str.strip_chars()),
    }
    for column, (hashed, normalise) in normalisers.items():
        if column in frame.columns:
            clean = frame.select(normalise(pl.col(column))).to_series()
            frame = frame.with_columns(keyed_hash(clean, key=key).alias(hashed)).drop(column)
    return frame


# ---------------------------------------------------------------- row iteration


def _lines(data: bytes) -> Iterator[tuple[int, str | None, bytes]]:
    """(1-based line number, decoded text or None if not UTF-8, raw bytes) of non-blank lines."""
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        line = _line(line_no, raw)
        if line is not None:
            yield line


def _line(line_no: int, raw: bytes) -> tuple[int, str | None, bytes] | None:
    """One line as ``_lines`` gives it; None for a blank line."""
    stripped = raw.rstrip(b"\r")
    if not stripped.strip():
        return None
    try:
        return line_no, stripped.decode("utf-8"), stripped
    except UnicodeDecodeError:
        return line_no, None, stripped


def _reject(file: str, line_no: int, reason: str, detail: str, raw: str) -> dict[str, Any]:
    return {
        "file": file,
        "line_no": line_no,
        "reason": reason,
        "detail": redact(detail),
        "raw_text": raw[:2000],
    }


# The raw text of a row, made safe to keep (PII masked) only if the row is rejected.
RawText = str | Callable[[], str]
Row = tuple[int, str | None, RawText, Any]


def _text_of(raw: RawText) -> str:
    return raw() if callable(raw) else raw


def _collect(
    rows: Iterator[Row],
    parse_row: Callable[[Any], dict[str, Any]],
    *,
    file: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs ``parse_row`` on each row; a ``RowRejected`` becomes a reject, not an error."""
    accepted, rejects = [], []
    for line_no, problem, raw, row in rows:
        if problem is not None:
            rejects.append(
                _reject(file, line_no, problem, problem.replace("_", " "), _text_of(raw))
            )
            continue
        try:
            parsed = parse_row(row)
        except RowRejected as rejected:
            rejects.append(_reject(file, line_no, rejected.reason, rejected.detail, _text_of(raw)))
            continue
        accepted.append({"file": file, "line_no": line_no, **parsed})
    return accepted, rejects


def _json_rows(lines: Iterable[tuple[int, str | None, bytes]]) -> Iterator[Row]:
    for line_no, text, raw in lines:
        if text is None:
            yield line_no, "invalid_utf8", redact(raw.decode("utf-8", "replace")), None
            continue
        try:
            value = _loads(text)
        except (json.JSONDecodeError, RecursionError):
            yield line_no, "invalid_json", redact(text), None
            continue
        if not isinstance(value, dict) or _lone_surrogate(text, value):
            yield line_no, "invalid_json", redact(text), None
            continue
        yield line_no, None, partial(masked_json, value), value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(text: str, value: Any) -> bool:
    """Whether the JSON text escapes half of a UTF-16 surrogate pair with no other half
    (``"\\ud800"``): valid JSON grammar, but no Unicode text; no column can hold it."""
    if not _SURROGATE_ESCAPE.search(text):  # a pair escaped whole decodes to one character
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _loads(text: str) -> Any:
    """JSON text as Python values. A comma before a closing bracket is tolerated, as DuckDB's
    reader (the fast path) tolerates it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if not _TRAILING_COMMA.search(text):
            raise
        return json.loads(_TRAILING_COMMA.sub(r"\1", text))


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


def _printable(text: str) -> str:
    """Text with the bytes that were not UTF-8 shown as replacement characters."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _masked_csv(header: list[str], fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(
        "<redacted>" if column in PII_FIELDS and value else value
        for column, value in zip(header, fields, strict=True)
    )
    return out.getvalue()


def _table_rows(
    data: bytes, *, file: str, required: tuple[str, ...], delimiter: str = ","
) -> Iterator[Row]:
    """Rows of a CSV or a Parquet file (told apart by Parquet's magic bytes) as dicts of text."""
    if data[:4] == b"PAR1":
        return _parquet_rows(data, file=file, required=required)
    return _csv_rows(data, file=file, required=required, delimiter=delimiter)


def _parquet_rows(data: bytes, *, file: str, required: tuple[str, ...]) -> Iterator[Row]:
    """Rows of a Parquet file as dicts of text, numbered from 1 (the row number, not a line);
    typed values become the text a CSV export would hold (a naive timestamp as
    ``2026-03-14 15:32:10``)."""
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except pl.exceptions.PolarsError as error:
        msg = f"{file}: not a readable Parquet file: {error}"
        raise SourceError(msg) from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        msg = (
            f"{file}: expected the columns {', '.join(required)}; missing {', '.join(missing)} "
            f"(found {', '.join(frame.columns)})"
        )
        raise SourceError(msg)
    for row_no, row in enumerate(frame.select(required).iter_rows(named=True), start=1):
        text = {k: "" if v is None else str(v) for k, v in row.items()}
        masked = {k: "<redacted>" if k in PII_FIELDS and v else v for k, v in text.items()}
        yield row_no, None, partial(json.dumps, masked, ensure_ascii=False), text


def _csv_rows(
    data: bytes, *, file: str, required: tuple[str, ...], delimiter: str = ","
) -> Iterator[Row]:
    """Rows of a CSV file as dicts, numbered by the line they start on; quoted fields may hold
    line breaks. The header must have every required column. Only empty lines are skipped: a
    line of empty fields is a row (and is rejected for what it lacks)."""
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogateescape")
    # the lines as the reader counts them (a lone carriage return ends one too), for the
    # text of a rejected record
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next((fields for fields in reader if fields), None)
    if header is None:
        msg = f"{file}: expected a CSV header with {', '.join(required)}; the file is empty"
        raise SourceError(msg)
    if any(_NOT_UTF8.search(column) for column in header):
        msg = f"{file}, line {reader.line_num}: the header is not UTF-8 text"
        raise SourceError(msg)
    missing = [column for column in required if column not in header]
    if missing:
        msg = (
            f"{file}, line {reader.line_num}: expected the columns {', '.join(required)}; "
            f"missing {', '.join(missing)} (found {', '.join(header)})"
        )
        raise SourceError(msg)
    previous = reader.line_num
    not_utf8 = _NOT_UTF8.search(text) is not None
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as error:  # one broken record; the reader goes on with the next
            start, previous = previous + 1, reader.line_num
            record = _record_text(lines[start - 1 : previous])
            yield start, "invalid_csv", redact(f"{error}: {record}"), None
            continue
        if fields is None:
            return
        start, previous = previous + 1, reader.line_num
        if not fields:
            continue
        # the record's text is only kept for a reject; a field can hold a byte that was not
        # UTF-8 only if the file does
        if not_utf8 and any(_NOT_UTF8.search(field) for field in fields):
            record = _record_text(lines[start - 1 : previous])
            yield start, "invalid_utf8", redact(record), None
        elif len(fields) != len(header):
            record = _record_text(lines[start - 1 : previous])
            yield start, "wrong_field_count", redact(record), None
        else:
            row = dict(zip(header, fields, strict=True))
            yield start, None, partial(_masked_csv, header, fields), row


def _csv_lines(
    data: bytes, numbers: list[int], *, file: str, required: tuple[str, ...], delimiter: str
) -> Iterator[Row]:
    """``_csv_rows`` of the lines of a plain CSV file (``_csv_columns.plain_csv``) numbered
    in ``numbers``, in order: its header and those lines make a CSV file of their own, one
    record a line."""
    spans = _csv_columns.line_spans(data, [1, *numbers])
    text = b"\n".join(data[start:end] for start, end in spans)
    for line_no, problem, raw, row in _csv_rows(
        text, file=file, required=required, delimiter=delimiter
    ):
        yield numbers[line_no - 2], problem, raw, row


def _csv_parsed(
    data: bytes,
    *,
    file: str,
    required: tuple[str, ...],
    parse_row: Callable[[Any], dict[str, Any]],
    vectorised: Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.Series]],
    schema: dict[str, Any],
    delimiter: str = ",",
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The accepted rows (``schema``) and rejects of a CSV or Parquet file. The lines of a
    plain CSV file are decided by ``vectorised`` (``_csv_columns``), the lines it leaves and
    every other file by ``parse_row``, the reference."""
    fields = (
        None
        if data[:4] == b"PAR1"
        else _csv_columns.plain_csv(data, required=required, delimiter=delimiter)
    )
    if fields is None:
        accepted, rejects = _collect(
            _table_rows(data, file=file, required=required, delimiter=delimiter),
            parse_row,
            file=file,
        )
        return _frame(accepted, schema), rejects
    rows, left = vectorised(fields)
    lines = _csv_lines(data, left.to_list(), file=file, required=required, delimiter=delimiter)
    accepted, rejects = _collect(lines, parse_row, file=file)
    columns = [name for name in schema if name != "file"]
    decided = rows.select(pl.lit(file).alias("file"), *columns).cast(pl.Schema(schema))
    return pl.concat([decided, _frame(accepted, schema)]).sort("line_no"), rejects


def _record_text(lines: list[str]) -> str:
    """A CSV record's text, from its lines with their ends: the last end left out, bytes that
    were not UTF-8 shown as replacement characters."""
    return _printable("".join(lines).removesuffix("\n").removesuffix("\r"))


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _rejects(rejects: list[dict[str, Any]]) -> pl.DataFrame:
    return _frame(rejects, REJECT_SCHEMA)


_CARD_SPACING = re.compile(r"[\s-]")


def _clear_blocked(row: dict[str, Any], blocked: frozenset[str]) -> None:
    """Clears identifier values that identify nobody (``unknown``, ``0``, ...)."""
    for field in IDENTIFIER_FIELDS:
        value = row.get(field)
        if value is None:
            continue
        clean = value.strip().lower()
        # a card number is blocked however it is spaced: "4111 1111 1111 1111"
        if clean in blocked or (
            field == "payment_token" and _CARD_SPACING.sub("", clean) in blocked
        ):
            row[field] = None


def _identifiers_required(
    row: dict[str, Any], names: tuple[str, ...], blocked: frozenset[str]
) -> None:
    """Clears blocked identifier values, then requires one of ``names``: a row no identifier
    ties to a person cannot join a journey."""
    _clear_blocked(row, blocked)
    if not any(row.get(name) for name in names):
        raise RowRejected(
            "missing_identifier",
            f"none of {', '.join(names)} is set (blocked values like 'unknown' do not count)",
        )


# ---------------------------------------------------------------- Segment clickstream

SEGMENT_ROW_SCHEMA: dict[str, Any] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "record_key": pl.String,
    "type": pl.String,
    "event_name": pl.String,
    "anonymous_id": pl.String,
    "user_id": pl.String,
    "email": pl.String,
    "phone": pl.String,
    "occurred_at": UTC_TIME,
    "order_id": pl.String,
    "store_id": pl.String,
    "product_id": pl.String,
    "category": pl.String,
    "fulfilment": pl.String,
    "revenue": MONEY,
    "currency": pl.String,
    "referrer_host": pl.String,
    "properties": pl.String,
}


def _corrected_time(message: dict[str, Any]) -> datetime:
    """The event's time, corrected for the device's clock as Segment does.

    When ``originalTimestamp`` is there, ``timestamp`` is already the corrected time (a
    Segment export). Otherwise, with ``sentAt`` and ``receivedAt`` both there, ``timestamp`` is
    the device's clock and the true time is ``receivedAt - (sentAt - timestamp)``: the offset
    between ``timestamp`` and ``sentAt`` is on one clock, so it survives any skew. An event
    cannot have happened after it arrived: the result is at most ``receivedAt``.
    """
    timestamp = _utc_timestamp(message.get("timestamp"), "timestamp")
    if message.get("originalTimestamp") is not None:
        return timestamp
    try:
        sent_at = _utc_timestamp(message.get("sentAt"), "sentAt")
        received_at = _utc_timestamp(message.get("receivedAt"), "receivedAt")
    except RowRejected:
        return timestamp  # nothing to correct with
    try:
        return min(received_at - (sent_at - timestamp), received_at)
    except OverflowError:  # a correction before year 1: the clocks are not worth trusting
        return timestamp


def _host(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:  # e.g. "http://[broken": not a usable referrer, not a bad row
        return None
    return host.lower() if host else None


def _object_field(message: dict[str, Any], key: str) -> dict[str, Any]:
    """A field that must be a JSON object when present (``properties``, ``context``, ...)."""
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowRejected(
            "invalid_type", f"{key}: expected a JSON object, found {type(value).__name__}"
        )
    return value


def _check_number(value: Any, field: str) -> None:
    """A property the Segment e-commerce spec types as a number: a number or numeric text."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return
    try:
        Decimal(str(value))
    except InvalidOperation:
        raise RowRejected(
            "invalid_number", f"{field}: expected a number, found {value!r}"
        ) from None


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (null, a list, a string)."""
    return value if isinstance(value, dict) else {}


def _segment_event_name(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind not in SEGMENT_TYPES:
        raise RowRejected(
            "unknown_type", f"type: expected one of track, page, screen, identify, found {kind!r}"
        )
    if kind == "identify":
        return "identify"
    if kind == "track":
        name = _text(message.get("event"))
        if name is None:
            raise RowRejected("missing_event", "track message without an event name")
        return name
    return f"{kind}:{_text(message.get('name')) or ''}"


def _segment_row(
    message: dict[str, Any], known_events: frozenset[str], blocked: frozenset[str]
) -> dict[str, Any]:
    event_name = _segment_event_name(message)
    if event_name not in known_events:
        raise RowRejected("unmapped_event", f"event {event_name!r} is not in the taxonomy")
    message_id = _text(message.get("messageId"))
    if message_id is None:
        raise RowRejected("missing_id", "messageId is missing")
    occurred_at = _corrected_time(message)
    properties = _object_field(message, "properties")
    context = _object_field(message, "context")
    traits = _object_field(message, "traits") or _object(context.get("traits"))
    for key in NUMERIC_PROPERTIES:
        _check_number(properties.get(key), f"properties.{key}")
    products = properties.get("products")
    first_product = _object(products[0] if isinstance(products, list) and products else None)
    row = {
        "record_key": message_id,
        "type": message["type"],
        "event_name": event_name,
        "anonymous_id": _text(message.get("anonymousId")),
        "user_id": _text(message.get("userId")),
        "email": _text(traits.get("email")),
        "phone": _text(traits.get("phone")),
        "occurred_at": occurred_at,
        "order_id": _text(properties.get("order_id")),
        "store_id": _text(properties.get("store_id")),
        "product_id": _text(properties.get("product_id") or first_product.get("product_id")),
        "category": _text(properties.get("category") or first_product.get("category")),
        "fulfilment": _text(properties.get("fulfilment")),
        "revenue": _money(properties.get("revenue"), "properties.revenue"),
        "currency": _text(properties.get("currency")),
    }
    _identifiers_required(row, ("anonymous_id", "user_id"), blocked)
    page = _object(context.get("page"))
    row["referrer_host"] = _host(page.get("referrer"))
    extra = {
        "url": strip_query(page["url"]) if isinstance(page.get("url"), str) else None,
        "referrer": strip_query(page["referrer"])
        if isinstance(page.get("referrer"), str)
        else None,
        "campaign": context.get("campaign"),
        "device": "app" if context.get("app") is not None else "browser",
    }
    row["properties"] = masked_json({**{k: v for k, v in extra.items() if v}, **properties})
    return row


def parse_segment(
    data: bytes,
    *,
    file: str,
    known_events: frozenset[str],
    hash_key: str,
    blocked_values: frozenset[str] = BLOCKED_VALUES,
    path: Path | None = None,
) -> Parsed:
    """Parses Segment-spec JSON lines (track, page, screen, identify).

    Page and screen names map as ``page:<name>``, identify as ``identify``, track as its event
    name; a name the taxonomy does not know is rejected as ``unmapped_event``.

    DuckDB reads the file (``path``, or ``data`` through a temporary file) on every core and
    decides which lines are plain enough to take (``read_segment_files``); every other line,
    and every line of a file DuckDB refuses, goes through the line-by-line parser
    (``parse_segment_lines``), which decides what is rejected and why.
    """
    if path is not None:
        fields = read_segment_files({path: line_count(data)})[path]
    else:
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as copy:
            copy.write(data)
            copy.flush()
            name = Path(copy.name)
            fields = read_segment_files({name: line_count(data)})[name]
    return parse_segment_fields(
        data,
        fields=fields,
        file=file,
        known_events=known_events,
        hash_key=hash_key,
        blocked_values=blocked_values,
    )


def parse_segment_fields(
    data: bytes,
    *,
    fields: pl.DataFrame | None,
    file: str,
    known_events: frozenset[str],
    hash_key: str,
    blocked_values: frozenset[str] = BLOCKED_VALUES,
) -> Parsed:
    """``parse_segment`` of a file whose lines DuckDB has read already (``fields``, from
    ``read_segment_files``; None when it refused the file)."""
    if fields is None:
        return parse_segment_lines(
            data,
            file=file,
            known_events=known_events,
            hash_key=hash_key,
            blocked_values=blocked_values,
        )
    rows, left = segment_rows(
        fields,
        file=file,
        known_events=known_events,
        blocked_values=blocked_values,
        strip_query=strip_query,
        host=_host,
        personal_keys=PII_KEYS,
        personal_text=PERSONAL_TEXT,
    )
    accepted: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    if not left.is_empty():
        accepted, rejects = _collect(
            _json_rows(_numbered_lines(data, set(left.to_list()))),
            lambda message: _segment_row(message, known_events, blocked_values),
            file=file,
        )
    combined = pl.concat([rows, _frame(accepted, SEGMENT_ROW_SCHEMA)], how="vertical_relaxed")
    return Parsed(_hash_pii(combined.sort("line_no"), key=hash_key), _rejects(rejects))


# What may be personal in stored properties, for DuckDB's regular expressions (RE2, whose \d
# is ASCII only): a personal key in quotes, or PERSONAL_TEXT.
_SEGMENT_PERSONAL = (
    '(?i)"(' + "|".join(sorted(PII_KEYS)) + ')"|' + PERSONAL_TEXT.replace(r"\d", r"\p{Nd}")
)


def line_count(data: bytes) -> int:
    """The number of lines of a file, a last line without its newline included."""
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


# Where DuckDB says it refused a read, e.g. 'Malformed JSON in file "/d/web.jsonl", at byte 1
# in line 3: ...' or 'JSON transform error in file "/d/web.jsonl", in line 7: ...'.
_REFUSED_LINE = re.compile(r'in file "(?P<file>.+?)",(?: at byte \d+)? in line (?P<line>\d+)')


def read_segment_files(
    lines: dict[Path, int], *, smallest: int = 1024, tries: int = 32
) -> dict[Path, pl.DataFrame | None]:
    """DuckDB's decision on each line of each Segment file (``sql/ingest/segment_files.sql``),
    numbered by line, for ``segment_rows``; None for a file DuckDB could not read at all.

    ``lines`` maps each file to its number of lines. The files are read in one pass by
    DuckDB's JSON reader, which keeps every core busy however small each file is. When the
    reader refuses the read (a line that is not JSON, a repeated key, ...), the files are read
    again line by line (``segment_messages_checked.sql``): the lines the reader would refuse are
    not sure, so the Python parser reads them, and the others are decided as usual. Only if
    that fails too (a file that is not UTF-8) does DuckDB's message name a line to leave out,
    ``tries`` times, or else the files are read in halves down to ``smallest`` lines.
    """
    found: dict[Path, pl.DataFrame | None] = dict.fromkeys(lines)
    paths = [path for path, count in lines.items() if count > 0]
    if not paths:
        return found
    checked = False
    try:
        fields = _segment_fields(paths, checked=False)
    except ComputeError as error:
        try:
            fields = _segment_fields_stood_in(paths, lines, tries=_STAND_IN_TRIES)
        except ComputeError:
            try:
                fields, checked = _segment_fields(paths, checked=True), True
            except ComputeError:
                wanted = {path: lines[path] for path in paths}
                return found | _read_again(wanted, str(error), smallest=smallest, tries=tries)
    # The rows come file after file, each in the order of its lines: one slice per file (a
    # file in two runs would mean the order was lost; then Python reads every file)
    runs = fields.get_column("filename").rle()
    if runs.struct.field("value").is_duplicated().any():
        return found
    fields = fields.drop("filename")
    start = 0
    for length, name in runs.struct.unnest().iter_rows():
        path = Path(name)
        if lines.get(path) == length:
            found[path] = fields.slice(start, length).with_row_index("line_no", offset=1)
        elif not checked and path in lines:  # the reader skipped a blank line
            found[path] = _read_checked(path, lines[path], smallest, tries)
        elif lines.get(path, 0) > smallest:
            found[path] = _read_in_pieces(path, _halves(lines[path]), smallest, tries)
        start += length
    return found


# The bytes _doubtful_lines looks at: braces, line ends and other control characters.
_STRUCTURE = bytes(byte for byte in range(256) if byte < 0x20 or byte in b"{}")
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in _STRUCTURE)
_OPEN, _CLOSE, _NEWLINE, _RETURN = b"{}\n\r"
# How many more lines the reader may name before the files are read line by line instead
_STAND_IN_TRIES = 4
# What stands in for a doubtful line in the copy the reader reads: an object with no field,
# which no line is sure of (it has no messageId), so the Python parser reads the line itself.
_STAND_IN = b"{}"


def _doubtful_lines(data: bytes) -> set[int]:
    """The numbers of the lines of a JSON-lines file that DuckDB's reader may refuse or skip,
    found without parsing: a line without braces (a blank line too), whose braces do not
    pair up (a line cut short), with a control character other than its line end (JSON
    strings hold none), or that is not UTF-8. A cheap guess, not a decision: a line that
    passes may still be refused (the reader says which), and a line that fails goes to the
    Python parser, the reference. One pass over the bytes, the rest over what it keeps."""
    lines = line_count(data)
    kept = np.frombuffer(data.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    newline = kept == _NEWLINE
    line = np.cumsum(newline) - newline  # the 0-based line of each byte kept, its end too

    def per_line(wanted: np.ndarray) -> np.ndarray:
        return np.bincount(line[wanted], minlength=lines)[:lines]

    opens, closes = per_line(kept == _OPEN), per_line(kept == _CLOSE)
    controls = per_line((kept < _NEWLINE) | ((kept > _NEWLINE) & (kept < 0x20) & (kept != _RETURN)))
    doubtful = (opens == 0) | (opens != closes) | (controls > 0)
    return {int(n) + 1 for n in np.flatnonzero(doubtful)} | _csv_columns.lines_not_utf8(data)


def _stood_in(data: bytes, doubtful: set[int]) -> bytes:
    """``data`` with each line numbered in ``doubtful`` replaced by ``_STAND_IN``."""
    pieces, kept_from = [], 0
    for start, end in _csv_columns.line_spans(data, sorted(doubtful)):
        pieces += [data[kept_from:start], _STAND_IN]
        kept_from = end
    pieces.append(data[kept_from:])
    return b"".join(pieces)


def _segment_fields_stood_in(
    paths: list[Path], lines: dict[Path, int], *, tries: int
) -> pl.DataFrame:
    """``_segment_fields`` with DuckDB's reader of files it refused: each file's doubtful
    lines (``_doubtful_lines``) replaced by ``_STAND_IN`` in a copy, so the reader takes the
    rest in one pass, line numbers unchanged, and the Python parser reads those lines from
    the file itself. When the reader still refuses a line, that line and the one before it
    (DuckDB names the line after malformed JSON) are stood in for too, ``tries`` times.

    Raises:
        ComputeError: when the reader still refuses the copies.
    """
    doubtful = {path: _doubtful_lines(path.read_bytes()) for path in paths}
    with tempfile.TemporaryDirectory(prefix="segment-") as folder:
        for _ in range(tries):
            copies: dict[Path, Path] = {}  # what the reader reads: the original, or a copy
            for index, path in enumerate(paths):
                copy = path
                if doubtful[path]:
                    copy = Path(folder) / f"{index}.jsonl"
                    copy.write_bytes(_stood_in(path.read_bytes(), doubtful[path]))
                copies[copy] = path
            try:
                fields = _segment_fields(list(copies), checked=False)
            except ComputeError as error:
                refused = _REFUSED_LINE.search(str(error))
                original = copies.get(Path(refused["file"])) if refused else None
                if refused is None or original is None:
                    raise
                named = int(refused["line"])
                more = {n for n in (named - 1, named) if 1 <= n <= lines[original]}
                if not more - doubtful[original]:
                    raise
                doubtful[original] |= more
                continue
            names = {str(copy): str(path) for copy, path in copies.items()}
            return fields.with_columns(pl.col("filename").replace(names))
    msg = f"DuckDB's reader refused the files {tries} times: {', '.join(map(str, paths))}"
    raise ComputeError(msg)


def _read_checked(path: Path, count: int, smallest: int, tries: int) -> pl.DataFrame | None:
    """One file read line by line (``segment_messages_checked.sql``), or else in halves."""
    try:
        fields = _segment_fields([path], checked=True).drop("filename")
    except ComputeError:
        fields = None
    if fields is not None and fields.height == count:
        return fields.with_row_index("line_no", offset=1)
    if count <= smallest:
        return None
    return _read_in_pieces(path, _halves(count), smallest, tries)


def _segment_fields(paths: list[Path], *, checked: bool) -> pl.DataFrame:
    """``segment_files.sql`` over ``paths`` with DuckDB's reader, or checked line by line."""
    return compute(
        "ingest/segment_files.sql",
        {"paths": [str(path) for path in paths], "personal": _SEGMENT_PERSONAL},
        macros=(
            "ingest/segment_messages_checked.sql" if checked else "ingest/segment_messages.sql",
        ),
    )


def _read_again(
    lines: dict[Path, int], message: str, *, smallest: int, tries: int
) -> dict[Path, pl.DataFrame | None]:
    """``read_segment_files`` of files whose read DuckDB refused with ``message``."""
    refused = _REFUSED_LINE.search(message)
    path = Path(refused["file"]) if refused else None
    if refused and path in lines and 1 <= int(refused["line"]) <= lines[path] + 1 and tries > 0:
        # DuckDB names the line of a transform error (not an object, a repeated key) but
        # the line after malformed JSON: the named line and the one before it are left out
        last = min(int(refused["line"]), lines[path])
        bad = max(last - 1, 1)
        others = {other: count for other, count in lines.items() if other != path}
        found = read_segment_files(others, smallest=smallest, tries=tries - 1) if others else {}
        pieces = [(1, bad - 1), (bad, last), (last + 1, lines[path])]
        return found | {path: _read_in_pieces(path, pieces, smallest, tries - 1, skip=bad)}
    if len(lines) > 1:  # the files in two halves, so the good ones still go together
        paths = list(lines)
        found = {}
        for half in (paths[: len(paths) // 2], paths[len(paths) // 2 :]):
            wanted = {path: lines[path] for path in half}
            found |= read_segment_files(wanted, smallest=smallest, tries=tries)
        return found
    path = next(iter(lines))
    if lines[path] <= smallest:
        return {path: None}
    return {path: _read_in_pieces(path, _halves(lines[path]), smallest, tries)}


def _halves(count: int) -> list[tuple[int, int]]:
    """The first and last line of each half of ``count`` lines."""
    return [(1, count // 2), (count // 2 + 1, count)]


def _read_in_pieces(
    path: Path, pieces: list[tuple[int, int]], smallest: int, tries: int, skip: int = 0
) -> pl.DataFrame | None:
    """``read_segment_files`` of a file as pieces (first and last line of each; the piece
    that begins at line ``skip`` left out), each written to a temporary file: the lines of
    the pieces DuckDB reads are decided there, the lines of the others are not sure
    (``is_sure`` false) and go to the Python parser. None when no piece could be read."""
    data = path.read_bytes()
    starts = [0]  # byte offset of each line's start, up to the end of the file
    for _ in range(pieces[-1][1]):
        end = data.find(b"\n", starts[-1])
        starts.append(len(data) if end < 0 else end + 1)
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for first, last in pieces:
            if first <= last and first != skip:
                piece = Path(folder) / f"lines-{first}-{last}.jsonl"
                piece.write_bytes(data[starts[first - 1] : starts[last]])
                files[piece] = (first, last)
        read = read_segment_files(
            {piece: last - first + 1 for piece, (first, last) in files.items()},
            smallest=smallest,
            tries=tries,
        )
    if all(fields is None for fields in read.values()):
        return None
    decided = {files[piece][0]: fields for piece, fields in read.items()}
    frames = []
    for first, last in pieces:
        fields = decided.get(first)
        if fields is None:  # not sure of any line: the Python parser reads them
            fields = pl.DataFrame(
                {"line_no": pl.int_range(1, last - first + 2, dtype=pl.UInt32, eager=True)}
            ).with_columns(pl.lit(value=False).alias("is_sure"))
        frames.append(fields.with_columns(pl.col("line_no") + (first - 1)))
    return pl.concat(frames, how="diagonal_relaxed")


def _numbered_lines(data: bytes, wanted: set[int]) -> Iterator[tuple[int, str | None, bytes]]:
    """The lines numbered in ``wanted``, as ``_lines`` gives them (only those are decoded)."""
    raw = data.split(b"\n")
    for line_no in sorted(wanted):
        line = _line(line_no, raw[line_no - 1]) if 1 <= line_no <= len(raw) else None
        if line is not None:
            yield line


def parse_segment_lines(
    data: bytes,
    *,
    file: str,
    known_events: frozenset[str],
    hash_key: str,
    blocked_values: frozenset[str] = BLOCKED_VALUES,
) -> Parsed:
    """``parse_segment`` one line at a time in Python: the reference the vectorised path is
    checked against, and the parser of every line that path leaves."""
    accepted, rejects = _collect(
        _json_rows(_lines(data)),
        lambda message: _segment_row(message, known_events, blocked_values),
        file=file,
    )
    rows = _hash_pii(_frame(accepted, SEGMENT_ROW_SCHEMA), key=hash_key)
    return Parsed(rows, _rejects(rejects))


# ---------------------------------------------------------------- CRM

CONTACT_ROW_SCHEMA: dict[str, Any] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "record_key": pl.String,
    "email": pl.String,
    "phone": pl.String,
    "loyalty_id": pl.String,
    "user_id": pl.String,
    "consent_email": pl.Boolean,
    "created_at": UTC_TIME,
}
INTERACTION_ROW_SCHEMA: dict[str, Any] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "record_key": pl.String,
    "event_name": pl.String,
    "occurred_at": UTC_TIME,
    "channel": pl.String,
    "email": pl.String,
    "phone": pl.String,
    "loyalty_id": pl.String,
    "store_id": pl.String,
    "product_id": pl.String,
    "category": pl.String,
    "campaign": pl.String,
}


def _contact_row(row: dict[str, str], blocked: frozenset[str]) -> dict[str, Any]:
    contact_id = _text(row["contact_id"])
    if contact_id is None:
        raise RowRejected("missing_id", "contact_id is missing")
    parsed = {
        "record_key": contact_id,
        "email": _text(row["email"]),
        "phone": _text(row["phone"]),
        "loyalty_id": _text(row["loyalty_id"]),
        "user_id": _text(row["user_id"]),
        "consent_email": _boolean(row["consent_email"]),
        "created_at": _utc_timestamp(row["created_at"], "created_at")
        if _text(row["created_at"])
        else None,
    }
    _identifiers_required(parsed, ("email", "phone", "loyalty_id", "user_id"), blocked)
    return parsed


def parse_crm_contacts(
    data: bytes, *, file: str, hash_key: str, blocked_values: frozenset[str] = BLOCKED_VALUES
) -> Parsed:
    """Parses a CRM contacts CSV: identity records (not events) that link e-mail, phone,
    loyalty card and web account."""
    rows, rejects = _csv_parsed(
        data,
        file=file,
        required=CONTACT_COLUMNS,
        parse_row=lambda row: _contact_row(row, blocked_values),
        vectorised=partial(_csv_columns.contact_rows, blocked=blocked_values),
        schema=CONTACT_ROW_SCHEMA,
    )
    return Parsed(_hash_pii(rows, key=hash_key), _rejects(rejects))


def _interaction_row(
    row: dict[str, str], known_events: frozenset[str], blocked: frozenset[str]
) -> dict[str, Any]:
    interaction_id = _text(row["interaction_id"])
    if interaction_id is None:
        raise RowRejected("missing_id", "interaction_id is missing")
    event_name = _text(row["type"]) or ""
    if event_name not in known_events:
        raise RowRejected("unmapped_event", f"type {event_name!r} is not in the taxonomy")
    parsed = {
        "record_key": interaction_id,
        "event_name": event_name,
        "occurred_at": _utc_timestamp(row["occurred_at"], "occurred_at"),
        **{
            column: _text(row[column])
            for column in INTERACTION_COLUMNS[3:]  # channel ... campaign
        },
    }
    _identifiers_required(parsed, ("email", "phone", "loyalty_id"), blocked)
    return parsed


def parse_crm_interactions(
    data: bytes,
    *,
    file: str,
    known_events: frozenset[str],
    hash_key: str,
    blocked_values: frozenset[str] = BLOCKED_VALUES,
) -> Parsed:
    """Parses a CRM interactions CSV (e-mail opens and clicks, calls, chats, store visits)."""
    rows, rejects = _csv_parsed(
        data,
        file=file,
        required=INTERACTION_COLUMNS,
        parse_row=lambda row: _interaction_row(row, known_events, blocked_values),
        vectorised=partial(
            _csv_columns.interaction_rows,
            text_columns=INTERACTION_COLUMNS[3:],
            known_events=known_events,
            blocked=blocked_values,
        ),
        schema=INTERACTION_ROW_SCHEMA,
    )
    return Parsed(_hash_pii(rows, key=hash_key), _rejects(rejects))


# ---------------------------------------------------------------- POS

RECEIPT_ROW_SCHEMA: dict[str, Any] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "record_key": pl.String,
    "store_id": pl.String,
    "local_ts": pl.Datetime("us"),
    "timezone": pl.String,
    "loyalty_id": pl.String,
    "payment_token": pl.String,
    "currency": pl.String,
    "total": MONEY,
}
LINE_ROW_SCHEMA: dict[str, Any] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "record_key": pl.String,
    "receipt_id": pl.String,
    "receipt_line": pl.Int64,
    "sku": pl.String,
    "category": pl.String,
    "quantity": pl.Int64,
    "amount": MONEY,
    "event_name": pl.String,
    "order_id": pl.String,
}


def _receipt_row(
    row: dict[str, str], store_zones: dict[str, str], blocked: frozenset[str]
) -> dict[str, Any]:
    receipt_id = _text(row["receipt_id"])
    if receipt_id is None:
        raise RowRejected("missing_id", "receipt_id is missing")
    store_id = _text(row["store_id"]) or ""
    if store_id not in store_zones:
        raise RowRejected("unknown_store", f"store_id {store_id!r} is not in the stores file")
    parsed = {
        "record_key": receipt_id,
        "store_id": store_id,
        "local_ts": _local_timestamp(row["receipt_ts"], "receipt_ts"),
        "timezone": store_zones[store_id],
        "loyalty_id": _text(row["loyalty_id"]),
        "payment_token": _text(row["payment_token"]),
        "currency": _text(row["currency"]),
        "total": _money(row["total"], "total"),
    }
    # No identifier is required: a pickup or a return is identified by the online order its
    # lines name, and an anonymous cash sale is still a sale (an unidentified customer).
    _clear_blocked(parsed, blocked)
    return parsed


def parse_pos_receipts(
    data: bytes,
    *,
    file: str,
    store_zones: dict[str, str],
    hash_key: str,
    blocked_values: frozenset[str] = BLOCKED_VALUES,
) -> Parsed:
    """Parses POS receipts; ``receipt_ts`` is the store's wall-clock time, converted to UTC
    with the store's zone by :func:`local_to_utc`."""
    rows, rejects = _csv_parsed(
        data,
        file=file,
        required=RECEIPT_COLUMNS,
        parse_row=lambda row: _receipt_row(row, store_zones, blocked_values),
        vectorised=partial(
            _csv_columns.receipt_rows, store_zones=store_zones, blocked=blocked_values
        ),
        schema=RECEIPT_ROW_SCHEMA,
    )
    zone = pl.col("timezone")
    occurred_at = pl.lit(None, dtype=UTC_TIME)
    for name in sorted(set(store_zones.values())):
        occurred_at = (
            pl.when(zone == name)
            .then(local_to_utc(pl.col("local_ts"), name))
            .otherwise(occurred_at)
        )
    rows = rows.with_columns(occurred_at.alias("occurred_at"))
    return Parsed(_hash_pii(rows, key=hash_key), _rejects(rejects))


def _line_row(row: dict[str, str], known_events: frozenset[str]) -> dict[str, Any]:
    receipt_id = _text(row["receipt_id"])
    line = _integer(row["line_no"], "line_no")
    if receipt_id is None:
        raise RowRejected("missing_id", "receipt_id is missing")
    line_type = _text(row["line_type"]) or ""
    if line_type not in known_events:
        raise RowRejected("unmapped_event", f"line_type {line_type!r} is not in the taxonomy")
    return {
        "record_key": f"{receipt_id}:{line}",
        "receipt_id": receipt_id,
        "receipt_line": line,
        "sku": _text(row["sku"]),
        "category": _text(row["category"]),
        "quantity": _integer(row["quantity"], "quantity", default=1),
        "amount": _money(row["amount"], "amount"),
        "event_name": line_type,
        "order_id": _text(row["order_id"]),
    }


def parse_pos_lines(data: bytes, *, file: str, known_events: frozenset[str]) -> Parsed:
    """Parses POS receipt lines (sale, pickup of an online order, return)."""
    rows, rejects = _csv_parsed(
        data,
        file=file,
        required=LINE_COLUMNS,
        parse_row=lambda row: _line_row(row, known_events),
        vectorised=partial(_csv_columns.receipt_line_rows, known_events=known_events),
        schema=LINE_ROW_SCHEMA,
    )
    return Parsed(rows, _rejects(rejects))


# ---------------------------------------------------------------- exactly once


def drop_duplicates(rows: pl.DataFrame, *, existing_keys: pl.Series) -> tuple[pl.DataFrame, int]:
    """Keeps the first row of each ``record_key`` not loaded before; returns it and the
    number of rows dropped as duplicates (within the file and against earlier loads)."""
    fresh = rows.filter(fresh_rows(rows.get_column("record_key"), existing_keys=existing_keys))
    return fresh, rows.height - fresh.height


def fresh_rows(keys: pl.Series, *, existing_keys: pl.Series) -> pl.Series:
    """Whether each key is the first of its value and not among ``existing_keys``."""
    return keys.is_first_distinct() & ~keys.is_in(existing_keys.implode())


# ---------------------------------------------------------------- canonical events


def _with_taxonomy(rows: pl.DataFrame, taxonomy: pl.DataFrame, *, kind: str) -> pl.DataFrame:
    mapping = taxonomy.filter(pl.col("source_kind") == kind).drop("source_kind")
    return rows.join(
        mapping.rename({"channel": "taxonomy_channel"}),
        on="event_name",
        how="inner",
        maintain_order="left",
    )


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Adds any missing canonical column as null and orders columns as ``EVENT_SCHEMA``."""
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in EVENT_SCHEMA.items()
    )


def events_from_segment(
    rows: pl.DataFrame,
    *,
    source: str,
    channel: str,
    taxonomy: pl.DataFrame,
    referrers: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One canonical event per accepted Segment message.

    A message arriving from an external site that a referrer rule names (a review site, a
    forum, a marketplace, a social network) becomes that unmanaged touchpoint instead.
    """
    events = _with_taxonomy(rows, taxonomy, kind="segment").with_columns(
        (pl.lit(f"{source}:") + pl.col("record_key")).alias("event_id"),
        pl.lit(source).alias("source"),
        pl.coalesce("taxonomy_channel", pl.lit(channel)).alias("channel"),
    )
    if referrers is not None and "referrer_host" in events.columns:
        events = _with_referrals(events, referrers)
    return _canonical(events)


def _with_referrals(events: pl.DataFrame, referrers: pl.DataFrame) -> pl.DataFrame:
    """Replaces touchpoint, channel, stage and managed flag of page and screen views whose
    referrer host is a rule's host or one of its subdomains (the longest matching rule wins).
    Track calls keep what they are: analytics.js sends the landing referrer on every call of
    the page, and a product view or an order from Instagram is still a product view or an
    order."""
    rule_columns = ["touchpoint", "channel", "stage", "is_managed"]
    hosts = events.select(pl.col("referrer_host").drop_nulls().unique())
    matches = (
        hosts.join(referrers, how="cross")
        .filter(
            (pl.col("referrer_host") == pl.col("host"))
            | pl.col("referrer_host").str.ends_with(pl.lit(".") + pl.col("host"))
        )
        .sort(pl.col("host").str.len_chars(), descending=True)
        .unique("referrer_host", keep="first")
        .select("referrer_host", *[pl.col(c).alias(f"_rule_{c}") for c in rule_columns])
    )
    landing = pl.col("type").is_in(["page", "screen"]) & ~pl.col("is_conversion")
    joined = events.join(matches, on="referrer_host", how="left", maintain_order="left")
    joined = joined.with_columns(
        pl.when(landing).then(pl.col(f"_rule_{c}")).alias(f"_rule_{c}") for c in rule_columns
    )
    return joined.with_columns(pl.coalesce(f"_rule_{c}", c).alias(c) for c in rule_columns).drop(
        f"_rule_{c}" for c in rule_columns
    )


def events_from_crm(
    interactions: pl.DataFrame, *, source: str, taxonomy: pl.DataFrame
) -> pl.DataFrame:
    """One canonical event per accepted CRM interaction."""
    events = _with_taxonomy(interactions, taxonomy, kind="crm").with_columns(
        (pl.lit(f"{source}:") + pl.col("record_key")).alias("event_id"),
        pl.lit(source).alias("source"),
        pl.coalesce("taxonomy_channel", "channel").alias("channel"),
        pl.struct("campaign").struct.json_encode().alias("properties"),
    )
    return _canonical(events)


def events_from_pos(
    receipts: pl.DataFrame, lines: pl.DataFrame, *, source: str, taxonomy: pl.DataFrame
) -> pl.DataFrame:
    """One canonical event per (receipt, line type): a sale, a pickup, a return.

    The event takes the product and category of its lowest line number and the sum of its
    lines' amounts as revenue. Lines whose receipt has not arrived yet make no event until it
    does. A sale's ``order_id`` is its receipt id; a pickup's is the online order collected.
    """
    grouped = (
        lines.sort("receipt_id", "receipt_line")
        .group_by("receipt_id", "event_name", maintain_order=True)
        .agg(
            pl.col("sku").first().alias("product_id"),
            pl.col("category").first(),
            pl.col("amount").sum().alias("revenue"),
            pl.col("order_id").drop_nulls().first(),
            pl.col("sku").alias("skus"),
        )
    )
    joined = grouped.join(
        receipts.rename({"record_key": "receipt_id"}), on="receipt_id", how="inner"
    )
    events = _with_taxonomy(joined, taxonomy, kind="pos").with_columns(
        pl.concat_str(pl.lit(f"{source}:"), "receipt_id", pl.lit(":"), "event_name").alias(
            "event_id"
        ),
        pl.lit(source).alias("source"),
        pl.col("taxonomy_channel").fill_null("store").alias("channel"),
        pl.when(pl.col("event_name") == "sale")
        .then(pl.col("receipt_id"))
        .otherwise(pl.col("order_id"))
        .alias("order_id"),
        pl.when(pl.col("event_name") == "sale").then(pl.lit("in_store")).alias("fulfilment"),
        pl.struct(pl.col("receipt_id"), pl.col("skus")).struct.json_encode().alias("properties"),
    )
    return _canonical(events)


# ---------------------------------------------------------------- bring your own table

TABLE_ROW_SCHEMA: dict[str, Any] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "record_key": pl.String,
    "event_name": pl.String,
    "occurred_at": UTC_TIME,
    "local_ts": pl.Datetime("us"),
    "anonymous_id": pl.String,
    "user_id": pl.String,
    "email": pl.String,
    "phone": pl.String,
    "loyalty_id": pl.String,
    "payment_token": pl.String,
    "order_id": pl.String,
    "store_id": pl.String,
    "product_id": pl.String,
    "category": pl.String,
    "fulfilment": pl.String,
    "revenue": MONEY,
    "currency": pl.String,
    "channel": pl.String,
}
_TABLE_TEXT_FIELDS = (
    "anonymous_id",
    "user_id",
    "email",
    "phone",
    "loyalty_id",
    "payment_token",
    "order_id",
    "store_id",
    "product_id",
    "category",
    "fulfilment",
    "currency",
    "channel",
)


def _table_format(file: str, data: bytes, declared: str | None) -> str:
    if declared:
        return declared
    if data[:4] == b"PAR1":
        return "parquet"
    name = file.lower().removesuffix(".gz")
    return "jsonl" if name.endswith((".jsonl", ".ndjson", ".json")) else "csv"


def _table_row(
    row: dict[str, Any], columns: dict[str, str], *, zoned: bool, blocked: frozenset[str]
) -> dict[str, Any]:
    value = {field: row.get(column) for field, column in columns.items()}
    event_name = _text(value.get("event_name"))
    if event_name is None:
        raise RowRejected("missing_event", f"{columns['event_name']} is empty")
    stamp = _text(value.get("timestamp"))
    try:
        parsed = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        parsed = None
    if parsed is None or (parsed.tzinfo is None and not zoned):
        expected = "ISO-8601" + ("" if zoned else " with a zone (or set the source's timezone)")
        raise RowRejected(
            "invalid_timestamp", f"{columns['timestamp']}: expected {expected}, found {stamp!r}"
        )
    out: dict[str, Any] = {
        "record_key": _text(value.get("event_id")),
        "event_name": event_name,
        "occurred_at": parsed.astimezone(UTC) if parsed.tzinfo else None,
        "local_ts": None if parsed.tzinfo else parsed,
        "revenue": _money(value.get("revenue"), columns.get("revenue", "revenue")),
        **{field: _text(value.get(field)) for field in _TABLE_TEXT_FIELDS},
    }
    _identifiers_required(
        out, tuple(field for field in IDENTIFIER_FIELDS if field in columns), blocked
    )
    return out


def parse_table(
    data: bytes,
    *,
    file: str,
    columns: dict[str, str],
    hash_key: str,
    file_format: str | None = None,
    delimiter: str = ",",
    timezone: str | None = None,
    blocked_values: frozenset[str] = BLOCKED_VALUES,
) -> Parsed:
    """Parses any CSV, Parquet or JSON-lines table (gzip or not) through a column mapping
    ``{canonical field: source column}`` (``timestamp`` and ``event_name`` required).

    Timestamps with an offset are taken as they are; without one they are wall-clock times in
    ``timezone`` (rule: :func:`local_to_utc`). Without an ``event_id`` column a row's id is
    ``<file>:<line, 10 digits>``.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    required = tuple(dict.fromkeys(columns.values()))
    kind = _table_format(file, data, file_format)
    rows = (
        _json_rows(_lines(data))
        if kind == "jsonl"
        else _table_rows(data, file=file, required=required, delimiter=delimiter)
    )
    if kind == "jsonl":
        rows = _with_required(rows, required, file=file)
    accepted, rejects = _collect(
        rows,
        lambda row: _table_row(row, columns, zoned=timezone is not None, blocked=blocked_values),
        file=file,
    )
    frame = _frame(accepted, TABLE_ROW_SCHEMA).with_columns(
        # zero-padded, so that ids sort in file order (ties in time keep the file's order)
        pl.coalesce(
            "record_key", pl.lit(f"{file}:") + pl.col("line_no").cast(pl.String).str.zfill(10)
        )
    )
    if timezone is not None:
        frame = frame.with_columns(
            pl.coalesce("occurred_at", local_to_utc(pl.col("local_ts"), timezone))
        )
    return Parsed(_hash_pii(frame.drop("local_ts"), key=hash_key), _rejects(rejects))


def _with_required(rows: Iterator[Row], required: tuple[str, ...], *, file: str) -> Iterator[Row]:
    """JSON rows, after checking the first object has the mapped keys (a wrong mapping is a
    problem of the config, not of every row)."""
    checked = False
    for line_no, problem, raw_text, row in rows:
        if not checked and row is not None:
            missing = [column for column in required if column not in row]
            if missing:
                msg = (
                    f"{file}, line {line_no}: expected the keys {', '.join(required)}; missing "
                    f"{', '.join(missing)} (found {', '.join(map(str, row))})"
                )
                raise SourceError(msg)
            checked = True
        yield line_no, problem, raw_text, row


def _slug(column: pl.Expr) -> pl.Expr:
    return column.str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "_").str.strip_chars("_")


def events_from_table(
    rows: pl.DataFrame,
    *,
    source: str,
    channel: str,
    taxonomy: pl.DataFrame,
    conversion_events: tuple[str, ...],
    stage: str,
    managed: bool,
) -> pl.DataFrame:
    """One canonical event per accepted table row. Event names map through the taxonomy rows
    whose ``source_kind`` is the source's name; a name not there becomes its own touchpoint in
    snake case, with the source's default stage and managed flag."""
    mapping = taxonomy.filter(pl.col("source_kind") == source).drop("source_kind")
    events = rows.join(
        mapping.rename({c: f"_taxonomy_{c}" for c in mapping.columns if c != "event_name"}),
        on="event_name",
        how="left",
        maintain_order="left",
    ).with_columns(
        (pl.lit(f"{source}:") + pl.col("record_key")).alias("event_id"),
        pl.lit(source).alias("source"),
        pl.coalesce("_taxonomy_touchpoint", _slug(pl.col("event_name"))).alias("touchpoint"),
        pl.coalesce("_taxonomy_channel", "channel", pl.lit(channel)).alias("channel"),
        pl.coalesce("_taxonomy_stage", pl.lit(stage)).alias("stage"),
        pl.coalesce("_taxonomy_is_managed", pl.lit(managed)).alias("is_managed"),
        pl.coalesce(
            "_taxonomy_is_conversion", pl.col("event_name").is_in(list(conversion_events))
        ).alias("is_conversion"),
        pl.lit("{}").alias("properties"),
    )
    return _canonical(events)
