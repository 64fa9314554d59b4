"""The project's exceptions: one base class, and errors that name where and what went wrong."""

from __future__ import annotations


class JourneyError(Exception):
    """Base class of every error journey-analytics raises on purpose."""


class ConfigError(JourneyError):
    """The configuration (TOML file, environment, taxonomy or rules file) is not usable."""


class SourceError(JourneyError):
    """A source file cannot be read at all (missing, unreadable, wrong columns)."""


class RejectRateError(JourneyError):
    """A source file had more rejected rows than the configured share; the valid rows of
    every file were loaded (in a run, the other sources load and everything downstream is
    rebuilt, then the run fails with ``SourcesFailedError``)."""


class NotFoundError(JourneyError):
    """What was asked for (a customer to erase) is not in the database."""


class DatabaseLockedError(JourneyError):
    """Another process holds the DuckDB file open for writing."""


class SourcesFailedError(JourneyError):
    """Some sources could not be loaded in a run; the others were, and everything downstream
    was rebuilt with them. ``rejects_only``: every failure was the reject-rate guard."""

    def __init__(self, message: str, *, rejects_only: bool = False) -> None:
        super().__init__(message)
        self.rejects_only = rejects_only


class ServerError(JourneyError):
    """The Prefect server that ``journey serve`` registers with does not answer."""


def format_problems(title: str, problems: list[str]) -> str:
    """Joins collected validation problems into one readable message.

    Example:
        >>> print(format_problems("journey.toml is not valid", ["a: expected int, found 'x'"]))
        journey.toml is not valid:
          - a: expected int, found 'x'
    """
    lines = [f"{title}:"] + [f"  - {problem}" for problem in problems]
    return "\n".join(lines)


class ComputeError(JourneyError):
    """DuckDB refused a query over a source file (the caller has a slower way that does not)."""


class BrowserNotFoundError(JourneyError):
    """No Chrome or Chromium to render static images with (``apt-get install chromium``)."""


class FigureExportError(JourneyError):
    """The browser could not start, or could not render some figures (each one is named)."""
