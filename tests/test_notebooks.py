"""The analysts' notebooks (``notebooks/*.ipynb``) on a database built from the committed sample.

Each notebook runs as a copy in a temporary folder (the committed files are never written) with
nbclient, its kernel pointed at the database by ``JOURNEY_DATABASE``. Beyond running without an
error, each must print what the notebook API computes on the same database, show no path of
this machine, and the committed notebooks must carry exactly the outputs of such a run
(``make notebooks``), so what GitHub shows is what the sample gives.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import nbformat
import networkx as nx
import polars as pl
import pytest
from nbclient import NotebookClient

import journey_analytics as ja
from journey_analytics import jobs
from journey_analytics.config import OutputSettings, load_settings
from journey_analytics.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = (
    "01_exploring_paths",
    "02_omnichannel_patterns",
    "03_dropoffs_and_leakage",
    "04_audiences",
)
CELL_TIMEOUT_SECONDS = 120
# absolute paths of a machine, in any output (a traceback, a printed file name)
MACHINE_PATH = re.compile(r"(/tmp/|/work/|/home/|/root/|/Users/|[A-Z]:\\)")

Run = Callable[[str], nbformat.NotebookNode]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed sample through the jobs `journey run` calls (without Prefect)."""
    folder = tmp_path_factory.mktemp("notebooks-db")
    settings = load_settings(REPO / "journey.toml").model_copy(
        update={
            "output": OutputSettings(
                database=str(folder / "journeys.duckdb"), reports_dir=str(folder / "reports")
            )
        }
    )
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    jobs.build_journeys(settings)
    jobs.build_marts(settings)
    return settings.database_path


