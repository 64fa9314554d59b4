"""Stitching across runs: the sample loaded in two slices stitches incrementally to exactly what
one run over all of it gives, and the guards' settings decide when a run starts over."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journey_analytics import jobs
from journey_analytics.config import load_settings
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
    assert set(ledger.get_column("change")) <= {"merge", "split", "merge_split", "rekey"}
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
