"""A run killed with SIGKILL in the middle of ingest leaves the database as it was before the
batches it was writing; the next run completes them and ends exactly where an uninterrupted run
ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from journey_analytics.sample import generate_sample
from journey_analytics.warehouse import Warehouse

from ._project import sample_config

pytestmark = pytest.mark.slow

# what differs between two runs by design: the clock
CLOCK_COLUMNS = {"ingested_at", "started_at", "finished_at"}
TABLES = (
    "ops.batches",
    "quarantine.rejects",
    "core.events",
    "core.customers",
    "journeys.journeys",
    "journeys.steps",
    "marts.transitions",
    "marts.patterns",
    "marts.paths",
    "marts.attribution",
    "marts.funnel",
    "marts.dropoffs",
)


def _run(config: Path) -> subprocess.Popen[str]:
    cli = Path(sys.executable).parent / "journey"
    return subprocess.Popen(
        [str(cli), "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _tables(database: Path) -> dict[str, pl.DataFrame]:
    with Warehouse.open(database, read_only=True) as wh:
        frames = {table: wh.read(table) for table in TABLES}
    return {
        table: frame.drop([c for c in frame.columns if c in CLOCK_COLUMNS])
        .with_columns(pl.col(pl.List(pl.String)).list.join("|"))
        .sort(pl.all())
        for table, frame in frames.items()
    }


def test_sigkill_mid_ingest_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    generate_sample(tmp_path / "sample", customers=2500, seed=11)
    killed = sample_config(tmp_path / "sample", tmp_path / "killed")
    whole = sample_config(tmp_path / "sample", tmp_path / "whole")
    # a commit every file or so, so the kill lands between commits
    for config in (killed, whole):
        config.write_text(config.read_text().replace("commit_rows = 500000", "commit_rows = 1"))

    run = _run(killed)
    wal = tmp_path / "killed" / "journeys.duckdb.wal"
    deadline = time.monotonic() + 120
    # a few batches in: the write-ahead log has grown past what creating the tables writes
    while run.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > 256 * 1024:
            break
        time.sleep(0.005)
    assert run.poll() is None, "the run ended before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    with Warehouse.open(tmp_path / "killed" / "journeys.duckdb", read_only=True) as wh:
        loaded = wh.query("select count(*) as n from ops.batches").item()
        files = (
            len(list((tmp_path / "sample").rglob("*.jsonl")))
            + len(list((tmp_path / "sample").rglob("*.csv")))
            - 2
            - 3
        )  # stores, products, truth
        # the kill landed mid-ingest: some files loaded, not all
        print(f"killed after {loaded} of {files} files")
        assert 0 < loaded < files
        # every loaded batch is whole: its rows are all there, none of a half-loaded one
        per_batch = wh.query(
            "select b.batch_id, b.rows_loaded, count(r.record_key) as rows "
            "from ops.batches b left join raw.clickstream r using (batch_id) "
            "where b.file like '%clickstream%' group by all having b.rows_loaded <> rows"
        )
        assert per_batch.height == 0

    assert _run(killed).wait(timeout=600) == 0
    assert _run(whole).wait(timeout=600) == 0
    after_kill = _tables(tmp_path / "killed" / "journeys.duckdb")
    uninterrupted = _tables(tmp_path / "whole" / "journeys.duckdb")
    for table in TABLES:
        assert after_kill[table].equals(uninterrupted[table]), table