@pytest.fixture(scope="module")
def run(database: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Executes a copy of one notebook (once per module) and returns it with its outputs."""
    folder = tmp_path_factory.mktemp("notebooks")
    env = {**os.environ, "JOURNEY_DATABASE": str(database)}
    done: dict[str, nbformat.NotebookNode] = {}

    def execute(name: str) -> nbformat.NotebookNode:
        if name not in done:
            copy = folder / f"{name}.ipynb"
            shutil.copy(NOTEBOOKS / f"{name}.ipynb", copy)
            notebook = _read(copy)
            NotebookClient(
                notebook,
                timeout=CELL_TIMEOUT_SECONDS,
                kernel_name="python3",
                record_timing=False,
                resources={"metadata": {"path": str(folder)}},
            ).execute(env=env)  # a cell that raises fails the test (CellExecutionError)
            done[name] = notebook
        return done[name]

    return execute


def _read(path: Path) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def _cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    cell: nbformat.NotebookNode = next(c for c in notebook.cells if c.get("id") == cell_id)
    return cell


def _printed(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    """What the cell printed to stdout."""
    return "".join(
        output["text"]
        for output in _cell(notebook, cell_id).outputs
        if output["output_type"] == "stream" and output["name"] == "stdout"
    )


def _texts(notebook: nbformat.NotebookNode) -> list[list[str]]:
    """Per code cell, its outputs as text: streams, plain-text results, errors."""
    texts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        shown: list[str] = []
        previous = None  # the stream of the output before, if it was one
        for output in cell.outputs:
            if output["output_type"] == "stream":
                # a kernel may send one print as several pieces of a stream ("text", "\n"):
                # the text of a stream is what its consecutive pieces add up to
                if previous == output["name"]:
                    shown[-1] += output["text"]
                else:
                    shown.append(f"{output['name']}: {output['text']}")
                previous = output["name"]
                continue
            previous = None
            if output["output_type"] == "error":
                shown.append(f"error: {output['ename']}: {output['evalue']}")
            else:
                shown.append(output["data"].get("text/plain", ""))
        texts.append(shown)
    return texts


def test_exploring_paths_shows_the_top_path_the_store_graph_and_the_comparison(
    run: Run, database: Path
) -> None:
    notebook = run("01_exploring_paths")
    top = ja.top_paths(database, n=1).row(0, named=True)
    assert top["path"] == "store_purchase"  # the sample's most common path, bought in one step
    assert _printed(notebook, "top-paths-summary") == (
        f"Most common path: {top['path']} ({top['journeys']} journeys, 100% converted)\n"
    )
    # the touchpoint with the most exits, and the contexts paths_around finds for it
    around = ja.paths_around(database, "add_to_cart")
    assert (
        _printed(notebook, "around") == f"Around add_to_cart: {around.height} distinct contexts\n"
    )
    # S01 has the most journeys of the four stores; its graph is also written as GraphML
    graph = ja.transition_graph(database, segment="store=S01")
    assert _printed(notebook, "graph") == (
        f"store=S01: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges\n"
    )
    assert _printed(notebook, "export") == "transitions-store=S01.graphml\n"
    exported = nx.read_graphml(database.parent / "reports/graphs/transitions-store=S01.graphml")
    assert sorted(exported.edges) == sorted(graph.edges)
    # web (229 journeys) and store (218) are the two largest first channels
    compared = ja.compare_segments(database, "first_channel=web", "first_channel=store")
    changed = compared.filter("significant", pl.col("from_touchpoint") != "START")
    assert changed.height > 0
    assert _printed(notebook, "compare") == (
        f"first_channel=web vs first_channel=store: {changed.height} of {compared.height} "
        "edges changed significantly\n"
    )


def test_omnichannel_patterns_shows_the_evidence_of_real_journeys_and_the_store_shares(
    run: Run, database: Path
) -> None:
    notebook = run("02_omnichannel_patterns")
    ropo = ja.pattern_hits(database, "ropo").sort("converted_at", "journey_id")
    journey_id = ropo.item(0, "journey_id")
    evidence = ja.pattern_evidence(database, journey_id)
    matched = evidence.filter(pl.col("evidence_of").list.contains("ropo"))
    # online research first, the store purchase last
    assert matched.get_column("channel").to_list()[-1] == "store"
    assert _printed(notebook, "evidence") == (
        f"ROPO journey {journey_id}: {evidence.height} steps, {matched.height} of them evidence\n"
    )
    collected = (
        ja.pattern_hits(database, "click_and_collect")
        .filter(pl.col("variant") == "collected")
        .sort("converted_at", "journey_id")
        .item(0, "journey_id")
    )
    try_and_buy = (
        ja.pattern_hits(database, "try_and_buy")
        .sort("converted_at", "journey_id")
        .item(0, "journey_id")
    )
    assert _printed(notebook, "evidence-others") == (
        f"click_and_collect: {collected}\ntry_and_buy: {try_and_buy}\n"
    )
    # the collected order's evidence is the order and its pickup in a store
    pickup = ja.pattern_evidence(database, collected).filter(
        pl.col("evidence_of").list.contains("click_and_collect")
    )
    assert pickup.get_column("touchpoint").to_list() == ["order_placed", "store_pickup"]
    share = ja.pattern_share(database, by="store").filter(pl.col("pattern") == "ropo")
    best = share.sort(["share", "segment"], descending=[True, False]).row(0, named=True)
    assert _printed(notebook, "share-summary") == (
        f"Highest ROPO share: {best['segment']} with {best['share']:.1%} "
        f"of its {best['conversions']} conversions\n"
    )


def test_dropoffs_and_leakage_shows_the_worst_step_the_leakage_and_the_markov_credit(
    run: Run, database: Path
) -> None:
    notebook = run("03_dropoffs_and_leakage")
    worst = ja.dropoffs(database).filter(pl.col("touchpoint") == "add_to_cart").row(0, named=True)
    assert _printed(notebook, "dropoffs-summary") == (
        f"Most journeys lost at add_to_cart: {worst['exits']} of {worst['journeys_through']} "
        f"({worst['dropoff_rate']:.1%}), and {worst['leaks']} more bought offline afterwards\n"
    )
    consideration = (
        ja.funnel(database).filter(pl.col("stage") == "consideration").row(0, named=True)
    )
    assert _printed(notebook, "funnel-summary") == (
        f"Most drop-offs in consideration: {consideration['dropoffs']} of "
        f"{consideration['journeys']} journeys ({consideration['dropoff_rate']:.1%})\n"
    )
    # on the sample every journey that left online for a store is a ROPO hit (README: 68)
    assert _printed(notebook, "leakage-summary") == (
        "68 journeys left online and bought offline, revenue 11377.90; "
        "ROPO hits: 68, revenue 11377.90\n"
    )
    markov = ja.attribution_credit(database, model="markov").row(0, named=True)
    assert _printed(notebook, "attribution-summary") == (
        f"Markov removal effect credits {markov['value']} most: "
        f"{markov['conversions']:.1f} conversions, revenue {markov['revenue']:.2f}\n"
    )


def test_audiences_shows_the_sizes_a_draft_and_what_its_export_holds(
    run: Run, database: Path
) -> None:
    notebook = run("04_audiences")
    sizes = ja.audience_sizes(database)
    latest = sizes.filter(pl.col("run_at") == pl.col("run_at").max())
    assert latest.height == 3  # the shipped audiences, one run
    assert _printed(notebook, "sizes-summary") == "".join(
        f"{row['audience']}: {row['members']} members (+{row['entered']}, -{row['exited']})\n"
        for row in latest.iter_rows(named=True)
    )
    # the draft (a store purchase in the 30 days before the end of the data, no web or app
    # event in them), counted again in plain SQL
    with Warehouse.open(database, read_only=True) as wh:
        counted = wh.query(
            """
            with end_of_data as (  -- the run's: its last event, or its last load if earlier
                select least(max(occurred_at), max(ingested_at)) as at from core.events
            ),
            recent as (
                select e.* from core.events as e, end_of_data
                where customer_key is not null
                    and occurred_at between end_of_data.at - interval 30 days and end_of_data.at
            ),
            members as (
                select distinct customer_key from recent where touchpoint = 'store_purchase'
                except
                select customer_key from recent where channel in ('web', 'app')
            )
            select
                count(*) as members,
                count(*) filter (where customer_key in (
                    select customer_key from core.customers where identifier_type = 'email_hash'
                )) as with_email
            from members
            """
        ).row(0, named=True)
    assert counted["members"] > 0
    assert _printed(notebook, "draft") == (
        f"store-buyers-not-online: {counted['members']} customers\n"
    )
    assert _printed(notebook, "export") == (
        f"{counted['members']} rows, columns customer_key, email_hash, phone_hash; "
        f"{counted['with_email']} with an e-mail hash\n"
    )


@pytest.mark.parametrize("name", NAMES)
def test_no_output_shows_a_path_of_this_machine(run: Run, database: Path, name: str) -> None:
    notebook = run(name)
    shown = "\n".join(
        text
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        for text in (output.get("text", ""), *output.get("data", {}).values())
        if isinstance(text, str)
    )
    assert str(database.parent) not in shown
    assert MACHINE_PATH.search(shown) is None


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_notebook_shows_the_outputs_of_a_run_on_the_sample(
    run: Run, name: str
) -> None:
    committed = _read(NOTEBOOKS / f"{name}.ipynb")
    nbformat.validate(committed)
    assert committed.cells[0].cell_type == "markdown"
    assert "parameters" in committed.cells[1].metadata.get("tags", [])
    counts = [cell.execution_count for cell in committed.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "run `make notebooks` and commit the result"
    # same text outputs, cell by cell, as the run of the copy above
    assert _texts(committed) == _texts(run(name)), (
        f"notebooks/{name}.ipynb shows the outputs of an older run: run `make notebooks`"
    )


def test_every_notebook_is_tested() -> None:
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == list(NAMES)
