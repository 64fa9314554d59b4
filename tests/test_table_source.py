"""Bring your own table: a CSV, Parquet or JSON-lines file described only by config."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest

from journey_analytics import jobs
from journey_analytics.config import load_settings
from journey_analytics.errors import ConfigError, SourceError
from journey_analytics.ingest import parse_table
from journey_analytics.warehouse import Warehouse

from ._events import at

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-data" / "process-mining"
COLUMNS = {"user_id": "case", "event_name": "activity", "timestamp": "when"}


def test_csv_with_its_own_delimiter_and_local_times() -> None:
    data = (
        b"case;activity;when\n"
        b"c1;Register request;2026-03-29 02:30:00\n"  # missing hour in Rome: offset before
        b"c1;Examine;2026-03-29T05:00:00+00:00\n"  # an offset wins over the zone
        b"c2;;2026-03-29 10:00:00\n"  # no activity
        b";Examine;2026-03-29 10:00:00\n"  # no case
    )
    parsed = parse_table(
        data, file="log.csv", columns=COLUMNS, hash_key="k", delimiter=";", timezone="Europe/Rome"
    )
    assert parsed.rows.select("record_key", "user_id", "event_name", "occurred_at").rows() == [
        ("log.csv:0000000002", "c1", "Register request", at("2026-03-29 01:30")),
        ("log.csv:0000000003", "c1", "Examine", at("2026-03-29 05:00")),
    ]
    assert parsed.rejects.select("line_no", "reason").rows() == [
        (4, "missing_event"),
        (5, "missing_identifier"),
    ]


def test_json_lines_gzipped_without_a_zone_are_refused_row_by_row() -> None:
    data = gzip.compress(
        b"\n".join(
            json.dumps(row).encode()
            for row in [
                {"case": "c1", "activity": "A", "when": "2026-01-01T10:00:00Z"},
                {"case": "c1", "activity": "B", "when": "2026-01-01 11:00:00"},
            ]
        )
    )
    parsed = parse_table(data, file="log.jsonl.gz", columns=COLUMNS, hash_key="k")
    assert parsed.rows.get_column("event_name").to_list() == ["A"]
    assert parsed.rejects.select("line_no", "reason").rows() == [(2, "invalid_timestamp")]
    with pytest.raises(SourceError, match=r"log\.jsonl, line 1: expected the keys .* missing"):
        parse_table(b'{"case": "c1"}\n', file="log.jsonl", columns=COLUMNS, hash_key="k")


def test_a_mapping_without_identifier_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(
        'stores = "s.csv"\n[sources.log]\nkind = "table"\npath = "log.csv"\n'
        'columns = { event_name = "a", timestamp = "t" }\n'
    )
    with pytest.raises(ConfigError, match="map at least one identifier column"):
        load_settings(config)


def _directly_follows(
    log: pl.DataFrame,
) -> tuple[Counter[tuple[str, str]], Counter[str], Counter[str]]:
    """An independent directly-follows count: per case in time order (ties in file order)."""
    edges: Counter[tuple[str, str]] = Counter()
    starts: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    for _, case in log.with_row_index("row").group_by("case", maintain_order=True):
        activities = case.sort("when", "row").get_column("activity").to_list()
        starts[activities[0]] += 1
        ends[activities[-1]] += 1
        edges.update(pairwise(activities))
    return edges, starts, ends


@pytest.mark.slow
@pytest.mark.parametrize("log", ["running-example", "helpdesk", "08_receipt"])
def test_process_mining_logs_give_their_directly_follows_graph(tmp_path: Path, log: str) -> None:
    path = SHARED / f"{log}.csv.gz"
    if not path.exists():
        pytest.skip("../shared/real-data is not next to this checkout (CI has it)")
    (tmp_path / "stores.csv").write_text("store_id,name,region,timezone\n")
    (tmp_path / "journey.toml").write_text(
        'stores = "stores.csv"\n'
        f'[sources.log]\nkind = "table"\npath = "{path}"\n'
        'columns = { user_id = "case:concept:name", event_name = "concept:name", '
        'timestamp = "time:timestamp" }\n'
        '[privacy]\nhash_key = "k"\n'
        # one journey per case: no conversion, a timeout longer than any log, every activity
        "[journeys]\ntimeout_days = 100000\nnoise_touchpoints = []\n"
        "[paths]\ndrop_touchpoints = []\ncollapse_repeats = false\n"
    )
    settings = load_settings(tmp_path / "journey.toml")
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    jobs.build_journeys(settings)
    jobs.build_marts(settings)
    raw = pl.read_csv(path, infer_schema=False).rename(
        {"case:concept:name": "case", "concept:name": "activity", "time:timestamp": "when"}
    )
    log_rows = raw.with_columns(pl.col("when").str.to_datetime(time_zone="UTC"))
    edges, starts, ends = _directly_follows(log_rows)
    slug = {a: _slug(a) for a in raw.get_column("activity").unique().to_list()}
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        found = wh.query(
            "select from_touchpoint, to_touchpoint, transitions from marts.transitions "
            "where segment = 'all'"
        ).rows()
        last = wh.query("select last_touchpoint, count(*) from journeys.journeys group by 1").rows()
        journeys = wh.query("select count(*) from journeys.journeys").item()
    assert journeys == raw.get_column("case").n_unique()
    assert {(f, t): n for f, t, n in found if f != "START" and t != "DROP_OFF"} == {
        (slug[a], slug[b]): n for (a, b), n in edges.items()
    }
    assert {t: n for f, t, n in found if f == "START"} == {slug[a]: n for a, n in starts.items()}
    assert dict(last) == {slug[a]: n for a, n in ends.items()}


def _slug(activity: str) -> str:
    return pl.select(
        pl.lit(activity).str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "_").str.strip_chars("_")
    ).item()
