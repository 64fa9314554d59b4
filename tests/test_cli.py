"""The command line: errors a scheduler can act on, and the sample generator."""

from __future__ import annotations

import json
import os
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


def test_every_command_has_help_with_an_example() -> None:
    commands = ("run", "sample", "evaluate", "dashboard", "status", "forget", "serve", "as-of")
    shown = {}
    for command in commands:
        result = runner.invoke(app, [command, "--help"], terminal_width=200)
        example = result.output.partition("Example: ")[2]
        shown[command] = result.exit_code == 0 and f"journey {command} " in example
    assert shown == dict.fromkeys(commands, True)


def test_serve_without_a_server_exits_6_saying_how_to_start_one(tmp_path: Path) -> None:
    before = os.environ.get("PREFECT_API_URL")
    config = project(tmp_path, {}).base_dir / "journey.toml"
    result = runner.invoke(app, ["serve", "--config", str(config)], env={"PREFECT_API_URL": ""})
    assert result.exit_code == 6
    assert "prefect server start --host 127.0.0.1" in result.output
    # nothing listens on port 9 of this machine (discard): refused, not a hang
    result = runner.invoke(
        app,
        ["serve", "--config", str(config), "--api-url", "http://127.0.0.1:9/api"],
        env={"PREFECT_API_URL": ""},  # restored after: later tests start runs of their own
    )
    assert result.exit_code == 6
    assert "No Prefect server answers at http://127.0.0.1:9/api" in result.output
    assert os.environ.get("PREFECT_API_URL") == before  # nothing left for the next test


def test_run_with_an_api_url_that_does_not_answer_exits_6(tmp_path: Path) -> None:
    # PREFECT_API_URL set (as for a real server) but nothing listens there: a clear message
    # before anything is loaded, instead of Prefect's traceback after its retries
    config = project(tmp_path, {}).base_dir / "journey.toml"
    result = runner.invoke(
        app,
        ["run", "--config", str(config)],
        env={"PREFECT_API_URL": "http://127.0.0.1:9/api"},
        terminal_width=300,
    )
    assert result.exit_code == 6
    assert "No Prefect server answers at http://127.0.0.1:9/api" in result.output
    assert not (config.parent / "journeys.duckdb").exists()


def test_serve_names_a_bad_cron_or_zone_before_it_looks_for_a_server(tmp_path: Path) -> None:
    config = project(tmp_path, {}, extra_toml='[schedule]\ncron = "61 6 * * *"\n').base_dir
    path = str(config / "journey.toml")
    url = ["--api-url", "http://127.0.0.1:9/api"]
    clean = {"PREFECT_API_URL": ""}
    from_file = runner.invoke(app, ["serve", "--config", path, *url], terminal_width=300, env=clean)
    from_option = runner.invoke(
        app, ["serve", "--config", path, "--cron", "0 6 * *", *url], terminal_width=300, env=clean
    )
    zone = runner.invoke(
        app,
        ["serve", "--config", path, "--timezone", "Mars/Olympus", *url],
        terminal_width=300,
        env=clean,
    )
    assert [from_file.exit_code, from_option.exit_code, zone.exit_code] == [2, 2, 2]
    assert f"{path}: schedule.cron: expected five cron fields" in from_file.output
    assert "found '61 6 * * *'" in from_file.output
    assert "--cron: expected five cron fields" in from_option.output
    assert "--timezone: expected an IANA zone such as Europe/Rome, found 'Mars/Olympus'" in (
        zone.output
    )


def test_as_of_names_a_bad_moment_and_an_empty_past(tmp_path: Path) -> None:
    config = str(project(tmp_path, {}).base_dir / "journey.toml")
    bad = runner.invoke(app, ["as-of", "yesterday", "--config", config], terminal_width=300)
    assert bad.exit_code == 2
    assert "expected a day (2026-05-01) or a moment" in bad.output
    assert "found 'yesterday'" in bad.output
