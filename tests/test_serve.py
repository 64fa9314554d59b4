"""Scheduled runs against a real Prefect server (``prefect server start`` on 127.0.0.1).

One server for the module, in a temporary ``PREFECT_HOME``, stopped at the end. ``journey
serve`` registers the flow with the config's cron schedule and carries out a run triggered
through the server; ``prefect.yaml`` is deployed as it is committed and run by a process
worker. Both runs must end ``Completed`` on the server, with every step recorded, and leave
the sample's numbers in the database they write (a temporary folder).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from datetime import time as clock
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import yaml  # Prefect's own dependency, which reads prefect.yaml
from pipelines.journey_flow import STEPS
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType

from journey_analytics.warehouse import Warehouse

from ._project import REPO, sample_config

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path, api_url: str | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PREFECT_") and name != "JOURNEY_DATABASE"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
    )
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return env


def _start(
    command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with all its children
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the process (as ``docker stop`` or ``kill`` sends), SIGKILL after 60 s; then
    SIGKILL to whatever its process group left behind."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # unless the group is gone with it
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def _until(what: str, probe: Callable[[], T | None], log: Path, *, seconds: float) -> T:
    """Polls ``probe`` until it returns something, failing with the service's log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(1)
    pytest.fail(f"no {what} after {seconds:.0f} s; {log.name}:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real Prefect server on 127.0.0.1 (its API address, its folder)."""
    folder = tmp_path_factory.mktemp("prefect-server")
    api_url = f"http://127.0.0.1:{_free_port()}/api"
    port = api_url.split(":")[2].split("/", maxsplit=1)[0]
    log = folder / "server.log"
    process = _start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
        _environment(folder / "home", None),
        log,
        folder,
    )

    def healthy() -> bool | None:
        if process.poll() is not None:
            pytest.fail(f"prefect server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                return True if response.status == 200 else None
        except OSError:
            return None

    try:
        _until("healthy Prefect server", healthy, log, seconds=240)
        yield api_url, folder
    finally:
        _stop(process)


def _finished(client: SyncPrefectClient, run_id: Any) -> Callable[[], FlowRun | None]:
    def probe() -> FlowRun | None:
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return probe


def _assert_recorded(client: SyncPrefectClient, run: FlowRun, database: Path, log: Path) -> None:
    """The server holds the run as Completed with every step Completed and the run's summary
    in its log; the database holds the committed sample's numbers (test_end_to_end)."""
    assert run.state_type == StateType.COMPLETED, run.state
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    steps = [f"ingest-{source}" for source in ("web", "app", "crm", "pos")]
    steps += [name for name in STEPS if name != "ingest-sources"]
    assert {task.name.rsplit("-", 1)[0]: task.state_type for task in tasks} == dict.fromkeys(
        steps, StateType.COMPLETED
    )
    by_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))

    def summary() -> str | None:  # the run's logs reach the server in batches, after its end
        logs = " ".join(entry.message for entry in client.read_logs(log_filter=by_run))
        return logs if "events, " in logs else None

    assert "4759 events, 791 journeys (534 converted)" in _until(
        "summary in the run's log", summary, log, seconds=60
    )
    with Warehouse.open(database, read_only=True) as warehouse:
        assert warehouse.read("core.events").height == 4778 - 19
        assert warehouse.read("journeys.journeys").height == 791


