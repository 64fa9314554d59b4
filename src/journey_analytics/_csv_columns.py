"""The vectorised half of the CSV parsers: a plain CSV file's lines to accepted rows.

Input grain: one CSV file of CRM contacts or interactions, POS receipts or receipt lines.
Output grain: one accepted row per line whose every value has a plain shape (an id, an
ISO-8601 time, a number with at most two decimals, ...), so that Polars gives what the
row parsers of ``ingest`` give, plus the line numbers of every other line.

A file is plain when no record can span lines or hold a delimiter: no quote, no NUL, no
carriage return but before a line end, and a first line that is a UTF-8 header with every
required column, each column once. Other files, and every line not taken (every reject
among them), go to the Python parser, which is the reference; ``tests/test_csv_columns.py``
checks the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from journey_analytics._segment_columns import is_ascii, is_blocked

# Shorter than the csv module's field limit (131,072 characters): a longer line may hold a
# field it refuses, so it is left to it.
_LONGEST_LINE = 100_000
_PIECE = 64 * 2**20  # bytes of a file split by Polars at once
_BOM = b"\xef\xbb\xbf"
_NEWLINE = ord("\n")
# ISO-8601 with a zone, and a store's wall-clock time, of the shapes both Python's
# ``datetime.fromisoformat`` and Polars read alike (years from 1000, no leap second; a zoned
# time in year 10000 once in UTC is left to Python, which rejects it)
_DATE = "[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_ZONED = f"^{_DATE}T{_TIME}(?:\\.[0-9]{{1,6}})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
_LOCAL = f"^{_DATE}[ T]{_TIME}$"
_MONEY = r"^-?[0-9]{1,14}(?:\.[0-9]{1,2})?$"  # no rounding, and far below 1e16
_INTEGER = r"^-?[0-9]{1,18}$"
_TRUE, _FALSE = ["true", "1", "yes", "y"], ["false", "0", "no", "n"]
_LAST_YEAR = 9999  # Python's datetime.MAXYEAR


def lines_not_utf8(data: bytes) -> set[int]:
    """The numbers of the lines of ``data`` that are not UTF-8. The decoder stops at the first
    byte that is not, and goes on from the next line: one pass over a file that is UTF-8."""
    found: set[int] = set()
    view, start, line_no = memoryview(data), 0, 1
    while start < len(data):
        try:
            str(view[start:], "utf-8")
        except UnicodeDecodeError as error:
            bad = start + error.start
            line_no += data.count(b"\n", start, bad)
            found.add(line_no)
            end = data.find(b"\n", bad)
            if end < 0:
                break
            start, line_no = end + 1, line_no + 1
        else:
            break
    return found


def line_spans(data: bytes, numbers: list[int]) -> list[tuple[int, int]]:
    """Where the lines of ``data`` numbered in ``numbers`` (1-based, each at most the number
    of lines) begin and end, their line ends left out."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
    return [
        (
            0 if number == 1 else int(ends[number - 2]) + 1,
            int(ends[number - 1]) if number <= len(ends) else len(data),
        )
        for number in numbers
    ]


def plain_csv(data: bytes, *, required: tuple[str, ...], delimiter: str) -> pl.DataFrame | None:
    """The records of a plain CSV file: ``file_line``, the ``required`` columns as text and
    ``is_sure``, false for a line the csv module may read otherwise (a wrong number of
    fields, a control character, not UTF-8, too long). Blank lines are left out, as the
    csv module leaves them. None for a file that is not plain."""
    body = data.removeprefix(_BOM)
    if b'"' in body or b"\0" in body or body.count(b"\r") != body.count(b"\r\n"):
        return None
    head, _, rest = body.partition(b"\n")
    try:
        header = head.removesuffix(b"\r").decode("utf-8").split(delimiter)
    except UnicodeDecodeError:
        return None
    if header == [""] or len(set(header)) < len(header) or not set(required) <= set(header):
        return None
    not_utf8 = sorted(n + 1 for n in lines_not_utf8(rest))
    controls = "".join(f"\\x{byte:02x}" for byte in range(0x20) if chr(byte) != delimiter)
    line = pl.col("line")
    fields = line.str.split(delimiter)
    return (
        pl.concat(_lines(rest))
        .with_columns(line.str.strip_suffix("\r"))
        .filter(line != "")
        .select(
            "file_line",
            (
                (fields.list.len() == len(header))
                & ~line.str.contains(f"[{controls}]")
                & (line.str.len_bytes() <= _LONGEST_LINE)
                & ~pl.col("file_line").is_in(not_utf8)
            ).alias("is_sure"),
            *[
                fields.list.get(header.index(name), null_on_oob=True).alias(name)
                for name in required
            ],
        )
    )


