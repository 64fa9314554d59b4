"""The vectorised Segment path (DuckDB reads, Polars decides) against the Python parser.

``parse_segment`` must give exactly what ``parse_segment_lines`` gives, line by line: the same
accepted rows (``properties`` compared as JSON values, since the two paths format JSON text
differently) and the same rejects.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from journey_analytics import ingest
from journey_analytics._segment_columns import segment_rows
from journey_analytics.errors import ComputeError
from journey_analytics.ingest import parse_segment, parse_segment_lines
from journey_analytics.taxonomy import load_taxonomy

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "clickstream"
KNOWN = frozenset(
    {"Product Viewed", "Order Completed", "identify", "page:Home", "screen:Home", "page:"}
)


def _comparable(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(
        pl.col("properties").map_elements(
            lambda text: json.dumps(json.loads(text), sort_keys=True), return_dtype=pl.String
        )
    )


def _assert_same(data: bytes, known: frozenset[str] = KNOWN) -> ingest.Parsed:
    fast = parse_segment(data, file="f.jsonl", known_events=known, hash_key="k")
    reference = parse_segment_lines(data, file="f.jsonl", known_events=known, hash_key="k")
    assert_frame_equal(_comparable(fast.rows), _comparable(reference.rows))
    assert_frame_equal(fast.rejects, reference.rejects)
    return fast


def tmp_file(data: bytes) -> Path:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


def _vectorised(data: bytes, known: frozenset[str] = KNOWN) -> list[int]:
    """Line numbers the vectorised path took (an empty list when DuckDB refused the file)."""
    path = tmp_file(data)
    fields = ingest.read_segment_files({path: ingest.line_count(data)})[path]
    path.unlink()
    if fields is None:
        return []
    rows, _ = segment_rows(
        fields,
        file="f",
        known_events=known,
        blocked_values=ingest.BLOCKED_VALUES,
        strip_query=ingest.strip_query,
        host=ingest._host,
        personal_keys=ingest.PII_KEYS,
        personal_text=ingest.PERSONAL_TEXT,
    )
    return rows.get_column("line_no").to_list()


def test_the_sample_parses_the_same_both_ways() -> None:
    taxonomy = load_taxonomy(None)
    known = frozenset(taxonomy.filter(pl.col("source_kind") == "segment").get_column("event_name"))
    taken = 0
    for path in sorted(SAMPLE.glob("*.jsonl")):
        data = path.read_bytes()
        _assert_same(data, known)
        taken += len(_vectorised(data, known))
    # 3,881 lines; DuckDB's reader refuses 4 files for a control character in a string: they
    # are read again line by line, and that line goes to the Python parser, as do lines with
    # a personal value
    assert taken == 3865


def test_reading_line_by_line_gives_what_the_reader_gives() -> None:
    # segment_messages_checked.sql is the reader's stand-in for files it refuses: on every file
    # it reads, the two agree on every line and every column.
    compared = 0
    for path in sorted(SAMPLE.glob("*.jsonl")):
        try:
            reader = ingest._segment_fields([path], checked=False)
        except ComputeError:
            continue
        checked = ingest._segment_fields([path], checked=True)
        assert_frame_equal(checked, reader)
        compared += reader.height
    assert compared == 3881 - 67 - 68 - 67 - 185  # all but the 4 refused files


def _line(**fields: object) -> bytes:
    message = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m1",
        "anonymousId": "a1",
        "timestamp": "2026-03-01T10:00:00Z",
        "properties": {"product_id": "P1"},
    }
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not ...}).encode()


def test_plain_lines_are_taken_by_the_vectorised_path() -> None:
    data = b"\n".join(
        [
            _line(),
            _line(messageId="m2", type="page", name="Home", event=...),
            _line(messageId="m3", properties={"products": [{"product_id": 7, "category": "c"}]}),
            _line(messageId="m4", context={"app": {"version": "1"}, "traits": {"email": "A@b.co"}}),
        ]
    )
    assert _vectorised(data) == [1, 2, 3, 4]
    rows = _assert_same(data).rows
    assert rows.get_column("product_id").to_list() == ["P1", "P1", "7", "P1"]
    assert json.loads(rows.get_column("properties")[3]) == {"device": "app", "product_id": "P1"}


def test_near_misses_go_to_the_python_parser_and_agree() -> None:
    lines = [
        _line(messageId=" m1"),  # blanks around a value: Python strips them
        _line(messageId="m2", userId=5.0),  # a float id: Python's str() of it
        _line(messageId="m3", properties={"revenue": "0.125"}),  # rounding half to even
        _line(messageId="m4", timestamp="2026-03-01 10:00:00+00:00"),  # a space, not T
        _line(messageId="m5", properties={"note": "call +39 333 1234567"}),  # masked free text
        _line(messageId="m6", properties={"url": "x"}),  # replaces what ingest adds
        _line(messageId="m7", anonymousId="unknown"),  # blocked and no other id: rejected
        _line(messageId="m8", event="Nope"),  # unmapped: rejected
        _line(messageId='m"9'),  # an escaped quote
    ]
    data = b"\n".join(lines)
    assert _vectorised(data) == []
    parsed = _assert_same(data)
    assert parsed.rows.height == 7
    assert parsed.rejects.get_column("reason").to_list() == ["missing_identifier", "unmapped_event"]


def test_a_non_ascii_identifier_goes_to_the_python_parser() -> None:
    # U+A7DC lower-cases to 'ƛ' in Polars (Unicode 16), to itself in Python 3.11 (Unicode 14):
    # with 'ƛ' blocked only Python's answer counts, so the line is left to it
    data = b"\n".join(
        [
            _line(anonymousId="ANON", userId="u1").replace(b"ANON", "\ua7dc".encode()),
            _line(messageId="m2"),
        ]
    )
    blocked = ingest.BLOCKED_VALUES | {"\u019b"}
    fast, reference = (
        parse(data, file="f.jsonl", known_events=KNOWN, hash_key="k", blocked_values=blocked)
        for parse in (parse_segment, parse_segment_lines)
    )
    assert_frame_equal(_comparable(fast.rows), _comparable(reference.rows))
    assert fast.rows.get_column("anonymous_id").to_list() == ["\ua7dc", "a1"]
    assert _vectorised(data) == [2]


def test_a_repeated_property_key_goes_to_the_python_parser() -> None:
    # Python keeps the last of two equal keys, DuckDB's JSON paths the first
    repeated = _line(messageId="m2")[:-2] + b', "product_id": "P2"}}'
    data = b"\n".join(
        [
            _line(),
            repeated,
            _line(messageId="m3", properties={}),
            _line(messageId="m4", properties={"x": 1}),
        ]
    )
    assert _vectorised(data) == [1, 3, 4]
    assert _assert_same(data).rows.get_column("product_id").to_list() == ["P1", "P2", None, None]


def test_files_duckdb_refuses_or_with_blank_lines_are_read_line_by_line() -> None:
    # A blank line would shift the reader's row numbers; a non-object line makes it refuse the
    # file. Both files are read again line by line: the other lines are decided by DuckDB.
    blank = _line() + b"\n\n" + _line(messageId="m2")
    assert _vectorised(blank) == [1, 3]
    _assert_same(blank)
    not_object = _line() + b"\n[1]\n"
    assert _vectorised(not_object) == [1]
    _assert_same(not_object)


def test_a_refused_file_is_read_line_by_line_and_only_its_bad_lines_go_to_python(
    tmp_path: Path,
) -> None:
    lines = [_line(messageId=f"m{n}") for n in range(1, 10)]
    lines[4] = b'{"type": "track", "messageId": "m5", "event": '  # cut short: DuckDB refuses
    lines[6] = b""  # a blank line: the reader skips it, which would shift the numbers
    # a page that is not an object: the reader refuses it, Python ignores the page
    lines[7] = _line(messageId="m8")[:-1] + b', "context": {"page": 7}}'
    data = b"\n".join(lines)
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    fields = ingest.read_segment_files({path: 9})[path]
    assert fields is not None
    assert fields.get_column("line_no").to_list() == list(range(1, 10))
    assert fields.filter("is_sure").get_column("line_no").to_list() == [1, 2, 3, 4, 6, 9]
    fast = ingest.parse_segment_fields(
        data, fields=fields, file="f.jsonl", known_events=KNOWN, hash_key="k"
    )
    reference = parse_segment_lines(data, file="f.jsonl", known_events=KNOWN, hash_key="k")
    assert_frame_equal(_comparable(fast.rows), _comparable(reference.rows))
    assert_frame_equal(fast.rejects, reference.rejects)
    assert fast.rejects.get_column("line_no").to_list() == [5]


@pytest.mark.parametrize("stand_in", [True, False])
def test_a_file_duckdb_cannot_read_as_text_is_read_again_around_its_bad_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, stand_in: bool
) -> None:
    # Not UTF-8 (line 5): the reader refuses the file. A copy with lines 5 and 7 (blank)
    # stood in for is read in one pass: those two go to Python (which reads them from the
    # file itself), the others are decided as usual. Without the copy (the reader refusing
    # it as well), the line-by-line read does not take the file either: the reader names the line
    # after the bad one (line 6), lines 5 and 6 go to Python, the others are read again, the
    # piece after them (with the blank line 7) line by line.
    if not stand_in:
        monkeypatch.setattr(ingest, "_STAND_IN_TRIES", 0)
    expected = [1, 2, 3, 4, 6, 8, 9] if stand_in else [1, 2, 3, 4, 8, 9]
    lines = [_line(messageId=f"m{n}") for n in range(1, 10)]
    lines[4] = b'{"type": "track", "messageId": "m5", "event": "\xff'
    lines[6] = b""
    data = b"\n".join(lines)
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)

    def sure(smallest: int) -> list[int]:
        fields = ingest.read_segment_files({path: 9}, smallest=smallest)[path]
        assert fields is not None
        assert fields.get_column("line_no").to_list() == list(range(1, 10))
        return fields.filter("is_sure").get_column("line_no").to_list()

    assert sure(smallest=1) == expected
    assert sure(smallest=1024) == expected
    fields = ingest.read_segment_files({path: 9}, smallest=1)[path]
    fast = ingest.parse_segment_fields(
        data, fields=fields, file="f.jsonl", known_events=KNOWN, hash_key="k"
    )
    reference = parse_segment_lines(data, file="f.jsonl", known_events=KNOWN, hash_key="k")
    assert_frame_equal(_comparable(fast.rows), _comparable(reference.rows))
    assert_frame_equal(fast.rejects, reference.rejects)


def _doubtful_line_by_line(data: bytes) -> set[int]:
    """What ``_doubtful_lines`` finds, one line at a time: the reference."""
    found = set()
    for line_no, line in enumerate(data.split(b"\n")[: ingest.line_count(data)], start=1):
        opens, closes = line.count(b"{"), line.count(b"}")
        control = any(byte < 0x20 and byte != ord("\r") for byte in line)
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            control = True
        if opens == 0 or opens != closes or control:
            found.add(line_no)
    return found


_JSONISH = st.lists(
    st.sampled_from([b"{", b"}", b'"a":1', b"\r", b"\x01", b"\xff", b"\xc3", b"\xc3\xa9", b"x"]),
    max_size=6,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSONISH, min_size=1, max_size=8), st.booleans(), st.data())
def test_doubtful_lines_and_their_stand_ins_agree_with_a_line_by_line_reading(
    lines: list[bytes], ends_with_newline: bool, data: st.DataObject
) -> None:
    # A byte that is not UTF-8 (a lone \xff, or \xc3 cut short by its line's end) makes
    # its line doubtful, and only its own; a carriage return does not.
    text = b"\n".join(lines) + (b"\n" if ends_with_newline else b"")
    assert ingest._doubtful_lines(text) == _doubtful_line_by_line(text)
    count = ingest.line_count(text)
    stood_in = data.draw(st.sets(st.integers(1, count)) if count else st.just(set[int]()))
    expected = [
        b"{}" if n in stood_in else line for n, line in enumerate(text.split(b"\n"), start=1)
    ]
    assert ingest._stood_in(text, stood_in) == b"\n".join(expected)


def test_files_read_together_are_read_again_line_by_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    good.write_bytes(_line())
    bad.write_bytes(b"\n".join([_line(messageId="m2"), b"[1]", _line(messageId="m4")]))
    read = ingest.read_segment_files({good: 1, bad: 3})
    assert read[good] is not None
    assert read[good].get_column("is_sure").to_list() == [True]
    # [1] is not an object: only that line goes to Python
    assert read[bad] is not None
    assert read[bad].select("line_no", "is_sure").rows() == [(1, True), (2, False), (3, True)]


def test_a_trailing_comma_is_tolerated_both_ways() -> None:
    data = _line()[:-1] + b", }"
    assert _vectorised(data) == [1]
    assert _assert_same(data).rows.height == 1


def test_an_app_context_is_one_with_a_non_null_app() -> None:
    data = b"\n".join(
        [_line(context={"app": None}), _line(messageId="m2", context={"app": {"name": "x"}})]
    )
    rows = _assert_same(data).rows
    devices = [json.loads(p)["device"] for p in rows.get_column("properties")]
    assert devices == ["browser", "app"]


# Plausible messages: mostly plain values, with near misses in every field the parser reads.
def _mostly(plain: list[object], near_misses: list[object]) -> st.SearchStrategy[object]:
    return st.sampled_from(plain * 4 + near_misses)


texts = _mostly(["P1", "a b", "é", 7], [" x", "", "unknown", 'q"t', "0", 0, "a@b.co", 1.5])
stamps = _mostly(
    ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123+01:00", "2026-03-01T10:00:00.5-05:30"],
    ["2026-02-30T10:00:00Z", "2026-03-01T10:00:00", "2026-03-01", "0999-01-01T00:00:00Z", None],
)
amounts = _mostly([10, 10.5, "10.50", -3], ["0.125", "abc", 1e20, True, None])
plausible = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["track", "page", "screen", "identify"]),
        "messageId": _mostly(["m1", "m2", 12], [" m", "m\\n", "", None]),
        "timestamp": stamps,
        "event": _mostly(["Product Viewed", "Order Completed"], ["Nope", " Product Viewed", 3]),
        "name": _mostly(["Home"], ["", "Nope", 5]),
        "anonymousId": _mostly(["a1", "a2"], ["unknown", " a1", "", 0]),
    },
    optional={
        "userId": texts,
        "sentAt": stamps,
        "receivedAt": stamps,
        "originalTimestamp": stamps,
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "product_id": texts,
                "category": texts,
                "order_id": texts,
                "revenue": amounts,
                "currency": texts,
                "products": st.lists(
                    st.fixed_dictionaries({}, optional={"product_id": texts, "category": texts}),
                    max_size=2,
                ),
                "name": _mostly(["Shoe"], [7]),
                "price": st.floats(allow_nan=False, allow_infinity=False),
            },
        ),
        "context": st.fixed_dictionaries(
            {},
            optional={
                "page": st.fixed_dictionaries(
                    {},
                    optional={
                        "url": _mostly(
                            ["https://s.example/p?utm_source=x&q=1#f", "https://s.example/"],
                            ["", 5, "https://s.example/p#f", "https://s.example?q=1", "p?x"],
                        ),
                        # DuckDB reads the host of a plain ASCII authority, Python the rest
                        "referrer": _mostly(
                            ["https://WWW.Reviews.example/r", "", "HTTP://Shop.Example:8080"],
                            [
                                "not a url",
                                "http://[x",
                                "http://u@host.example/x",
                                "https:///nohost",
                                " https://pad.example/",
                                "https://ex.example:abc/",
                                "https://bücher.example/",
                                "//no-scheme.example/x",
                                "android-app://com.example.app",
                                "https://r.example/s?q=shoes#top",
                            ],
                        ),
                    },
                ),
                "campaign": _mostly([{"source": "news"}], [{}, {"name": "spring"}, "x", "", 0]),
                "app": st.none() | st.just({"version": "1"}),
                "traits": st.fixed_dictionaries({}, optional={"email": texts, "phone": texts}),
            },
        ),
        "traits": st.fixed_dictionaries({}, optional={"email": texts, "phone": texts}),
    },
)


# Lines DuckDB refuses (it names a line and the read is made again around it) or skips.
broken = st.sampled_from(
    [
        b"not json",
        b"[1]",
        b'{"type": "track", "messageId": "cut", "event": ',
        b'{"type": "track", "context": "x"}',
        b'{"type": "track", "messageId": "a", "messageId": "b"}',
        b'{"type": "track", "name": "ctl\x01"}',
        b"",
        b"   ",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(plausible | broken, min_size=1, max_size=8))
def test_both_paths_agree_on_plausible_messages(messages: list[dict[str, object] | bytes]) -> None:
    _assert_same(
        b"\n".join(
            m if isinstance(m, bytes) else json.dumps(m, ensure_ascii=False).encode()
            for m in messages
        )
    )
