"""The main flow: source files to DuckDB tables, marts and the dashboard.

Each task calls one function of ``journey_analytics.jobs``; retries and ordering live here,
logic does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from journey_analytics import jobs
from journey_analytics.config import Settings, load_settings
from journey_analytics.errors import JourneyError
from journey_analytics.locking import run_lock


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the command line's closing summary."""

    database: Path
    batches: list[jobs.BatchReport]
    core: jobs.CoreReport
    journeys: jobs.JourneyReport
    marts: dict[str, int]
    dashboard: Path


# The flow's steps in order, by task name, with what each does in words.
STEPS = {
    "ingest-sources": "loading source files",
    "stitch-identities": "stitching identities",
    "build-journeys": "building sessions and journeys",
    "build-marts": "building marts and graphs",
    "export-dashboard": "writing the dashboard",
}
StepListener = Callable[[str, str], None]  # (task name, "running" | "completed" | "failed")
_listeners: list[StepListener] = []


def listen(listener: StepListener) -> Callable[[], None]:
    """Calls ``listener`` as each step of a run in this process starts and ends (for a
    progress display); returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


_Hook = Callable[[Task[..., Any], TaskRun, State[Any]], Awaitable[None] | None]


def _hook(event: str) -> list[_Hook]:
    """A new list per task (Prefect keeps the list it is given and may add to it)."""

    def tell(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> None:
        for listener in list(_listeners):
            try:
                listener(task.name, event)
            except Exception:  # a progress display never fails a run
                continue

    return [tell]


def retry_io_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what may pass (I/O), not a bad config or file: a retry cannot fix those."""
    try:
        state.result()
    except JourneyError:
        return False
    except Exception:
        return True
    return True


@task(
    name="ingest-sources",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_io_only,
    cache_policy=NO_CACHE,
    on_running=_hook("running"),
    on_completion=_hook("completed"),
    on_failure=_hook("failed"),
)
def ingest_sources(settings: Settings) -> list[jobs.BatchReport]:
    return jobs.ingest_sources(settings)


@task(
    name="stitch-identities",
    cache_policy=NO_CACHE,
    on_running=_hook("running"),
    on_completion=_hook("completed"),
    on_failure=_hook("failed"),
)
def build_core(settings: Settings) -> jobs.CoreReport:
    return jobs.build_core(settings)


@task(
    name="build-journeys",
    cache_policy=NO_CACHE,
    on_running=_hook("running"),
    on_completion=_hook("completed"),
    on_failure=_hook("failed"),
)
def build_journeys(settings: Settings) -> jobs.JourneyReport:
    return jobs.build_journeys(settings)


@task(
    name="build-marts",
    cache_policy=NO_CACHE,
    on_running=_hook("running"),
    on_completion=_hook("completed"),
    on_failure=_hook("failed"),
)
def build_marts(settings: Settings) -> dict[str, int]:
    return jobs.build_marts(settings)


@task(
    name="export-dashboard",
    retries=1,
    retry_condition_fn=retry_io_only,
    cache_policy=NO_CACHE,
    on_running=_hook("running"),
    on_completion=_hook("completed"),
    on_failure=_hook("failed"),
)
def export_dashboard(settings: Settings) -> Path:
    return jobs.export_dashboard(settings)


@flow(name="journey-run", log_prints=True)
def journey_run(config_path: str = "journey.toml", wait_seconds: float = 0.0) -> RunSummary:
    """Runs the whole pipeline for the sources named in ``config_path``, holding the run lock
    of its database (a second run waits up to ``wait_seconds``, then stops with a message)."""
    settings = load_settings(config_path)
    with run_lock(settings.database_path, wait_seconds=wait_seconds):
        batches = ingest_sources(settings)
        core = build_core(settings)
        journeys = build_journeys(settings)
        marts = build_marts(settings)
        dashboard = export_dashboard(settings)
    return RunSummary(settings.database_path, batches, core, journeys, marts, dashboard)
