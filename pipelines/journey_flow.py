"""The main flow: source files to DuckDB tables, marts and the dashboard.

Each task calls one function of ``journey_analytics.jobs``; retries and ordering live here,
logic does not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, flow, get_client, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.schedules import Cron, Schedule
from prefect.tasks import exponential_backoff
from prefect.types.entrypoint import EntrypointType

from journey_analytics import jobs
from journey_analytics.config import Settings, load_settings
from journey_analytics.errors import (
    ConfigError,
    JourneyError,
    ServerError,
    SourcesFailedError,
    format_problems,
)
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
    "ingest-sources": "loading source files",  # a task per source: ingest-<source>
    "stitch-identities": "stitching identities",
    "build-journeys": "building sessions and journeys",
    "build-marts": "building marts, graphs, personas and audiences",
    "export-dashboard": "writing the dashboard",
}
# with --executor dask, build-journeys is these (the middle one: a task per customer shard)
DASK_STEPS = {
    "plan-journeys": "splitting the customers into shards",
    "build-journey-shards": "building the shards' sessions and journeys on the workers",
    "load-journeys": "loading the shards' journeys",
}
StepListener = Callable[[str, str], None]  # (task name, "running" | "completed" | "failed")
_listeners: list[StepListener] = []


def listen(listener: StepListener) -> Callable[[], None]:
    """Calls ``listener`` as each step of a run in this process starts and ends (for a
    progress display); returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


P = ParamSpec("P")
R = TypeVar("R")
_Hook = Callable[[Task[..., Any], TaskRun, State[Any]], Awaitable[None] | None]


def _notify(name: str, event: str) -> None:
    for listener in list(_listeners):
        try:
            listener(name, event)
        except Exception:  # a progress display never fails a run
            continue


