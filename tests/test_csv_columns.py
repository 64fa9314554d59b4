"""The vectorised CSV path (``_csv_columns``) against the Python row parsers, the reference."""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from journey_analytics import _csv_columns, ingest
from journey_analytics.ingest import (
    CONTACT_COLUMNS,
    INTERACTION_COLUMNS,
    LINE_COLUMNS,
    RECEIPT_COLUMNS,
    Parsed,
)

KNOWN = frozenset({"email_click", "store_visit", "sale", "pickup"})
ZONES = {"S01": "Europe/Rome", "S02": "America/New_York"}
BLOCKED = ingest.BLOCKED_VALUES | {"4111111111111111", "\u019b", "i\u0307"}

# values of every shape the row parsers meet: plain ones (the vectorised path takes them)
# and near misses (it must leave them to the reference, or give the same)
_IDS = ["C-1", "R-1", " R-2 ", "", " ", "x\u00a0"]
_ZONED = [
    "2026-01-07T16:16:16Z",
    "2026-01-07T16:16:16+01:00",
    "2026-01-07T16:16:16.5-02:30",
    "2026-01-07T16:16:16.123456Z",
    "9999-12-31T23:00:00-05:00",  # year 10000 in UTC: rejected
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+01:00",
    " 2026-01-07T16:16:16Z ",
    "2026-02-30T00:00:00Z",
    "2026-01-07T24:00:00Z",
    "2026-01-07T16:16:60Z",
    "2026-01-07T16:16:16+24:00",
    "2026-01-07T16:16:16",
    "2026-01-07 16:16:16+00:00",
    "0999-01-01T00:00:00Z",
    "2026-01-07T16:16:16.1234567Z",
    "2026-01-07",
    "",
    "soon",
]
_LOCAL = [
    "2026-01-06 16:12:23",
    "2026-01-06T16:12:23",
    "2026-03-29 02:30:00",
    "2026-01-06",
    "2026-01-06 16:12",
    "2026-01-06 16:12:23+01:00",
    "2026-13-01 00:00:00",
    "2026-01-06 16:12:23.5",
    "",
]
_MONEY = ["12.5", "-3", "0.01", "1.005", "1e3", "+5", ".5", "-0", "99999999999999999", "", "ab"]
_INTEGERS = ["1", "01", "-0", "+2", "1_000", "", "x", "\u0661", "99999999999999999999"]
_BOOLEANS = ["true", "YES", "n", "0", "opt-in", ""]
_IDENTIFIERS = [
    "u-1",
    "a@b.com",
    "+39 333 1",
    "unknown",
    " UNKNOWN ",
    "0",
    "",
    "4111 1111-1111 1111",
    "\ua7dc",  # lower case in Polars (Unicode 16) 'ƛ', blocked; none in Python 3.11's
    "İ",  # lower case 'i̇' in both, blocked
]
_NAMES = ["email_click", "store_visit", "sale", "pickup", "refund", "", " sale "]
_STORES = ["S01", "S02", " S01", "S99", ""]
# odd text for a plain file (no quote, NUL, carriage return or line break), with the
# characters Python and Polars strip or lower-case differently, and for any file
_ODD_PLAIN = st.text(
    alphabet=st.sampled_from(list("ab ,\t\x0b\x0c\x1c\x1f\x85\u00a0\u2028é€\ua7dcİ")), max_size=6
)
_ODD = st.text(alphabet=st.sampled_from(list('ab ,"\r\n\t\x1c\x00\u00a0é')), max_size=6)


def _cell(draw: st.DrawFn, name: str, odd: st.SearchStrategy[str]) -> str:
    """A cell of column ``name``: 10 times in 16 one of its plain values (the first
    ``_PLAIN`` of its list), else any of its values (4 in 16) or odd text."""
    values = _COLUMNS.get(name, _IDENTIFIERS)
    pick = draw(st.integers(0, 15))
    if pick < 10:
        return draw(st.sampled_from(values[: _PLAIN.get(name, 3)]))
    return draw(st.sampled_from(values) if pick < 14 else odd)


_COLUMNS: dict[str, list[str]] = {
    "contact_id": _IDS,
    "interaction_id": _IDS,
    "receipt_id": _IDS,
    "created_at": _ZONED,
    "occurred_at": _ZONED,
    "receipt_ts": _LOCAL,
    "total": _MONEY,
    "amount": _MONEY,
    "line_no": _INTEGERS,
    "quantity": _INTEGERS,
    "consent_email": _BOOLEANS,
    "type": _NAMES,
    "line_type": _NAMES,
    "store_id": _STORES,
}
# how many values at the head of each column's list are plain (3 unless said)
_PLAIN = {"created_at": 4, "occurred_at": 4, "consent_email": 6, "type": 4, "line_type": 4}


