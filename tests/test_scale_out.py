"""Scale-out: ``journey run --executor dask`` on a ``distributed.LocalCluster`` with two worker
processes gives the same tables as the run in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from distributed import LocalCluster
from prefect.server.api.server import SubprocessASGIServer

from journey_analytics.config import load_settings
from journey_analytics.jobs import MARTS
from journey_analytics.warehouse import Warehouse

from ._project import REPO, run_all, sample_config

pytestmark = pytest.mark.slow

TABLES = (
    "core.events",
    "core.customers",
    "journeys.sessions",
    "journeys.journeys",
    "journeys.steps",
    *MARTS,
)
LOAD_TIME = ("ingested_at", "batch_id", "first_seen_at", "last_seen_at")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two worker processes and the Prefect API they and the run report to (as on a real
    cluster, where PREFECT_API_URL names a server every machine reaches)."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = SubprocessASGIServer()
    server.start(timeout=240)
    env = {"PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(home)}
    try:
        with LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            env=env,
        ) as local:
            yield str(local.scheduler_address), server.api_url
    finally:
        server.stop()  # now, while pytest's log capture is still there to write to


def _snapshot(database: Path) -> dict[str, pl.DataFrame]:
    with Warehouse.open(database, read_only=True) as wh:
        frames = {table: wh.read(table) for table in TABLES}
    kept = {t: f.drop(c for c in LOAD_TIME if c in f.columns) for t, f in frames.items()}
    return {t: f.sort(f.columns, nulls_last=True) for t, f in kept.items()}


def test_dask_run_equals_the_single_process_run(cluster: tuple[str, str], tmp_path: Path) -> None:
    address, api_url = cluster
    sample = REPO / "data" / "sample"
    local = load_settings(sample_config(sample, tmp_path / "local"))
    run_all(local)

    config = sample_config(sample, tmp_path / "dask")
    # small shards: the sample's 4,759 events make 4, spread over both workers
    config.write_text(config.read_text() + "\n[scale]\nevents_per_shard = 1500\n")
    env = {**os.environ, "PREFECT_API_URL": api_url}
    command = [str(Path(sys.executable).parent / "journey"), "run", "--config", str(config)]
    command += ["--executor", "dask", "--dask-address", address]
    runs = [
        subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
        for _ in range(2)  # the second: nothing new, an incremental build of no one
    ]
    assert [run.returncode for run in runs] == [0, 0], (
        runs[0].stdout[-3000:] + runs[0].stderr[-3000:]
    )
    assert "build-journey-shards done" in runs[0].stdout.replace("  ", " ")
    assert "journeys: full build, 500 of 500 customers with events rebuilt" in runs[0].stdout
    assert "journeys: incremental build, 0 of 500 customers with events rebuilt" in runs[1].stdout

    ours, theirs = _snapshot(tmp_path / "dask" / "journeys.duckdb"), _snapshot(local.database_path)
    assert [t for t in TABLES if not ours[t].equals(theirs[t])] == []
    with Warehouse.open(tmp_path / "dask" / "journeys.duckdb", read_only=True) as wh:
        assert wh.query(
            "select mode, events_rebuilt from ops.journey_runs order by run_at"
        ).rows() == [
            ("full", 4759),
            ("incremental", 0),
        ]
    # every run's shard files are gone
    assert list((tmp_path / "dask" / "work" / "journeys").iterdir()) == []
