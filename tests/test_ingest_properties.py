"""Property tests: whatever bytes arrive, ingest does not crash and accounts for every row."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey_analytics.ingest import (
    INTERACTION_COLUMNS,
    RECEIPT_COLUMNS,
    parse_crm_interactions,
    parse_pos_receipts,
    parse_segment,
)

KNOWN = frozenset({"Product Viewed", "Order Completed", "identify", "page:Home"})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat()),
    st.text(max_size=25),
    st.integers(),
    st.none(),
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "page", "identify", "screen", "alias", 7]),
        "event": st.sampled_from(["Product Viewed", "Order Completed", "Nope", ""]) | json_values,
        "name": st.just("Home") | json_values,
        "messageId": st.text(max_size=12) | json_values,
        "anonymousId": st.text(max_size=12) | st.just("unknown") | json_values,
        "userId": st.text(max_size=12) | json_values,
        "timestamp": timestamps,
        "sentAt": timestamps,
        "receivedAt": timestamps,
        "originalTimestamp": timestamps,
        "properties": json_values
        | st.fixed_dictionaries(
            {}, optional={"revenue": json_values, "order_id": json_values, "products": json_values}
        ),
        "context": json_values
        | st.fixed_dictionaries(
            {}, optional={"page": json_values, "campaign": json_values, "traits": json_values}
        ),
        "traits": json_values,
    },
)
segment_lines = st.lists(
    st.one_of(
        messages.map(lambda m: json.dumps(m).encode()),
        st.binary(max_size=60),  # anything, invalid UTF-8 included
        st.text(max_size=5000).map(str.encode),  # huge strings
        st.just(b'{"type": "track"'),  # cut off
    ),
    max_size=25,
)


def _non_blank(lines: list[bytes]) -> int:
    return sum(1 for line in b"\n".join(lines).split(b"\n") if line.rstrip(b"\r").strip())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_lines)
def test_segment_never_crashes_and_every_line_is_loaded_or_rejected(lines: list[bytes]) -> None:
    parsed = parse_segment(b"\n".join(lines), file="f.jsonl", known_events=KNOWN, hash_key="k")
    assert parsed.rows_read == _non_blank(lines)
    assert set(parsed.rejects.get_column("reason")) <= {
        "invalid_json",
        "invalid_utf8",
        "unknown_type",
        "missing_event",
        "unmapped_event",
        "missing_id",
        "missing_timestamp",
        "invalid_timestamp",
        "invalid_number",
        "invalid_type",
        "missing_identifier",
    }


csv_cells = st.one_of(
    st.text(max_size=20),
    st.just(""),
    st.just("2026-03-01T10:00:00Z"),
    st.just("2026-03-01 10:00:00"),
    st.just("S01"),
    st.just("email_click"),
    st.just('"'),
    st.just("a,b"),
    st.just("x\ny"),
)


def _csv(header: tuple[str, ...], rows: list[list[str]]) -> bytes:
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    out = io.StringIO()
    writer = csv.writer(out)  # CRLF line ends, as Excel writes them: a CR in a field is quoted
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(
            csv_cells, min_size=len(INTERACTION_COLUMNS) - 2, max_size=len(INTERACTION_COLUMNS) + 1
        ),
        max_size=15,
    )
)
def test_crm_rows_are_all_accounted_for(rows: list[list[str]]) -> None:
    parsed = parse_crm_interactions(
        _csv(INTERACTION_COLUMNS, rows),
        file="i.csv",
        known_events=frozenset({"email_click"}),
        hash_key="k",
    )
    # a row is one record whatever line breaks its quoted fields hold
    assert parsed.rows_read == len(rows)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(csv_cells, min_size=len(RECEIPT_COLUMNS), max_size=len(RECEIPT_COLUMNS)),
        max_size=15,
    )
)
def test_pos_rows_are_all_accounted_for(rows: list[list[str]]) -> None:
    parsed = parse_pos_receipts(
        _csv(RECEIPT_COLUMNS, rows), file="r.csv", store_zones={"S01": "Europe/Rome"}, hash_key="k"
    )
    assert parsed.rows_read == len(rows)
    # every accepted receipt has a time in UTC
    assert parsed.rows.get_column("occurred_at").null_count() == 0