@st.composite
def _files(draw: st.DrawFn, columns: tuple[str, ...]) -> bytes:
    """A CSV file of ``columns`` (in any order, maybe with one more): rows of plain and odd
    values, now and then a row with a field too many or too few, a blank line, a line that
    is not UTF-8; LF or CRLF line ends, mixed; a last line with or without its end. Three
    files in four are plain (the vectorised path reads them), the others may hold quotes,
    carriage returns, NUL bytes and line breaks in a field."""
    odd = draw(st.sampled_from([_ODD_PLAIN] * 3 + [_ODD]))
    header = draw(st.permutations([*columns, *draw(st.sampled_from([[], ["extra"]]))]))
    lines = [",".join(header).encode()]
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row"] * 6 + ["short", "long", "blank", "bytes"]))
        if kind == "blank":
            lines.append(b"")
            continue
        if kind == "bytes":
            lines.append(b"C-9,\xff" + b"," * (len(header) - 2))
            continue
        cells = [_cell(draw, name, odd) for name in header]
        cells = cells[:-1] if kind == "short" else [*cells, "x"] if kind == "long" else cells
        lines.append(",".join(cells).encode())
    ends = [draw(st.sampled_from([b"\n", b"\r\n"])) for _ in lines]
    last = draw(st.sampled_from([b"", ends[-1]]))
    text = b"".join(line + end for line, end in zip(lines[:-1], ends, strict=False))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text + lines[-1] + last


def _both_ways(parse: Callable[[bytes], Parsed], data: bytes) -> tuple[Parsed, Parsed]:
    fast = parse(data)
    with mock.patch.object(_csv_columns, "plain_csv", return_value=None):
        reference = parse(data)
    return fast, reference


def _agree(parse: Callable[[bytes], Parsed], data: bytes) -> None:
    fast, reference = _both_ways(parse, data)
    assert_frame_equal(fast.rows, reference.rows)
    assert_frame_equal(fast.rejects, reference.rejects)
    # split by Polars a few bytes at a time, as a file of gigabytes is: the same
    with mock.patch.object(_csv_columns, "_PIECE", 8):
        pieces = parse(data)
    assert_frame_equal(pieces.rows, fast.rows)
    assert_frame_equal(pieces.rejects, fast.rejects)


def _contacts(data: bytes) -> Parsed:
    return ingest.parse_crm_contacts(data, file="c.csv", hash_key="k", blocked_values=BLOCKED)


def _interactions(data: bytes) -> Parsed:
    return ingest.parse_crm_interactions(
        data, file="i.csv", known_events=KNOWN, hash_key="k", blocked_values=BLOCKED
    )


def _receipts(data: bytes) -> Parsed:
    return ingest.parse_pos_receipts(
        data, file="r.csv", store_zones=ZONES, hash_key="k", blocked_values=BLOCKED
    )


def _lines(data: bytes) -> Parsed:
    return ingest.parse_pos_lines(data, file="l.csv", known_events=KNOWN)


_SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SLOW
@given(_files(CONTACT_COLUMNS))
def test_contacts_agree_with_the_row_parser(data: bytes) -> None:
    _agree(_contacts, data)


@_SLOW
@given(_files(INTERACTION_COLUMNS))
def test_interactions_agree_with_the_row_parser(data: bytes) -> None:
    _agree(_interactions, data)


@_SLOW
@given(_files(RECEIPT_COLUMNS))
def test_receipts_agree_with_the_row_parser(data: bytes) -> None:
    _agree(_receipts, data)


@_SLOW
@given(_files(LINE_COLUMNS))
def test_receipt_lines_agree_with_the_row_parser(data: bytes) -> None:
    _agree(_lines, data)


