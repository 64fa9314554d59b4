"""The Prefect flow: what is retried and how long it waits; a failing source fails alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pipelines.journey_flow import export_dashboard, ingest_source, retry_io_only

from journey_analytics.errors import ConfigError, SourceError
from journey_analytics.warehouse import Warehouse

from ._project import project


class _Failed:
    """A failed task state as ``retry_condition_fn`` sees it: ``result()`` raises."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def result(self) -> None:
        raise self._error


def test_io_errors_are_retried_a_bad_file_or_config_is_not() -> None:
    # a full disk or a file share that blinked may pass on a retry; a file with the wrong
    # columns or a bad config cannot, so retrying them only delays the error
    decisions = {
        name: retry_io_only(None, None, _Failed(error))
        for name, error in {
            "OSError": OSError("No space left on device"),
            "TimeoutError": TimeoutError(),
            "SourceError": SourceError("web.jsonl: no column messageId"),
            "ConfigError": ConfigError("journey.toml is not valid"),
        }.items()
    }
    assert decisions == {
        "OSError": True,
        "TimeoutError": True,
        "SourceError": False,
        "ConfigError": False,
    }


def test_loading_backs_off_exponentially() -> None:
    assert (ingest_source.retries, ingest_source.retry_delay_seconds) == (3, [5, 10, 20])
    assert (export_dashboard.retries, export_dashboard.retry_delay_seconds) == (1, 0)


@pytest.mark.slow
def test_a_failing_source_fails_alone_and_the_others_load(tmp_path: Path) -> None:
    web = (
        '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:00:00Z"}\n'
    )
    settings = project(tmp_path, {"web.jsonl": web})
    (tmp_path / "lines.csv").unlink()  # the POS export of receipt lines did not arrive
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "journey"),
            "run",
            "--config",
            str(tmp_path / "journey.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("ingest-")]
    assert lines == [["ingest-web", "done"], ["ingest-crm", "done"], ["ingest-pos", "failed"]]
    assert "1 of 3 sources failed; the others are loaded" in result.stderr
    assert "pos: No file matches 'lines*.csv'" in result.stderr
    # the web event went all the way: loaded, a journey, a dashboard
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        assert wh.query("select count(*) from journeys.journeys").item() == 1
        assert wh.query("select source, file, status from ops.batches").rows() == [
            ("web", "web.jsonl", "loaded"),
            ("crm", "contacts.csv", "loaded"),
            ("crm", "interactions.csv", "loaded"),
        ]
    assert (tmp_path / "reports" / "dashboard.html").exists()