def _lines(rest: bytes, *, first: int = 2) -> list[pl.DataFrame]:
    """The lines of a file after its header (``line``, the text with its carriage return;
    ``file_line``, from ``first``), split by Polars a piece of about ``_PIECE`` bytes at a
    time: a Polars string holds less than 4 GiB."""
    frames: list[pl.DataFrame] = []
    start = 0
    while start < len(rest) or not frames:
        end = rest.find(b"\n", start + _PIECE)
        end = len(rest) if end < 0 else end + 1
        piece = rest[start:end]
        frames.append(
            pl.DataFrame({"line": [piece.decode("utf-8", "replace")]})
            .select(pl.col("line").str.split("\n").explode())
            .with_row_index("file_line", offset=first)
            .with_columns(pl.col("file_line").cast(pl.Int64))
        )
        first += piece.count(b"\n")
        start = end
    return frames


def _text(name: str) -> pl.Expr:
    """``ingest._text``: the value stripped, empty as null."""
    stripped = pl.col(name).str.strip_chars()
    return pl.when(stripped != "").then(stripped)


def _zoned_time(name: str) -> pl.Expr:
    """An ISO-8601 time with a zone in UTC; null if missing or of another shape."""
    text = _text(name)
    parsed = (
        pl.when(text.str.contains(_ZONED))
        .then(text.str.replace("Z$", "+00:00"))
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", time_zone="UTC", strict=False)
    )
    return pl.when(parsed.dt.year() <= _LAST_YEAR).then(parsed)


def _local_time(name: str) -> pl.Expr:
    """A wall-clock time ``YYYY-MM-DD HH:MM:SS``; null if missing or of another shape."""
    text = _text(name)
    return (
        pl.when(text.str.contains(_LOCAL))
        .then(text.str.replace("T", " ", literal=True))
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False)
    )


def _plain(name: str, pattern: str) -> pl.Expr:
    """Whether the value is missing or has the shape ``pattern``."""
    text = _text(name)
    return text.is_null() | text.str.contains(pattern)


def _money(name: str) -> pl.Expr:
    return pl.when(_text(name).str.contains(_MONEY)).then(_text(name)).cast(pl.Decimal(18, 2))


def _integer(name: str) -> pl.Expr:
    return pl.when(_text(name).str.contains(_INTEGER)).then(_text(name)).cast(pl.Int64)


def _ascii(*names: str) -> pl.Expr:
    """Whether the values are missing or ASCII, as values lower-cased here must be
    (``_segment_columns.is_ascii``)."""
    return pl.all_horizontal(is_ascii(_text(name)) for name in names)


def _boolean(name: str) -> pl.Expr:
    """``ingest._boolean``: yes or no in a few spellings, else null."""
    text = _text(name).str.to_lowercase()
    return pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False)


def _identifier(name: str, blocked: frozenset[str]) -> pl.Expr:
    """``ingest._clear_blocked`` of one identifier: null for a value that identifies nobody
    (a card number however spaced)."""
    cleared = is_blocked(_text(name), blocked)
    if name == "payment_token":
        cleared |= is_blocked(_text(name).str.replace_all(r"[\s-]", ""), blocked)
    return pl.when(~cleared).then(_text(name))


def _any_set(names: tuple[str, ...], blocked: frozenset[str]) -> pl.Expr:
    """``ingest._identifiers_required``: one of the identifiers left after clearing."""
    return pl.any_horizontal(_identifier(name, blocked).is_not_null() for name in names)