def test_journey_serve_schedules_the_flow_and_runs_it(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    api_url, _ = server
    config = sample_config(REPO / "data" / "sample", tmp_path)
    log = tmp_path / "serve.log"
    serving = _start(
        [str(BIN / "journey"), "serve", "--config", str(config), "--name", "it-daily"],
        _environment(tmp_path / "home", api_url),  # --api-url from PREFECT_API_URL
        log,
        tmp_path,
    )
    try:
        with SyncPrefectClient(api=api_url) as client:

            def registered() -> Any:
                try:
                    return client.read_deployment_by_name("journey-run/it-daily")
                except Exception:  # not there yet
                    return None

            deployment = _until("deployment journey-run/it-daily", registered, log, seconds=180)
            # the schedule of journey.toml's [schedule], read in its zone, and the parameters
            # that make each run `journey run --config <this config>`
            (schedule,) = deployment.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
                "0 6 * * *",
                "Europe/Rome",
                True,
            )
            assert deployment.parameters == {"config_path": str(config), "wait_seconds": 600.0}
            by_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))

            def scheduled() -> list[FlowRun] | None:
                runs = client.read_flow_runs(deployment_filter=by_deployment)
                return runs or None

            # the server's scheduler books the coming mornings: 06:00 in Rome, whatever the
            # UTC offset of the day (CET or CEST)
            upcoming = _until("scheduled run", scheduled, log, seconds=180)
            assert {
                run.expected_start_time.astimezone(ZoneInfo("Europe/Rome")).time()
                for run in upcoming
                if run.expected_start_time is not None
            } == {clock(6, 0)}

            triggered = client.create_flow_run_from_deployment(deployment.id)
            run = _until("finished run", _finished(client, triggered.id), log, seconds=420)
            _assert_recorded(client, run, tmp_path / "journeys.duckdb", log)

            # stopping the service (SIGTERM, as systemd or a container stop sends) pauses the
            # schedule, so no runs pile up while nobody is there to carry them out
            assert _stop(serving) == 0, log.read_text()[-3000:]
            assert client.read_deployment(deployment.id).paused is True, log.read_text()[-3000:]
    finally:
        _stop(serving)


def test_prefect_yaml_deploys_the_schedule_of_journey_toml() -> None:
    # the two ways to schedule a run agree: prefect.yaml (workers) and journey.toml (serve)
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (daily,) = project["deployments"]
    schedule = tomllib.loads((REPO / "journey.toml").read_text())["schedule"]
    assert (daily["name"], daily["schedules"]) == (
        schedule["name"],
        [{"cron": schedule["cron"], "timezone": schedule["timezone"]}],
    )
    assert daily["parameters"] == {"config_path": "journey.toml", "wait_seconds": 600}


def test_prefect_yaml_runs_on_a_process_worker(server: tuple[str, Path], tmp_path: Path) -> None:
    api_url, _ = server
    env = _environment(tmp_path / "home", api_url)
    config = sample_config(REPO / "data" / "sample", tmp_path)

    log = tmp_path / "prefect.log"

    def prefect(*args: str) -> None:
        done = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=REPO,  # as a user deploys it: from the project folder, prefect.yaml as is
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        with log.open("a") as out:
            out.write(done.stdout + done.stderr)
        assert done.returncode == 0, log.read_text()[-4000:]

    prefect("work-pool", "create", "journey", "--type", "process")
    # the committed deployment, its config pointed at this test's copy (database in tmp_path)
    prefect("--no-prompt", "deploy", "--all", "--param", f"config_path={config}")
    with SyncPrefectClient(api=api_url) as client:
        deployment = client.read_deployment_by_name("journey-run/daily")
        (schedule,) = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 * * *", "Europe/Rome")
        triggered = client.create_flow_run_from_deployment(deployment.id)
        # in a process group of its own, so that a timeout stops the flow run it started too
        worker_log = tmp_path / "worker.log"
        worker = _start(
            [str(BIN / "prefect"), "worker", "start", "--pool", "journey", "--run-once"],
            env,
            worker_log,
            REPO,
        )
        try:
            worker.wait(timeout=420)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not finish:\n{worker_log.read_text()[-4000:]}")
        finally:
            _stop(worker)
        assert worker.returncode == 0, worker_log.read_text()[-4000:]
        run = client.read_flow_run(triggered.id)
        _assert_recorded(client, run, tmp_path / "journeys.duckdb", log)
