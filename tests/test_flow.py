"""The Prefect flow's retry policy: what is retried, and how long it waits."""

from __future__ import annotations

from pipelines.journey_flow import export_dashboard, ingest_sources, retry_io_only

from journey_analytics.errors import ConfigError, SourceError


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
    assert (ingest_sources.retries, ingest_sources.retry_delay_seconds) == (3, [5, 10, 20])
    assert (export_dashboard.retries, export_dashboard.retry_delay_seconds) == (1, 0)