def _decided(
    fields: pl.DataFrame, columns: Mapping[str, pl.Expr], sure: pl.Expr
) -> tuple[pl.DataFrame, pl.Series]:
    """The rows (``line_no`` and ``columns``) of the lines sure by their shape and by
    ``sure``, and the numbers of the others."""
    decided = fields.select(
        pl.col("file_line").alias("line_no"),
        (pl.col("is_sure") & sure).fill_null(value=False).alias("is_sure"),
        **columns,
    )
    left = decided.filter(~pl.col("is_sure")).get_column("line_no")
    return decided.filter("is_sure").drop("is_sure"), left


def contact_rows(
    fields: pl.DataFrame, *, blocked: frozenset[str]
) -> tuple[pl.DataFrame, pl.Series]:
    """``ingest._contact_row`` of each sure line of a contacts file."""
    identifiers = ("email", "phone", "loyalty_id", "user_id")
    created = _zoned_time("created_at")
    return _decided(
        fields,
        {
            "record_key": _text("contact_id"),
            **{name: _identifier(name, blocked) for name in identifiers},
            "consent_email": _boolean("consent_email"),
            "created_at": created,
        },
        _text("contact_id").is_not_null()
        & (_text("created_at").is_null() | created.is_not_null())
        & _ascii(*identifiers, "consent_email")
        & _any_set(identifiers, blocked),
    )


def interaction_rows(
    fields: pl.DataFrame,
    *,
    text_columns: tuple[str, ...],
    known_events: frozenset[str],
    blocked: frozenset[str],
) -> tuple[pl.DataFrame, pl.Series]:
    """``ingest._interaction_row`` of each sure line of an interactions file."""
    identifiers = ("email", "phone", "loyalty_id")
    occurred = _zoned_time("occurred_at")
    return _decided(
        fields,
        {
            "record_key": _text("interaction_id"),
            "event_name": _text("type"),
            "occurred_at": occurred,
            **{name: _text(name) for name in text_columns},
            **{name: _identifier(name, blocked) for name in identifiers},
        },
        _text("interaction_id").is_not_null()
        & _text("type").is_in(sorted(known_events))
        & occurred.is_not_null()
        & _ascii(*identifiers)
        & _any_set(identifiers, blocked),
    )


def receipt_rows(
    fields: pl.DataFrame, *, store_zones: Mapping[str, str], blocked: frozenset[str]
) -> tuple[pl.DataFrame, pl.Series]:
    """``ingest._receipt_row`` of each sure line of a receipts file."""
    local = _local_time("receipt_ts")
    return _decided(
        fields,
        {
            "record_key": _text("receipt_id"),
            "store_id": _text("store_id"),
            "local_ts": local,
            "timezone": _text("store_id").replace_strict(
                dict(store_zones), default=None, return_dtype=pl.String
            ),
            "loyalty_id": _identifier("loyalty_id", blocked),
            "payment_token": _identifier("payment_token", blocked),
            "currency": _text("currency"),
            "total": _money("total"),
        },
        _text("receipt_id").is_not_null()
        & _text("store_id").is_in(sorted(store_zones))
        & local.is_not_null()
        & _ascii("loyalty_id", "payment_token")
        & _plain("total", _MONEY),
    )


def receipt_line_rows(
    fields: pl.DataFrame, *, known_events: frozenset[str]
) -> tuple[pl.DataFrame, pl.Series]:
    """``ingest._line_row`` of each sure line of a receipt lines file."""
    line = _integer("line_no")
    return _decided(
        fields,
        {
            "record_key": pl.concat_str(_text("receipt_id"), pl.lit(":"), line.cast(pl.String)),
            "receipt_id": _text("receipt_id"),
            "receipt_line": line,
            "sku": _text("sku"),
            "category": _text("category"),
            "quantity": _integer("quantity").fill_null(1),
            "amount": _money("amount"),
            "event_name": _text("line_type"),
            "order_id": _text("order_id"),
        },
        _text("receipt_id").is_not_null()
        & line.is_not_null()
        & _text("line_type").is_in(sorted(known_events))
        & _plain("quantity", _INTEGER)
        & _plain("amount", _MONEY),
    )
