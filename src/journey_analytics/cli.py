"""The ``journey`` command line."""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from journey_analytics.errors import (
    DatabaseLockedError,
    JourneyError,
    NotFoundError,
    RejectRateError,
    ServerError,
    SourcesFailedError,
)

app = typer.Typer(
    help="Reconstruct cross-channel customer journeys from clickstream, CRM and POS data.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True, soft_wrap=True)
ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="TOML config file (paths in it are relative to it).")
]

# Prefect runs offline: no telemetry, and patience for its temporary server on small machines.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def _fail(error: JourneyError) -> typer.Exit:
    # Drop the frames' locals (open DuckDB handles among them) so the interpreter can free
    # them before it exits; otherwise DuckDB's bindings print leak warnings at shutdown.
    traceback.clear_frames(error.__traceback__)
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    codes = {DatabaseLockedError: 3, RejectRateError: 4, NotFoundError: 5, ServerError: 6}
    if isinstance(error, SourcesFailedError):  # too many rejects: 4, as a single source
        return typer.Exit(code=4 if error.rejects_only else 2)
    return typer.Exit(code=codes.get(type(error), 2))


class _StepProgress:
    """The run's steps as they go: a progress bar on a terminal, one line per finished step
    (with its seconds) in a log or a scheduler's output."""

    def __init__(self, steps: dict[str, str]) -> None:
        self._steps = steps
        self._live = console.is_terminal
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self._live,
        )
        self._bar = self._progress.add_task("starting", total=len(steps))
        self._started: dict[str, float] = {}

    def __enter__(self) -> _StepProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step(self, name: str, event: str) -> None:
        """A listener of ``pipelines.journey_flow.listen``."""
        words = self._steps.get(name, name)
        now = time.perf_counter()
        if event == "running":
            self._started[name] = now
            self._progress.update(self._bar, description=words)
            return
        seconds = now - self._started.get(name, now)
        if event == "completed":
            self._progress.advance(self._bar)
        mark = "done" if event == "completed" else event
        console.print(f"{name:<18} {mark:<7} {seconds:6.1f} s  {words}", highlight=False)


