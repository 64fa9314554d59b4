"""The command line: errors a scheduler can act on, and the sample generator."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from journey_analytics import jobs
from journey_analytics.cli import app

from ._project import project

runner = CliRunner()


def test_bad_config_exits_2_naming_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text('stores = "stores.csv"\n[journeys]\ntimeout_days = "soon"\n')
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "journey.toml is not valid" in result.output
    assert "journeys.timeout_days" in result.output


def test_missing_source_file_exits_2_naming_the_pattern(tmp_path: Path) -> None:
    (tmp_path / "stores.csv").write_text("store_id,name,region,timezone\n")
    config = tmp_path / "journey.toml"
    config.write_text(
        'stores = "stores.csv"\n[sources.web]\nkind = "segment"\npath = "nowhere/*.jsonl"\n'
        'channel = "web"\n[privacy]\nhash_key = "k"\n'
    )
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "No file matches 'nowhere/*.jsonl'" in result.output


def test_sample_command_writes_the_sources(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sample", "--customers", "20", "--seed", "7", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "20 customers" in result.output
    assert list((tmp_path / "pos").glob("receipts-*.csv"))
    assert sorted(p.name for p in (tmp_path / "truth").iterdir()) == [
        "customers.csv",
        "events.csv",
        "identifiers.csv",
        "journeys.csv",
        "summary.json",
    ]


def test_sample_without_noise_and_a_bad_simulator_config(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["sample", "--customers", "20", "--seed", "7", "--out", str(tmp_path / "s"), "--no-noise"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "s" / "truth" / "summary.json").read_text())
    assert summary["config"]["noise"] is False
    bad = tmp_path / "sim.toml"
    bad.write_text("[journeys]\nropo = -1\n")
    result = runner.invoke(app, ["sample", "--config", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "sim.toml" in result.output
    assert "journeys.ropo" in result.output


def test_status_lists_sources_batches_and_reject_reasons(tmp_path: Path) -> None:
    settings = project(
        tmp_path,
        {
            "web.jsonl": '{"type":"track","event":"Product Viewed","messageId":"m1",'
            '"anonymousId":"a1","timestamp":"2026-03-01T10:00:00Z"}\n{broken\n',
        },
        extra_toml="[ingest]\nmax_reject_rate = 1.0\n",
    )
    jobs.ingest_sources(settings)
    result = runner.invoke(app, ["status", "--config", str(tmp_path / "journey.toml")])
    assert result.exit_code == 0, result.output
    report = jobs.load_status(settings.database_path)
    assert report.sources.filter(source="web").select(
        "files", "rows_read", "rows_loaded", "rows_duplicate", "rows_rejected"
    ).row(0) == (1, 2, 1, 0, 1)
    assert report.reasons.select("source", "reason", "rows", "first_seen").rows() == [
        ("web", "invalid_json", 1, "web.jsonl:2")
    ]
    assert "invalid_json" in result.output


def test_status_before_any_run(tmp_path: Path) -> None:
    project(tmp_path, {})
    result = runner.invoke(app, ["status", "--config", str(tmp_path / "journey.toml")])
    assert result.exit_code == 2
    assert "run `journey run` first" in result.output
