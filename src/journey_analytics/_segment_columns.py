"""The vectorised half of the Segment parser: DuckDB's decided lines to accepted rows.

Input grain: one row per line of a Segment JSON-lines file, as ``sql/ingest/segment_files.sql``
gives it: whether the line is sure (every field it uses has a plain shape, so the values there
are the ones ``ingest._segment_row`` would give) and those values. Output grain: one accepted
row per sure line that holds nothing personal, plus the line numbers of every other line.

What is left here needs a list or Python's own functions: the known types and event names,
blocked identifiers, the query strings of URLs (``privacy.strip_query``, once per distinct
URL), the referrer's host, and masking ``properties``. Every line not taken, including every
reject, goes back to the Python parser, which is the reference;
``tests/test_segment_columns.py`` checks the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl

# The Segment calls the parser reads (alias and group identify nobody new here).
SEGMENT_TYPES = ("track", "page", "screen", "identify")
# The columns ``sql/ingest/segment_files.sql`` gives that become columns of the row as they are.
_DECIDED = (
    "record_key",
    "type",
    "event_name",
    "anonymous_id",
    "user_id",
    "email",
    "phone",
    "occurred_at",
    "order_id",
    "store_id",
    "product_id",
    "category",
    "fulfilment",
    "revenue",
    "currency",
)


def _string(raw: pl.Expr) -> pl.Expr:
    """The value of a JSON string without escapes (its text between the quotes)."""
    return raw.str.slice(1, raw.str.len_chars() - 2)


def _by_value(column: pl.Series, function: Callable[[str], str | None]) -> pl.Series:
    """``function`` of each distinct value (few: URLs, referrers), mapped back to the column."""
    distinct = column.drop_nulls().unique().to_list()
    return column.replace_strict(
        {value: function(value) for value in distinct}, default=None, return_dtype=pl.String
    )


def is_ascii(value: pl.Expr) -> pl.Expr:
    """Whether a text is missing or ASCII. Python 3.11 lower-cases by Unicode 14 and Polars by
    Unicode 16: for a few letters (U+A7DC, ...) they differ, so a value compared lower-cased
    is decided in Polars only when ASCII."""
    return value.is_null() | ~value.str.contains(r"[^\x00-\x7f]")


def is_blocked(value: pl.Expr, blocked: frozenset[str]) -> pl.Expr:
    """Whether a (stripped) identifier identifies nobody: ``ingest._clear_blocked``'s test,
    lower-cased, for ASCII values (:func:`is_ascii`)."""
    return value.str.to_lowercase().is_in(sorted(blocked))


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

    ``fields`` has ``line_no`` and the columns of ``sql/ingest/segment_files.sql``;
    ``strip_query``, ``host``, ``personal_keys`` and ``personal_text`` (a regex for e-mails
    and phone numbers in free text) are the Python parser's own.
    """
    identifiers = ("anonymous_id", "user_id", "email", "phone")
    # lower-cased in Polars only when ASCII: Python and Polars lower-case some other letters
    # differently, so those lines go to the Python parser
    fields = fields.with_columns(
        pl.all_horizontal(is_ascii(pl.col(name)) for name in identifiers).alias("_ascii"),
        *[
            pl.when(is_blocked(pl.col(name), blocked_values)).then(None).otherwise(name).alias(name)
            for name in identifiers
        ],
    )
    fields = fields.with_columns(
        (
            pl.col("is_sure")
            & pl.col("_ascii")
            & pl.col("type").is_in(SEGMENT_TYPES)
            & pl.col("event_name").is_in(sorted(known_events))
            & (pl.col("anonymous_id").is_not_null() | pl.col("user_id").is_not_null())
        )
        .fill_null(False)
        .alias("is_sure")
    )
    taken = fields.filter("is_sure")
    # the few lines DuckDB left for a second look: a URL's query string, an unusual referrer,
    # something that may be personal
    careful = taken.filter(~pl.col("is_simple"))
    careful = _with_properties(careful, strip_query=strip_query, host=host)
    careful = _masked(careful, personal_keys=personal_keys, personal_text=personal_text)
    left = pl.concat(
        [
            fields.filter(~pl.col("is_sure")).get_column("line_no"),
            careful.filter("maybe_personal").get_column("line_no"),
        ]
    )
    rows = pl.concat(
        [taken.filter("is_simple"), careful.filter(~pl.col("maybe_personal"))],
        how="diagonal_relaxed",
    )
    return (
        rows.select(
            pl.lit(file).alias("file"),
            pl.col("line_no").cast(pl.Int64),
            *_DECIDED,
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