@app.command()
def run(
    config: ConfigOption = Path("journey.toml"),
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for another run on the same database.")
    ] = 0.0,
    full: Annotated[
        bool,
        typer.Option(
            "--full/--incremental",
            help="Make every event and every customer's journeys again, not only what the "
            "files loaded since the last run changed.",
        ),
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            help="local (this process) or dask (one task per customer shard on a Dask "
            "cluster); default: \\[scale] executor of the config."
        ),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786; default: "
            "\\[scale] dask_address, else a local cluster with a worker per core.",
        ),
    ] = None,
) -> None:
    """Run the whole pipeline: ingest new files, stitch, journeys (of the customers whose
    events changed), marts, dashboard.

    Example: journey run --config journey.toml
    """
    from journey_analytics.config import load_settings  # noqa: PLC0415

    try:  # fail fast on a bad config, before Prefect starts
        settings = load_settings(config)
        settings.hash_key()
        chosen = executor or settings.scale.executor
        if chosen not in {"local", "dask"}:
            msg = f"--executor: expected local or dask, found {chosen!r}"
            raise JourneyError(msg)
    except JourneyError as error:
        raise _fail(error) from None
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from pipelines.journey_flow import (  # noqa: PLC0415 (after the environment)
        DASK_STEPS,
        STEPS,
        api_for_workers,
        check_server,
        journey_run,
        listen,
    )
    from prefect.settings import get_current_settings  # noqa: PLC0415 (after the environment)

    # PREFECT_API_URL (read now: Prefect reads its settings once, on import), or a profile's
    api_url = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    if api_url:  # a server that does not answer: say so, not a traceback after a long wait
        try:
            check_server(api_url)
        except JourneyError as error:
            raise _fail(error) from None
    # a task per source, then the other steps
    steps = {f"ingest-{source}": f"loading source {source}" for source in settings.sources}
    steps |= {name: words for name, words in STEPS.items() if name != "ingest-sources"}
    workers_api: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if chosen == "dask":  # build-journeys is three steps, one of them a task per shard
        steps = {k: v for k, v in steps.items() if k != "build-journeys"} | DASK_STEPS
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        workers_api = api_for_workers(
            remote=bool(dask_address or settings.scale.dask_address),
            timeout_seconds=int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]),
        )
    started = datetime.now(UTC)
    try:
        with workers_api, _StepProgress(steps) as progress:
            stop = listen(progress.step)
            try:
                summary = journey_run(
                    str(config),
                    wait_seconds=wait,
                    full_rebuild=full,
                    executor=chosen,
                    dask_address=dask_address,
                )
            finally:
                stop()
    except JourneyError as error:
        raise _fail(error) from None
    table = Table(title="Sources")
    for column in ("source", "file", "status", "read", "loaded", "duplicates", "rejected"):
        table.add_column(
            column,
            justify="left" if column in {"source", "file", "status"} else "right",
            overflow="fold",
        )
    for batch in summary.batches:
        table.add_row(
            batch.source,
            batch.file,
            batch.status,
            str(batch.rows_read),
            str(batch.rows_loaded),
            str(batch.rows_duplicate),
            str(batch.rows_rejected),
        )
    console.print(table)
    core, journeys = summary.core, summary.journeys
    console.print(
        f"{core.events} events, {core.customers} customers, {journeys.sessions} sessions, "
        f"{journeys.journeys} journeys ({journeys.conversions} converted, "
        f"{journeys.dropped} dropped, {journeys.open} open)"
    )
    console.print(
        f"core: {core.mode} build, {core.events_written} events made, "
        f"{core.events_rekeyed} stored events given another customer"
    )
    console.print(
        f"identity: {core.stitch_mode} stitch, {core.identifiers_decided} of "
        f"{core.identifiers} identifiers decided, {core.links_dropped} links dropped by the "
        f"guards, {core.identity_changes} customers merged, split or renamed"
    )
    for reason, count in core.pending.items():
        console.print(f"[yellow]waiting:[/] {count} loaded rows make no event yet: {reason}")
    console.print(
        f"journeys: {journeys.mode} build, {journeys.customers_rebuilt} of "
        f"{journeys.customers} customers with events rebuilt"
    )
    console.print("patterns: " + ", ".join(f"{k} {v}" for k, v in journeys.patterns.items()))
    from journey_analytics import explore  # noqa: PLC0415

    profiles = explore.persona_profiles(summary.database)
    console.print(f"personas: {profiles.height} (" + ", ".join(profiles.get_column("name")) + ")")
    sizes = explore.audience_sizes(summary.database)
    latest = sizes.filter(sizes["run_at"] == sizes["run_at"].max())
    console.print(
        "audiences: "
        + ", ".join(
            f"{row['audience']} {row['members']} (+{row['entered']}, -{row['exited']})"
            for row in latest.iter_rows(named=True)
        )
        + f"; exported to {settings.reports_path / 'audiences'}"
    )
    from journey_analytics.jobs import read_restatements  # noqa: PLC0415

    restated = read_restatements(settings, since=started)
    if restated.is_empty():
        console.print("restated: no figure of a period already settled changed")
    for period, figure, before, after in restated.select(
        "period", "figure", "before", "after"
    ).iter_rows():
        console.print(
            f"[yellow]restated:[/] {period} {figure} {before:,.2f} -> {after:,.2f} (late data)"
        )
    console.print(f"database:  {summary.database}")
    console.print(f"dashboard: {summary.dashboard}")


@app.command()
def sample(  # noqa: PLR0917 - typer passes options positionally
    out: Annotated[Path, typer.Option(help="Folder to write the sample into.")] = Path(
        "data/sample"
    ),
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Simulator config (TOML); default: the shipped one."),
    ] = None,
    noise: Annotated[
        bool, typer.Option("--noise/--no-noise", help="Duplicates, late and malformed rows...")
    ] = True,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes to generate in; the files are the same for any."),
    ] = 1,
) -> None:
    """Simulate a retailer's sources (web, app, CRM, POS) with their ground truth.

    Example: journey sample --customers 500 --seed 42 --out data/sample
    """
    from journey_analytics.sample import generate_sample, load_simulator_config  # noqa: PLC0415

    try:
        settings = load_simulator_config(config)
    except JourneyError as error:
        raise _fail(error) from None
    summary = generate_sample(
        out,
        customers=customers,
        seed=seed,
        config=settings if noise else settings.without_noise(),
        workers=workers,
    )
    console.print(
        f"{summary.customers} customers, {summary.journeys} journeys, {summary.events} events, "
        f"{summary.conversions} conversions written to {out}"
    )


