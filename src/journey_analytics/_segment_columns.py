"""The vectorised half of the Segment parser: DuckDB's fields of a file to accepted rows.

Input grain: one row per line of a Segment JSON-lines file, as ``sql/ingest/segment_file.sql``
gives it (each field as JSON text). Output grain: one accepted row per line that this path can
parse exactly as ``ingest._segment_row`` would, plus the line numbers of every other line.

The rule is to be sure or to pass: a line is taken here only when every field it uses has a
plain shape (strings without escapes or surrounding blanks, integers, zoned ISO-8601
timestamps, amounts with at most two decimals, properties with nothing that may be personal).
Anything else, and every line that is rejected, goes back to the Python parser, which is the
reference; ``tests/test_segment_columns.py`` checks the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl

TEXT_FIELDS = (
    "type",
    "event",
    "name",
    "message_id",
    "anonymous_id",
    "user_id",
    "email",
    "phone",
    "order_id",
    "store_id",
    "product_id",
    "category",
    "fulfilment",
    "currency",
    "first_product_id",
    "first_product_category",
)
# A value ``ingest._text`` reads exactly as it is: an integer (no "-0"; Python prints it
# "0"), or a string without escapes and without anything Python's str.strip() removes at
# either end (Rust's \s is Unicode White_Space; Python also strips the separators \x1c-\x1f).
_EDGE = r'[^\\"\s\x1c-\x1f]'
_PLAIN = rf'^(?:0|-?[1-9][0-9]{{0,17}}|"(?:{_EDGE}(?:[^\\"]*{_EDGE})?)?")$'
_MONEY = r"^-?[0-9]{1,15}(\.[0-9]{1,2})?$"
_TIMESTAMP = (
    r'^"[1-8][0-9]{3}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?'
    r'(Z|[+-][0-2][0-9]:[0-5][0-9])"$'
)
# The Segment calls the parser reads (alias and group identify nobody new here).
SEGMENT_TYPES = ("track", "page", "screen", "identify")


def _string(raw: pl.Expr) -> pl.Expr:
    """The value of a JSON string without escapes (its text between the quotes)."""
    return raw.str.slice(1, raw.str.len_chars() - 2)


def _plain_string(raw: pl.Expr) -> pl.Expr:
    return raw.str.starts_with('"') & ~raw.str.contains("\\", literal=True)


def _text(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(value, sure) of a field read as ``ingest._text`` reads it: a string or an integer's
    digits, null when absent, null or empty. ``sure`` is false for any other shape."""
    value = (
        pl.when(raw.str.starts_with('"'))
        .then(pl.when(raw != '""').then(raw.str.strip_chars('"')))
        .otherwise(raw)
    )
    return value, (raw.is_null() | raw.str.contains(_PLAIN)).fill_null(False)


def _falsy(raw: pl.Expr) -> pl.Expr:
    """JSON values Python treats as false in ``a or b`` among the shapes taken here."""
    return raw.is_null() | raw.is_in(['""', "0"])


def _timestamp(raw: pl.Expr) -> pl.Expr:
    """A zoned ISO-8601 timestamp in UTC, or null for anything else."""
    text = _string(raw).str.replace(r"Z$", "+00:00")
    return (
        pl.when(raw.str.contains(_TIMESTAMP))
        .then(text)
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", time_unit="us", strict=False)
    )


def _by_value(column: pl.Series, function: Callable[[str], str | None]) -> pl.Series:
    """``function`` of each distinct value (few: URLs, referrers), mapped back to the column."""
    distinct = column.drop_nulls().unique().to_list()
    return column.replace_strict(
        {value: function(value) for value in distinct}, default=None, return_dtype=pl.String
    )