def _hook(event: str) -> list[_Hook]:
    """A new list per task (Prefect keeps the list it is given and may add to it). The hook
    reaches the listeners through ``_notify``, a module function: a task shipped to a Dask
    worker pickles its hooks, which must not carry this process's listeners along."""

    def tell(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> None:
        _notify(task.name, event)

    return [tell]


def _step(name: str, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A Prefect task of the flow: never cached (each run reads the files and the database
    as they are now), and reported to the step listeners as it starts and ends."""
    return task(
        name=name,
        cache_policy=NO_CACHE,
        on_running=_hook("running"),
        on_completion=_hook("completed"),
        on_failure=_hook("failed"),
        **options,
    )


def retry_io_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what may pass (I/O), not a bad config or file: a retry cannot fix those."""
    try:
        state.result()
    except JourneyError:
        return False
    except Exception:
        return True
    return True


@_step(
    "ingest-sources",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),  # 5 s, 10 s, 20 s
    retry_condition_fn=retry_io_only,
)
def ingest_source(settings: Settings, source: str) -> list[jobs.BatchReport]:
    return jobs.ingest_sources(settings, sources=(source,))


def ingest_each_source(settings: Settings) -> tuple[list[jobs.BatchReport], dict[str, str]]:
    """One task per source, named ``ingest-<source>``: a source that fails (a missing file, too
    many rejects, a disk error after its retries) fails its own task and the others still
    load. Returns the files loaded and, per failed source, why."""
    batches: list[jobs.BatchReport] = []
    failed: dict[str, str] = {}
    for source in settings.sources:
        state = ingest_source.with_options(name=f"ingest-{source}")(
            settings, source, return_state=True
        )
        if state.is_completed():
            batches += state.result()
        else:
            error = state.result(raise_on_failure=False)
            failed[source] = str(error) if isinstance(error, BaseException) else str(state.message)
    return batches, failed


@_step("stitch-identities")
def build_core(settings: Settings, full: bool) -> jobs.CoreReport:
    return jobs.build_core(settings, full=full)


@_step("build-journeys")
def build_journeys(settings: Settings, full: bool) -> jobs.JourneyReport:
    return jobs.build_journeys(settings, full=full)


@_step("plan-journeys")
def plan_journeys(settings: Settings, full: bool) -> jobs.JourneyPlan:
    return jobs.plan_journeys(settings, full=full)


@_step(
    "build-journey-shard",
    retries=1,  # a worker lost with its machine: the shard is built again elsewhere
    retry_condition_fn=retry_io_only,
)
def build_journey_shard(settings: Settings, shard: Path) -> Path:
    return jobs.build_journey_shard(settings, shard)


@_step("load-journeys")
def load_journeys(settings: Settings, plan: jobs.JourneyPlan) -> jobs.JourneyReport:
    return jobs.load_journey_shards(settings, plan)


def build_journeys_on_workers(
    settings: Settings, full: bool, dask_address: str | None = None
) -> jobs.JourneyReport:
    """Sessions and journeys per customer shard, each shard a task on a Dask cluster: the
    one at ``dask_address`` (or ``[scale] dask_address``), else a local cluster with one
    single-threaded worker per core for this step's length. The database is read and written
    only here. The shards' files are removed whatever happens (they hold events, identifiers
    among them)."""
    plan = plan_journeys(settings, full)
    try:
        # the shards' own hooks run on the workers: report them from here, as one step
        _notify("build-journey-shards", "running")
        with dask_runner(dask_address or settings.scale.dask_address) as runner:
            built = runner.map(
                build_journey_shard,
                {"settings": unmapped(settings), "shard": list(plan.shards)},
            )
            built.wait()
            failed = [
                (shard, future.state)
                for shard, future in zip(plan.shards, built, strict=True)
                if not future.state.is_completed()
            ]
        _notify("build-journey-shards", "failed" if failed else "completed")
        if failed:
            shard, state = failed[0]
            msg = (
                f"{len(failed)} of {len(plan.shards)} journey shards failed, the first "
                f"{shard.name}: {state.message}; nothing was loaded"
            )
            raise JourneyError(msg)
        return load_journeys(settings, plan)
    finally:
        shutil.rmtree(plan.folder, ignore_errors=True)


@_step("build-marts")
def build_marts(settings: Settings) -> dict[str, int]:
    return jobs.build_marts(settings)


@_step(
    "export-dashboard",
    retries=1,
    retry_condition_fn=retry_io_only,
)
def export_dashboard(settings: Settings) -> Path:
    return jobs.export_dashboard(settings)


@flow(name="journey-run", log_prints=True)
def journey_run(
    config_path: str = "journey.toml",
    wait_seconds: float = 0.0,
    full_rebuild: bool = False,
    executor: str | None = None,
    dask_address: str | None = None,
) -> RunSummary:
    """Runs the whole pipeline for the sources named in ``config_path``, holding the run lock
    of its database (a second run waits up to ``wait_seconds``, then stops with a message).
    Core events are made only of the files loaded since the last run, and journeys rebuilt
    only for the customers whose events changed, unless ``full_rebuild``; per customer
    shard on a Dask cluster with ``executor="dask"`` (default: ``[scale] executor`` and
    ``dask_address`` of the config; see :func:`dask_runner`)."""
    settings = load_settings(config_path)
    with run_lock(settings.database_path, wait_seconds=wait_seconds):
        batches, failed = ingest_each_source(settings)
        core = build_core(settings, full_rebuild)
        if (executor or settings.scale.executor) == "dask":
            journeys = build_journeys_on_workers(settings, full_rebuild, dask_address)
        else:
            journeys = build_journeys(settings, full_rebuild)
        marts = build_marts(settings)
        dashboard = export_dashboard(settings)
    # for the run's log on the server (log_prints): a scheduled run has no terminal
    print(
        f"{sum(b.rows_loaded for b in batches)} rows loaded from {len(batches)} files "
        f"({sum(b.rows_rejected for b in batches)} rejected); {core.events} events, "
        f"{journeys.journeys} journeys ({journeys.conversions} converted); "
        f"database {settings.database_path}; dashboard {dashboard}"
    )
    if failed:  # the others are loaded and everything downstream is built with them
        raise SourcesFailedError(
            format_problems(
                f"{len(failed)} of {len(settings.sources)} sources failed; the others are "
                "loaded and the journeys, marts and dashboard rebuilt with them",
                [f"{source}: {why}" for source, why in failed.items()],
            ),
            rejects_only=all("ingest.max_reject_rate" in why for why in failed.values()),
        )
    return RunSummary(settings.database_path, batches, core, journeys, marts, dashboard)


def check_server(api_url: str, *, timeout_seconds: float = 10.0) -> None:
    """Raises ``ServerError`` unless the Prefect server at ``api_url`` answers its health check."""
    url = api_url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            status = response.status
    except (OSError, ValueError) as error:  # refused, timed out, or not a URL at all
        reason = getattr(error, "reason", error)
        msg = (
            f"No Prefect server answers at {api_url} ({reason}). Start one with "
            "`prefect server start --host 127.0.0.1` and set PREFECT_API_URL to its API "
            "address, for example http://127.0.0.1:4200/api (journey serve: or --api-url)."
        )
        raise ServerError(msg) from None
    if status != 200:
        msg = f"The Prefect server at {api_url} answered its health check with HTTP {status}."
        raise ServerError(msg)


def cron_schedule(cron: str, timezone: str, *, origin: str) -> Schedule:
    """Prefect's schedule for ``cron`` read in ``timezone``.

    Raises:
        ConfigError: Prefect cannot read ``cron``; the message starts with ``origin`` (where
            the cron came from: a config key or an option).
    """
    try:
        return Cron(cron, timezone=timezone)
    except ValueError:
        msg = (
            f"{origin}: expected five cron fields (minute hour day month weekday) such as "
            f"'0 6 * * *', found {cron!r}"
        )
        raise ConfigError(msg) from None


def serve_schedule(config_path: str, *, name: str, schedule: Schedule, wait_seconds: float) -> None:
    """Registers ``journey_run`` with the Prefect server of ``PREFECT_API_URL`` as deployment
    ``journey-run/<name>`` on ``schedule``, then carries out its scheduled runs (and those
    started from the UI or ``prefect deployment run``), each in a child process, until
    stopped; stopping pauses the schedule, so no runs pile up while nobody serves them.
    """
    try:
        journey_run.serve(
            name=name,
            schedules=[schedule],
            parameters={"config_path": config_path, "wait_seconds": wait_seconds},
            description=f"journey run --config {config_path}",
            # the flow by its module (the installed package), so runs start from any folder
            entrypoint_type=EntrypointType.MODULE_PATH,
            pause_on_shutdown=True,
            print_starting_message=False,
        )
    finally:
        # Prefect 3.8 pauses on Ctrl-C, but on SIGTERM only when its exit happens to pass
        # through the runner's cleanup: pause here too (pausing twice is harmless), unless
        # the server is gone or the deployment was never registered
        with contextlib.suppress(Exception), get_client(sync_client=True) as client:
            client.pause_deployment(client.read_deployment_by_name(f"journey-run/{name}").id)


@contextlib.contextmanager
def api_for_workers(*, remote: bool = False, timeout_seconds: int = 180) -> Iterator[None]:
    """Dask workers report their tasks to the flow's Prefect API. With no server configured
    (``PREFECT_API_URL``), this starts Prefect's temporary server now, before the cluster's
    workers start, and hands them its address through the environment; otherwise each worker
    would start a temporary server of its own (~15 s each). Workers on other machines need a
    real server: set ``PREFECT_API_URL`` for the run and the workers."""
    from prefect.settings import get_current_settings  # noqa: PLC0415

    if get_current_settings().api.url:  # from the environment or a Prefect profile
        yield
        return
    if remote:
        msg = (
            "--dask-address: workers on a cluster report their tasks to a Prefect server they "
            "can reach; set PREFECT_API_URL to one (prefect server start --host 0.0.0.0)"
        )
        raise ConfigError(msg)
    from prefect.server.api.server import SubprocessASGIServer  # noqa: PLC0415

    server = SubprocessASGIServer()
    server.start(timeout=timeout_seconds)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        del os.environ["PREFECT_API_URL"]


def dask_runner(dask_address: str | None) -> Any:
    """prefect-dask's task runner for the shards: the cluster at ``dask_address``, or a local
    cluster with one single-threaded worker per core (its status page on a free port of this
    machine only)."""
    from prefect_dask.task_runners import DaskTaskRunner  # noqa: PLC0415 (for this executor)

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": os.cpu_count() or 1,
            "threads_per_worker": 1,
            "dashboard_address": "127.0.0.1:0",
        }
    )