@app.command()
def dashboard(
    config: ConfigOption = Path("journey.toml"),
    images: Annotated[
        bool,
        typer.Option(
            "--images/--no-images",
            help="Also write each chart as PNG and PDF to <reports_dir>/figures/ (needs "
            "Chrome or Chromium).",
        ),
    ] = False,
) -> None:
    """Rebuild the dashboard HTML from the marts of the last run, and with --images its
    charts as PNG and PDF files for slides.

    Example: journey dashboard --config journey.toml --images
    """
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
        path = jobs.export_dashboard(settings)
        console.print(f"dashboard: {path}")
        if images:
            from journey_analytics import dashboards, figure_export  # noqa: PLC0415

            # the figures of the page just written (export_dashboard keeps the default
            # min_group_size of render_dashboard, so build_figures keeps its default too)
            figures = dashboards.build_figures(jobs.read_dashboard_data(settings))
            folder = settings.reports_path / "figures"
            written = figure_export.export_figures(figures, folder)
            console.print(f"figures:   {folder} ({len(written)} files)", soft_wrap=True)
    except JourneyError as error:
        raise _fail(error) from None


@app.command()
def forget(  # noqa: PLR0917 - typer passes options positionally
    email: Annotated[str | None, typer.Option(help="The person's e-mail address.")] = None,
    phone: Annotated[str | None, typer.Option(help="The person's phone number.")] = None,
    loyalty_id: Annotated[
        str | None, typer.Option("--loyalty-id", help="The person's loyalty card.")
    ] = None,
    customer_key: Annotated[
        str | None, typer.Option("--customer-key", help="The person's customer_key.")
    ] = None,
    config: ConfigOption = Path("journey.toml"),
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for a run on the same database.")
    ] = 0.0,
) -> None:
    """Erase one person (right to erasure): their events and identifiers leave every table,
    the journeys and marts are rebuilt, and ops.erasures records it without the identifier.
    Exit code 5 when no customer has the identifier.

    Example: journey forget --email ada@example.com --config journey.toml
    """
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415
    from journey_analytics.locking import run_lock  # noqa: PLC0415

    given = {
        by: value
        for by, value in {
            "email": email,
            "phone": phone,
            "loyalty_id": loyalty_id,
            "customer_key": customer_key,
        }.items()
        if value is not None
    }
    try:
        if len(given) != 1:
            msg = (
                "forget: expected exactly one of --email, --phone, --loyalty-id, "
                f"--customer-key, found {len(given)}"
            )
            raise JourneyError(msg)
        settings = load_settings(config)
        ((by, value),) = given.items()
        with run_lock(settings.database_path, wait_seconds=wait):
            report = jobs.forget(settings, by=by, value=value)
            path = jobs.export_dashboard(settings)
    except JourneyError as error:
        raise _fail(error) from None
    tables = ", ".join(f"{table} {count}" for table, count in report.rows_deleted.items())
    console.print(
        f"erased one customer: {report.identifiers} identifiers, {report.events} events; "
        f"rows removed: {tables}\njourneys and marts rebuilt; dashboard: {path}"
    )