def segment_rows(
    fields: pl.DataFrame,
    *,
    file: str,
    known_events: frozenset[str],
    blocked_values: frozenset[str],
    strip_query: Callable[[str], str],
    host: Callable[[str], str | None],
    personal_keys: frozenset[str],
    personal_text: str,
) -> tuple[pl.DataFrame, pl.Series]:
    """Accepted rows (the columns of ``ingest.SEGMENT_ROW_SCHEMA``, identifiers not hashed yet)
    and the line numbers left to the Python parser.

    ``fields`` has ``line_no`` and the columns of ``sql/ingest/segment_file.sql``;
    ``strip_query``, ``host``, ``personal_keys`` and ``personal_text`` (a regex for e-mails
    and phone numbers in free text) are the Python parser's own.
    """
    texts = {name: _text(pl.col(name)) for name in TEXT_FIELDS}
    frame = fields.with_columns(
        *[value.alias(f"{name}_text") for name, (value, _) in texts.items()],
        pl.all_horizontal([sure for _, sure in texts.values()]).alias("sure"),
    )
    kind = pl.col("type_text")
    event_name = (
        pl.when(kind == "identify")
        .then(pl.lit("identify"))
        .when(kind == "track")
        .then(pl.col("event_text"))
        .otherwise(pl.concat_str(kind, pl.lit(":"), pl.col("name_text").fill_null("")))
    )
    blocked = list(blocked_values)
    identifiers = {
        name: pl.when(pl.col(f"{name}_text").str.to_lowercase().is_in(blocked))
        .then(None)
        .otherwise(pl.col(f"{name}_text"))
        for name in ("anonymous_id", "user_id", "email", "phone")
    }
    timestamp, sent_at, received_at = (
        _timestamp(pl.col(c)) for c in ("timestamp", "sent_at", "received_at")
    )
    corrected = pl.min_horizontal(received_at - (sent_at - timestamp), received_at)
    occurred_at = (
        pl.when(pl.col("has_original_timestamp") | sent_at.is_null() | received_at.is_null())
        .then(timestamp)
        .otherwise(corrected)
    )
    revenue = (
        pl.when(pl.col("revenue").str.starts_with('"'))
        .then(_string(pl.col("revenue")))
        .otherwise(pl.col("revenue"))
    )
    frame = frame.with_columns(
        event_name.alias("event_name"),
        *[value.alias(name) for name, value in identifiers.items()],
        occurred_at.alias("occurred_at"),
        revenue.alias("revenue_text"),
        pl.when(_falsy(pl.col("product_id")))
        .then(pl.col("first_product_id_text"))
        .otherwise(pl.col("product_id_text"))
        .alias("product_id_value"),
        pl.when(_falsy(pl.col("category")))
        .then(pl.col("first_product_category_text"))
        .otherwise(pl.col("category_text"))
        .alias("category_value"),
    )
    sure = (
        pl.col("sure")
        & pl.col("type_text").is_in(SEGMENT_TYPES)
        & pl.col("event_name").is_in(list(known_events))
        & pl.col("message_id_text").is_not_null()
        & timestamp.is_not_null()
        & pl.col("occurred_at").dt.year().is_between(1000, 8999)
        & (pl.col("sent_at").is_null() | sent_at.is_not_null())
        & (pl.col("received_at").is_null() | received_at.is_not_null())
        & (pl.col("revenue").is_null() | pl.col("revenue_text").str.contains(_MONEY))
        & (pl.col("anonymous_id").is_not_null() | pl.col("user_id").is_not_null())
        & ~pl.col("properties_shadow_extra")
        & pl.all_horizontal(
            pl.col(c).is_null() | _plain_string(pl.col(c)) for c in ("page_url", "page_referrer")
        )
        & (pl.col("campaign").is_null() | pl.col("campaign").str.contains(r'^["{]'))
    )
    frame = frame.with_columns(sure.fill_null(False).alias("sure"))
    taken = frame.filter("sure")
    rows = _with_properties(taken, strip_query=strip_query, host=host)
    rows = _masked(rows, personal_keys=personal_keys, personal_text=personal_text)
    left = pl.concat(
        [
            frame.filter(~pl.col("sure")).get_column("line_no"),
            rows.filter("maybe_personal").get_column("line_no"),
        ]
    )
    rows = rows.filter(~pl.col("maybe_personal"))
    return (
        rows.select(
            pl.lit(file).alias("file"),
            pl.col("line_no").cast(pl.Int64),
            pl.col("message_id_text").alias("record_key"),
            pl.col("type_text").alias("type"),
            "event_name",
            "anonymous_id",
            "user_id",
            "email",
            "phone",
            "occurred_at",
            pl.col("order_id_text").alias("order_id"),
            pl.col("store_id_text").alias("store_id"),
            pl.col("product_id_value").alias("product_id"),
            pl.col("category_value").alias("category"),
            pl.col("fulfilment_text").alias("fulfilment"),
            pl.col("revenue_text").cast(pl.Decimal(18, 2)).alias("revenue"),
            pl.col("currency_text").alias("currency"),
            "referrer_host",
            "properties",
        ),
        left.cast(pl.Int64).sort(),
    )


