"""Stitching across runs: the sample loaded in two slices stitches incrementally to exactly what
one run over all of it gives, and the guards' settings decide when a run starts over."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journey_analytics import identity, jobs
from journey_analytics.config import load_settings
from journey_analytics.taxonomy import load_taxonomy
from journey_analytics.warehouse import Warehouse

from ._project import REPO, sample_config

pytestmark = pytest.mark.slow

_TABLES = {
    "core.customers": ["identifier_type", "identifier_value"],
    "core.identity_links": ["left_type", "left_value", "right_type", "right_value"],
    "core.events": ["event_id"],
}


def _later(path: Path) -> bool:
    """Files of April 2026 onwards (weekly files are named by their Monday)."""
    day = path.stem[-10:]
    return day[:4].isdigit() and day >= "2026-04-01"


def _tables(database: Path) -> dict[str, pl.DataFrame]:
    with Warehouse.open(database, read_only=True) as wh:
        return {name: wh.read(name).sort(key) for name, key in _TABLES.items()}


def test_sample_in_two_slices_stitches_incrementally_to_the_one_shot_result(
    tmp_path: Path,
) -> None:
    sample = tmp_path / "sample"
    shutil.copytree(REPO / "data" / "sample", sample)
    held = tmp_path / "held"
    for path in sorted(sample.rglob("*.*")):
        if path.suffix in {".jsonl", ".csv"} and path.parent != sample and _later(path):
            target = held / path.relative_to(sample)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    # The CRM exports all its contacts every day: the first export has the first 200.
    contacts = sample / "crm" / "contacts.csv"
    (held / "crm" / "contacts.csv").write_text(contacts.read_text())
    contacts.write_text("".join(contacts.read_text().splitlines(keepends=True)[:201]))
    sliced = load_settings(sample_config(sample, tmp_path / "sliced"))
    jobs.ingest_sources(sliced)
    first = jobs.build_core(sliced)
    shutil.copytree(held, sample, dirs_exist_ok=True)
    jobs.ingest_sources(sliced)
    second = jobs.build_core(sliced)

    whole = load_settings(sample_config(REPO / "data" / "sample", tmp_path / "whole"))
    jobs.ingest_sources(whole)
    once = jobs.build_core(whole)

    assert (first.stitch_mode, second.stitch_mode, once.stitch_mode) == (
        "full",
        "incremental",
        "full",
    )
    # the second build made events of the second slice's rows only (no receipt has lines
    # in both slices), and keyed again only the stored events whose customer changed
    assert (first.mode, second.mode, once.mode) == ("full", "incremental", "full")
    assert (first.events_written, second.events_written, second.events) == (2544, 2215, 4759)
    assert first.events_written + second.events_written == once.events
    assert second.events_rekeyed == 115
    # Only the identifiers the new files touch are decided again, not all of them.
    assert 0 < second.identifiers_decided < second.identifiers == once.identifiers
    incremental, scratch = _tables(sliced.database_path), _tables(whole.database_path)
    for name in _TABLES:
        # ingested_at and batch_id differ between the two databases by design
        columns = [c for c in scratch[name].columns if c not in {"ingested_at", "batch_id"}]
        assert_frame_equal(incremental[name].select(columns), scratch[name].select(columns))
    # Most contacts came late: customers known apart were merged, and the ledger says so.
    with Warehouse.open(sliced.database_path, read_only=True) as wh:
        ledger = wh.query(
            "select change, count(*) as n from ops.identity_changes group by change order by 1"
        )
        runs = wh.query("select mode, changes from ops.identity_runs order by run_at")
    assert second.identity_changes == ledger.get_column("n").sum() > 0
    assert ledger.rows() == [("merge", 79), ("merge_split", 1), ("rekey", 14), ("split", 7)]
    assert runs.rows() == [("full", 0), ("incremental", second.identity_changes)]


def test_changing_the_guards_stitches_from_scratch(tmp_path: Path) -> None:
    config = sample_config(REPO / "data" / "sample", tmp_path)
    settings = load_settings(config)
    jobs.ingest_sources(settings)
    assert jobs.build_core(settings).stitch_mode == "full"
    assert jobs.build_core(settings).stitch_mode == "incremental"
    assert jobs.build_core(settings).identifiers_decided == 0
    config.write_text(config.read_text() + "\n[identity]\nshared_limits = { anonymous_id = 3 }\n")
    changed = load_settings(config)
    assert jobs.build_core(changed).stitch_mode == "full"


def test_receipts_after_their_lines_and_a_late_line_give_the_one_shot_events(
    tmp_path: Path,
) -> None:
    sample = tmp_path / "sample"
    shutil.copytree(REPO / "data" / "sample", sample)
    held = tmp_path / "held" / "pos"
    held.mkdir(parents=True)
    # The receipts of April onwards come a day after their lines.
    for path in sorted((sample / "pos").glob("receipts-*.csv")):
        if _later(path):
            path.rename(held / path.name)
    # One receipt of March with several lines has its last line in a later file of its own.
    lines_file = sample / "pos" / "receipt_lines-2026-03-02.csv"
    rows = lines_file.read_text().splitlines(keepends=True)
    counts = Counter(row.split(",")[0] for row in rows[1:])
    receipt = next(receipt for receipt, n in counts.items() if n >= 2)
    last = max(i for i, row in enumerate(rows) if row.startswith(f"{receipt},"))
    lines_file.write_text("".join(rows[:last] + rows[last + 1 :]))
    (held / "receipt_lines-2026-07-06.csv").write_text(rows[0] + rows[last])

    sliced = load_settings(sample_config(sample, tmp_path / "sliced"))
    jobs.ingest_sources(sliced)
    first = jobs.build_core(sliced)
    with Warehouse.open(sliced.database_path, read_only=True) as wh:
        waiting = wh.query(
            "select count(*) from raw.pos_lines where receipt_id not in "
            "(select record_key from raw.pos_receipts)"
        ).item()
        sale = wh.query(
            "select revenue from core.events where event_id = $id", {"id": f"pos:{receipt}:sale"}
        )
    assert first.pending == {"receipt lines without their receipt": waiting} != {}
    shutil.copytree(held, sample / "pos", dirs_exist_ok=True)
    jobs.ingest_sources(sliced)
    second = jobs.build_core(sliced)

    whole = load_settings(sample_config(REPO / "data" / "sample", tmp_path / "whole"))
    jobs.ingest_sources(whole)
    once = jobs.build_core(whole)

    assert (second.mode, second.pending, once.pending) == ("incremental", {}, {})
    incremental, scratch = _tables(sliced.database_path), _tables(whole.database_path)
    for name in _TABLES:
        columns = [c for c in scratch[name].columns if c not in {"ingested_at", "batch_id"}]
        assert_frame_equal(incremental[name].select(columns), scratch[name].select(columns))
    # the receipt's sale was made anew with its late line: more revenue, one event
    after = incremental["core.events"].filter(pl.col("event_id") == f"pos:{receipt}:sale")
    assert after.get_column("revenue").item() > sale.get_column("revenue").item()
    made = first.events_written + second.events_written
    assert made == once.events + 1  # the sale, made twice


def test_batches_are_read_in_chunks_of_about_so_many_rows() -> None:
    batches = pl.DataFrame({"batch_id": list("abcde"), "rows_loaded": [5, 3, 9, 1, 1]})
    chunks = jobs._chunks(batches, 8)
    assert [chunk.get_column("batch_id").to_list() for chunk in chunks] == [
        ["a", "b"],
        ["c"],
        ["d", "e"],
    ]
    assert [c.get_column("batch_id").to_list() for c in jobs._chunks(batches, 100)] == [
        list("abcde")
    ]


def test_a_full_build_in_small_chunks_equals_one_in_a_single_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = load_settings(sample_config(REPO / "data" / "sample", tmp_path / "whole"))
    jobs.ingest_sources(whole)
    once = jobs.build_core(whole)
    chunked = load_settings(sample_config(REPO / "data" / "sample", tmp_path / "chunked"))
    jobs.ingest_sources(chunked)
    # 19 chunks: receipts and their lines (files of their own) fall in different chunks
    monkeypatch.setattr(jobs, "CORE_CHUNK_ROWS", 300)
    assert len(jobs._chunks(_batches(chunked.database_path), 300)) == 19
    many = jobs.build_core(chunked)
    assert (once.mode, many.mode) == ("full", "full")
    assert (once.events, many.events, many.events_written) == (4759, 4759, 4759)
    assert many.customers == once.customers
    first, second = _tables(whole.database_path), _tables(chunked.database_path)
    for name in _TABLES:
        columns = [c for c in first[name].columns if c not in {"ingested_at", "batch_id"}]
        assert_frame_equal(second[name].select(columns), first[name].select(columns))
    # the events of every raw row at once (jobs.canonical_events without batches): the same
    taxonomy = load_taxonomy(whole.resolve(whole.taxonomy) if whole.taxonomy else None)
    with Warehouse.open(whole.database_path, read_only=True) as wh:
        everything, contacts = jobs.canonical_events(wh, whole, taxonomy)
    assert_frame_equal(
        everything.drop("customer_key").sort("event_id"),
        first["core.events"].drop("customer_key"),
    )
    assert contacts.height == 403  # the loaded rows of crm/contacts.csv


def _batches(database: Path) -> pl.DataFrame:
    with Warehouse.open(database, read_only=True) as wh:
        return wh.query(
            "select batch_id, rows_loaded from ops.batches order by started_at, batch_id"
        )


def test_a_full_build_interrupted_midway_is_redone_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full build commits its events a chunk at a time: stopped after two chunks, it leaves
    # a part of them, and the next build (asked for nothing) makes them all again.
    settings = load_settings(sample_config(REPO / "data" / "sample", tmp_path))
    jobs.ingest_sources(settings)
    monkeypatch.setattr(jobs, "CORE_CHUNK_ROWS", 300)
    keyed = identity.assign_customer_keys
    calls: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> pl.DataFrame:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return keyed(*args, **kwargs)

    monkeypatch.setattr(identity, "assign_customer_keys", failing)
    with pytest.raises(OSError, match="No space"):
        jobs.build_core(settings)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        assert 0 < wh.query("select count(*) from core.events").item() < 4759
    monkeypatch.setattr(identity, "assign_customer_keys", keyed)
    report = jobs.build_core(settings)
    assert (report.mode, report.events, report.events_written) == ("full", 4759, 4759)
    assert not (settings.work_path / "core-chunks").exists()