@pytest.mark.parametrize(
    "row",
    [
        "C-1,,,,u-1,yes,9999-12-31T23:00:00-05:00",  # year 10000 in UTC: rejected
        "C-1,,,,u-1,yes,9999-12-31T23:59:59Z",  # the last second Python holds: accepted
        "C-1,,,,u-1,yes,0001-01-01T00:00:00+01:00",  # year 0 in UTC: rejected
        "C-1,unknown, 0 ,NULL,,,",  # every identifier blocked: rejected
        "C-1,,,\ua7dc,,,",  # lower case 'ƛ' (blocked) in Polars only: Python keeps it
        "C-1,,,L1,u-1,\u0130,",  # not a yes or no, in any case mapping
        "C-1,a@b.com,,,,true,2026-01-07T16:16:16.5-02:30",  # plain: Polars takes it
    ],
)
def test_near_misses_agree_with_the_row_parser(row: str) -> None:
    data = (",".join(CONTACT_COLUMNS) + "\n" + row + "\n").encode()
    fast, reference = _both_ways(_contacts, data)
    assert_frame_equal(fast.rows, reference.rows)
    assert_frame_equal(fast.rejects, reference.rejects)
    assert fast.rows.height + fast.rejects.height == 1


def test_plain_lines_are_taken_by_the_vectorised_path() -> None:
    data = (
        b"receipt_id,line_no,sku,category,quantity,amount,line_type,order_id\r\n"
        b"R-1,1,P045,bags,2,10.50,sale,\r\n"
        b"\r\n"  # blank: left out, as the csv module leaves it
        b"R-1,2,P057,accessories,,0.00,pickup,O-1\r\n"
        b"R-2,x,P057,accessories,1,0.00,sale,\r\n"  # not an integer: the reference rejects it
        b"R-3,1,P001,shoes,1,1.005,sale,\r\n"  # rounded: left to the reference, accepted
    )
    fields = _csv_columns.plain_csv(data, required=LINE_COLUMNS, delimiter=",")
    assert fields is not None
    rows, left = _csv_columns.receipt_line_rows(fields, known_events=KNOWN)
    assert rows.select("line_no", "record_key", "quantity").rows() == [
        (2, "R-1:1", 2),
        (4, "R-1:2", 1),
    ]
    assert left.to_list() == [5, 6]
    parsed = _lines(data)
    assert parsed.rows.get_column("record_key").to_list() == ["R-1:1", "R-1:2", "R-3:1"]
    assert parsed.rows.get_column("line_no").to_list() == [2, 4, 6]
    assert parsed.rejects.select("line_no", "reason").rows() == [(5, "invalid_number")]
    _agree(_lines, data)


def test_a_file_with_quotes_or_a_lone_carriage_return_is_read_by_the_csv_module() -> None:
    quoted = b'contact_id,email,phone,loyalty_id,user_id,consent_email,created_at\n"C-1",,,L1,,,\n'
    lone = b"contact_id,email,phone,loyalty_id,user_id,consent_email,created_at\nC-1,,\r,L1,,,\n"
    for data in (quoted, lone):
        assert _csv_columns.plain_csv(data, required=CONTACT_COLUMNS, delimiter=",") is None
        _agree(_contacts, data)
    # a header without a required column: the reference raises the error that names it
    assert (
        _csv_columns.plain_csv(b"contact_id\nC-1\n", required=CONTACT_COLUMNS, delimiter=",")
        is None
    )


def test_receipt_times_are_converted_with_the_store_s_zone() -> None:
    data = (
        b"receipt_id,store_id,receipt_ts,loyalty_id,payment_token,currency,total\n"
        b"R-1,S01,2026-03-29 02:30:00,L1,4111 1111 1111 1111,EUR,5\n"  # no such hour in Rome
        b"R-2,S02,2026-01-06T16:12:23,unknown,,USD,\n"
    )
    rows = _receipts(data).rows
    assert rows.select("record_key", "loyalty_id", "payment_hash", "total").rows() == [
        ("R-1", "L1", None, pl.Series([5], dtype=pl.Decimal(18, 2)).item()),
        ("R-2", None, None, None),
    ]
    assert [str(t) for t in rows.get_column("occurred_at")] == [
        "2026-03-29 01:30:00+00:00",
        "2026-01-06 21:12:23+00:00",
    ]
    _agree(_receipts, data)


def test_an_integer_beyond_64_bits_is_rejected_not_a_crash() -> None:
    data = (
        b"receipt_id,line_no,sku,category,quantity,amount,line_type,order_id\n"
        b"R-1,1,P045,bags,99999999999999999999,10.50,sale,\n"
    )
    for parsed in _both_ways(_lines, data):
        assert parsed.rows.is_empty()
        assert parsed.rejects.select("line_no", "reason", "detail").rows() == [
            # a run of digits could be a phone number: masked, as in every reject
            (2, "invalid_number", "quantity: out of range, found '<phone>'")
        ]