def _with_properties(
    rows: pl.DataFrame,
    *,
    strip_query: Callable[[str], str],
    host: Callable[[str], str | None],
) -> pl.DataFrame:
    """Adds ``referrer_host`` and ``properties``: the page URL and referrer (query strings
    stripped), the campaign and the device, then the message's own properties, as JSON text."""
    url = _string(pl.col("page_url"))
    referrer = _string(pl.col("page_referrer"))
    rows = rows.with_columns(url.alias("url"), referrer.alias("referrer"))
    stripped = {
        name: _by_value(
            rows.get_column(name), lambda value: json.dumps(strip_query(value), ensure_ascii=False)
        )
        for name in ("url", "referrer")
    }
    rows = rows.with_columns(
        _by_value(rows.get_column("referrer"), host).alias("referrer_host"),
        *[series.alias(f"{name}_json") for name, series in stripped.items()],
    )
    members = [
        pl.when(pl.col("url_json") != '""').then(pl.lit('"url":') + pl.col("url_json")),
        pl.when(pl.col("referrer_json") != '""').then(
            pl.lit('"referrer":') + pl.col("referrer_json")
        ),
        pl.when(~pl.col("campaign").is_in(['""', "{}"])).then(
            pl.lit('"campaign":') + pl.col("campaign")
        ),
        pl.when(pl.col("has_app"))
        .then(pl.lit('"device":"app"'))
        .otherwise(pl.lit('"device":"browser"')),
        pl.when(pl.col("properties") != "{}").then(
            pl.col("properties").str.strip_prefix("{").str.strip_suffix("}")
        ),
    ]
    return rows.with_columns(
        pl.format("{{{}}}", pl.concat_str(members, separator=",", ignore_nulls=True)).alias(
            "properties"
        )
    )


def _masked(
    rows: pl.DataFrame, *, personal_keys: frozenset[str], personal_text: str
) -> pl.DataFrame:
    """``properties`` with the string value of every personal key (``"name": "..."``, at any
    depth, any case) replaced by ``"<redacted>"``, as ``privacy.mask_fields`` does, and
    ``maybe_personal``: whether the row still may hold something personal (a personal key with
    another kind of value, an e-mail or a phone number in free text), for the Python parser.

    Most rows hold no personal key at all: one multi-pattern scan finds the few that do, and
    only those go through the regular expressions that mask."""
    quoted = [f'"{key}"' for key in sorted(personal_keys)]
    text = pl.col("properties")
    has_key = text.str.contains_any(quoted, ascii_case_insensitive=True).fill_null(False)
    plain = rows.filter(~has_key).with_columns(
        text.str.contains(personal_text).fill_null(False).alias("maybe_personal")
    )
    keys = "|".join(sorted(personal_keys))
    keyed = rows.filter(has_key).with_columns(
        text.str.replace_all(rf'(?i)"({keys})":"(?:[^"\\]|\\.)*"', '"$1":"<redacted>"')
    )
    rest = text.str.replace_all(rf'(?i)"({keys})":"<redacted>"', "")
    keyed = keyed.with_columns(
        (rest.str.contains(personal_text) | rest.str.contains(rf'(?i)"({keys})"\s*:'))
        .fill_null(False)
        .alias("maybe_personal")
    )
    return pl.concat([plain, keyed])