@app.command()
def serve(  # noqa: PLR0917 - typer passes options positionally
    config: ConfigOption = Path("journey.toml"),
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="PREFECT_API_URL",
            help="The Prefect server's API (prefect server start --host 127.0.0.1 serves "
            "http://127.0.0.1:4200/api).",
        ),
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="Cron schedule; default: \\[schedule] cron of the config.")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="IANA zone the cron is read in; default: \\[schedule] timezone."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Deployment name; default: \\[schedule] name.")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds a scheduled run waits for a notebook or a run that holds the database.",
        ),
    ] = 600.0,
) -> None:
    """Run the pipeline on a schedule: register it with a Prefect server as deployment
    journey-run/<name> on the config's \\[schedule] cron in its time zone, then carry out its
    scheduled runs, and runs started from the Prefect UI, until Ctrl-C (which pauses the
    schedule). Exit code 6 when no server answers.

    Example: journey serve --api-url http://127.0.0.1:4200/api --config journey.toml
    (with `prefect server start --host 127.0.0.1` running)
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from journey_analytics.config import ScheduleSettings, load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
        settings.hash_key()
        chosen = settings.schedule.model_dump()
        given = {"cron": cron, "timezone": timezone, "name": name}
        chosen.update({key: value for key, value in given.items() if value is not None})
        try:
            schedule = ScheduleSettings.model_validate(chosen)
        except ValidationError as error:  # only --timezone can be wrong here (cron: below)
            reason = error.errors()[0]["msg"].removeprefix("Value error, ")
            msg = f"serve --{reason}"
            raise JourneyError(msg) from None
        if not api_url:
            msg = (
                "journey serve needs a Prefect server: start one with `prefect server start "
                "--host 127.0.0.1`, then pass --api-url http://127.0.0.1:4200/api (or set "
                "PREFECT_API_URL)."
            )
            raise ServerError(msg)
        for variable, value in {**PREFECT_DEFAULTS, "PREFECT_LOGGING_LEVEL": "INFO"}.items():
            os.environ.setdefault(variable, value)
        from pipelines.journey_flow import (  # noqa: PLC0415 (after the environment)
            check_server,
            cron_schedule,
            serve_schedule,
        )

        origin = "--cron" if cron is not None else f"{config}: schedule.cron"
        on = cron_schedule(schedule.cron, schedule.timezone, origin=origin)
        check_server(api_url)
        os.environ["PREFECT_API_URL"] = api_url  # for Prefect, once it is known to answer
        console.print(
            f"serving journey-run/{schedule.name}: {config} on cron {schedule.cron!r} in "
            f"{schedule.timezone}, at {api_url} (Ctrl-C stops and pauses the schedule)",
            highlight=False,
            soft_wrap=True,
        )
        serve_schedule(str(config.resolve()), name=schedule.name, schedule=on, wait_seconds=wait)
    except JourneyError as error:
        raise _fail(error) from None


@app.command("as-of")
def as_of(
    when: Annotated[
        str,
        typer.Argument(
            help="A day (2026-05-01: the end of that day in \\[schedule] timezone) or a moment "
            "with its offset (2026-05-01T06:30+02:00)."
        ),
    ],
    config: ConfigOption = Path("journey.toml"),
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the copy; default: <reports_dir>/as-of-<when>."),
    ] = None,
) -> None:
    """Rebuild the tables and the dashboard as they were once the files loaded until WHEN were
    in (a database and dashboard of their own; the run's database is only read). Exit code 5
    when nothing had been loaded by then.

    Example: journey as-of 2026-05-01 --config journey.toml
    """
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
        try:
            moment = datetime.fromisoformat(when)
        except ValueError:
            msg = (
                "as-of: expected a day (2026-05-01) or a moment (2026-05-01T06:30+02:00), "
                f"found {when!r}"
            )
            raise JourneyError(msg) from None
        if len(when) == 10:  # a day: up to its end where the analyst is
            moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(settings.schedule.timezone))
        folder = out or settings.reports_path / f"as-of-{when.replace(':', '')}"
        rebuilt = jobs.rebuild_as_of(settings, loaded_by=moment, folder=folder)
    except JourneyError as error:
        raise _fail(error) from None
    console.print(f"as of {moment:%Y-%m-%d %H:%M %Z}: database {rebuilt.database_path}")
    console.print(f"dashboard: {rebuilt.reports_path / 'dashboard.html'}")


@app.command()
def status(
    config: ConfigOption = Path("journey.toml"),
    last: Annotated[int, typer.Option(min=1, help="How many recent batches to list.")] = 20,
) -> None:
    """What each source and each loaded file gave: rows read, loaded, duplicates, rejected,
    and the most frequent reasons for rejects.

    Example: journey status --config journey.toml --last 5
    """
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    try:
        database = load_settings(config).database_path
        if not database.exists():
            msg = f"No database at {database} yet: run `journey run` first."
            raise JourneyError(msg)
        report = jobs.load_status(database, last=last)
    except JourneyError as error:
        raise _fail(error) from None
    for title, frame in (
        ("Sources", report.sources),
        (f"Last {last} batches", report.batches),
        ("Reject reasons", report.reasons),
    ):
        table = Table(title=title)
        for column, dtype in frame.schema.items():
            table.add_column(
                column, justify="right" if dtype.is_numeric() else "left", overflow="fold"
            )
        for row in frame.iter_rows():
            table.add_row(*(_cell(value) for value in row))
        console.print(table)


@app.command()
def personas(
    config: ConfigOption = Path("journey.toml"),
    k: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=20,
            help="Cluster again into this many personas, until the next run (which follows "
            "\\[personas] k of the config: set it there to keep a number); default: show the "
            "personas the last run made.",
        ),
    ] = None,
) -> None:
    """The buyer personas: customers clustered by behaviour, with a name and a description
    made from their numbers, size, conversion, revenue and typical path.

    Example: journey personas --k 5
    """
    from journey_analytics import explore, jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
        if k is not None:
            options = settings.personas.model_copy(update={"k": k})
            jobs.build_personas(settings.model_copy(update={"personas": options}))
        described = explore.persona_profiles(settings.database_path)
    except JourneyError as error:
        raise _fail(error) from None
    table = Table(title=f"{described.height} personas")
    for column in ("persona", "name", "customers", "share", "conversion", "basket", "path"):
        table.add_column(column, justify="left" if column in {"name", "path"} else "right",
                         overflow="fold")  # fmt: skip
    for row in described.iter_rows(named=True):
        table.add_row(
            str(row["persona"]),
            row["name"],
            f"{row['customers']:,}",
            f"{row['share_of_customers']:.0%}",
            f"{row['conversion_rate']:.0%}",
            f"{row['basket_value']:,.2f}",
            row["typical_path"] or "",
        )
    console.print(table)
    for row in described.iter_rows(named=True):
        console.print(f"[bold]{row['persona']} {row['name']}[/]: {row['description']}")


@app.command()
def audiences(
    config: ConfigOption = Path("journey.toml"),
    history: Annotated[
        int, typer.Option(min=1, help="How many runs of each audience's size to show.")
    ] = 1,
) -> None:
    """The audiences of the last runs: size, and how many customers entered and left (counted,
    not named), with where the exports are. The rules: `audiences` in the config.

    Example: journey audiences --history 7
    """
    from journey_analytics import explore  # noqa: PLC0415
    from journey_analytics.audiences import load_audiences  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
        rules = load_audiences(settings.resolve(settings.audiences) if settings.audiences else None)
        sizes = explore.audience_sizes(settings.database_path)
    except JourneyError as error:
        raise _fail(error) from None
    runs = sizes.get_column("run_at").unique().sort(descending=True).head(history)
    table = Table(title=f"Audiences, last {runs.len()} run(s)")
    for column in ("run", "as of", "audience", "members", "entered", "exited"):
        table.add_column(
            column, justify="right" if column in {"members", "entered", "exited"} else "left"
        )
    for row in sizes.filter(sizes["run_at"].is_in(runs.implode())).iter_rows(named=True):
        table.add_row(
            _cell(row["run_at"]),
            _cell(row["as_of"]) if row["as_of"] else "",
            row["audience"],
            _cell(row["members"]),
            _cell(row["entered"]),
            _cell(row["exited"]),
        )
    console.print(table)
    for audience in rules.audience:
        console.print(f"[bold]{audience.name}[/]: {escape(audience.description)}")
    console.print(f"exports: {settings.reports_path / 'audiences'}/<name>.csv and .parquet")


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@app.command()
def evaluate(
    truth: Annotated[Path, typer.Option(help="The simulator's truth/ folder.")] = Path(
        "data/sample/truth"
    ),
    config: ConfigOption = Path("journey.toml"),
    db: Annotated[
        Path | None, typer.Option(help="Database to score (default: the config's).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the scores as JSON.")] = Path(
        "reports/evaluation.json"
    ),
) -> None:
    """Score a finished run against the simulator's ground truth.

    Example: journey sample --out /tmp/s && journey run && journey evaluate --truth /tmp/s/truth
    """
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import load_settings  # noqa: PLC0415
    from journey_analytics.evaluate import score_rows  # noqa: PLC0415

    try:
        database = db or load_settings(config).database_path
        scores = jobs.evaluate_run(database, truth, out)
    except JourneyError as error:
        raise _fail(error) from None
    table = Table(title=f"{database} against {truth}")
    for column in ("area", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in score_rows(scores):
        table.add_row(*row)
    console.print(table)
    console.print(f"scores: {out}")


if __name__ == "__main__":
    app()
