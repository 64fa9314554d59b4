"""Personas: customers clustered by behaviour, named from their numbers, and every analysis
split by persona.

Three groups of customers whose habits differ (online buyers, store buyers, online browsers)
must come out as three personas with the stated names; the persona marts of the committed
sample must add up to the marts they split; and on the simulator's clear-cut configuration
(four planted kinds of customer) the personas must recover the kinds with an adjusted Rand
index of at least 0.8.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from journey_analytics import jobs, personas
from journey_analytics.cli import app
from journey_analytics.config import load_settings
from journey_analytics.sample import generate_sample, load_simulator_config
from journey_analytics.warehouse import Warehouse

from ._project import REPO, sample_config


def _customer(key: str, kind: str, basket: float = 0.0) -> dict[str, Any]:
    """One customer's features: an online buyer, a store buyer or an online browser, with
    one journey each; buyers with their own basket value."""
    buys = kind != "browser"
    return {
        "customer_key": key,
        "journeys": 1,
        "closed_journeys": 1,
        "conversions": 1 if buys else 0,
        "conversion_rate": 1.0 if buys else 0.0,
        "revenue": basket,
        "basket_value": basket,
        "online_share": 0.0 if kind == "store" else 1.0,
        "offline_share": 1.0 if kind == "store" else 0.0,
        "furthest_stage": 4 if buys else 3,
        "days_to_convert": {"online": 2.0, "store": 0.0, "browser": None}[kind],
        "ropo_share": 0.0,
        "click_and_collect_share": 0.0,
        "try_and_buy_share": 0.0,
        "recency_days": 10.0,
    }


# four online buyers, three store buyers, two browsers: the personas in that order (by size);
# the baskets differ a little inside a group, much between groups
FEATURES = pl.DataFrame(
    [
        _customer("c1", "online", 95.0),
        _customer("c2", "online", 100.0),
        _customer("c3", "online", 105.0),
        _customer("c4", "online", 100.0),
        _customer("c5", "store", 45.0),
        _customer("c6", "store", 50.0),
        _customer("c7", "store", 55.0),
        _customer("c8", "browser"),
        _customer("c9", "browser"),
    ]
)


def test_three_kinds_of_customer_make_three_personas() -> None:
    model = personas.fit_personas(FEATURES, max_k=5, seed=3)
    # silhouettes of 2..5: three groups score best (the stated criterion)
    assert model.chosen_by == "silhouette"
    assert set(model.silhouettes) == {2, 3, 4, 5}
    assert max(model.silhouettes, key=lambda k: model.silhouettes[k]) == 3
    assert model.k == 3
    assigned = personas.assign_personas(FEATURES, model)
    assert dict(assigned.iter_rows()) == {
        "c1": 1, "c2": 1, "c3": 1, "c4": 1, "c5": 2, "c6": 2, "c7": 2, "c8": 3, "c9": 3,
    }  # fmt: skip


def test_the_same_data_and_seed_give_the_same_personas_in_any_row_order() -> None:
    first = personas.fit_personas(FEATURES, seed=11)
    shuffled = personas.fit_personas(FEATURES.sample(fraction=1.0, shuffle=True, seed=5), seed=11)
    assert first == shuffled
    assert_frame_equal(
        personas.assign_personas(FEATURES, first),
        personas.assign_personas(FEATURES.reverse(), shuffled),
    )


def test_a_fixed_number_of_personas_is_kept() -> None:
    model = personas.fit_personas(FEATURES, k=2, seed=0)
    assert (model.k, model.chosen_by, set(model.silhouettes)) == (2, "config", {2})


def test_one_kind_of_customer_is_one_persona() -> None:
    same = pl.concat([FEATURES.head(1)] * 3).with_columns(
        pl.Series("customer_key", ["a", "b", "c"])
    )
    model = personas.fit_personas(same)
    assert (model.k, model.chosen_by) == (1, "too few customers")
    assert personas.assign_personas(same, model).get_column("persona").to_list() == [1, 1, 1]
    # and none at all
    assert personas.fit_personas(FEATURES.head(0)).k == 1
    assert personas.assign_personas(FEATURES.head(0), personas.fit_personas(FEATURES)).height == 0


def test_personas_are_named_and_described_from_their_numbers() -> None:
    model = personas.fit_personas(FEATURES, max_k=5, seed=3)
    described = personas.describe_personas(FEATURES, personas.assign_personas(FEATURES, model))
    # the buyers' average basket is (400 + 150) / 7 = 78.57, and 1.25 x 78.57 = 98.2: the
    # online buyers' 100 makes them high-basket; every customer has the same one journey
    assert described.select("persona", "name", "customers", "journeys", "conversions").rows() == [
        (1, "High-basket online buyers", 4, 4, 4),
        (2, "In-store buyers", 3, 3, 3),
        (3, "Online browsers", 2, 2, 0),
    ]
    first = described.row(0, named=True)
    assert first["share_of_customers"] == 4 / 9
    assert (first["revenue"], first["basket_value"]) == (400.0, 100.0)
    assert (first["journeys_per_customer"], first["recency_days"]) == (1.0, 10.0)
    assert (first["online_share"], first["offline_share"], first["furthest_stage"]) == (1, 0, 4)
    assert first["days_to_convert"] == 2.0
    assert first["description"] == (
        "44% of customers; 1.0 journeys each; 100% of their closed journeys convert; average "
        "basket 100.00; 100% of their steps online, 0% offline; 2.0 days to convert (median); "
        "last seen 10 days before the end of the data."
    )
    browsers = described.row(2, named=True)
    assert (browsers["conversion_rate"], browsers["basket_value"]) == (0.0, 0.0)
    assert browsers["days_to_convert"] is None
    assert browsers["description"] == (
        "22% of customers; 1.0 journeys each; 0% of their closed journeys convert; 100% of "
        "their steps online, 0% offline; last seen 10 days before the end of the data."
    )


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        # each rule of persona_name, in the order it is tried
        ({}, "Online buyers"),
        ({"online_share": 0.74, "offline_share": 0.6}, "In-store buyers"),
        ({"online_share": 0.5, "offline_share": 0.5}, "Omnichannel buyers"),
        ({"conversion_rate": 0.19}, "Online browsers"),
        ({"ropo_share": 0.3}, "Online researchers who buy in store"),
        ({"ropo_share": 0.3, "try_and_buy_share": 0.4}, "Store triers who buy online"),
        ({"click_and_collect_share": 0.3}, "Click-and-collect shoppers"),
        ({"click_and_collect_share": 0.29}, "Online buyers"),  # under the 30% of a pattern
        ({"conversion_rate": 0.1, "ropo_share": 0.9}, "Online browsers"),  # browsing first
        ({"basket_value": 125.0}, "High-basket online buyers"),
        ({"basket_value": 124.9}, "Online buyers"),
        ({"journeys": 3.0}, "Repeat online buyers"),
        ({"journeys": 3.0, "basket_value": 200.0}, "High-basket repeat online buyers"),
    ],
)
def test_persona_name_rules(changes: dict[str, float], name: str) -> None:
    persona = {
        "online_share": 0.8,
        "offline_share": 0.2,
        "conversion_rate": 0.5,
        "ropo_share": 0.0,
        "try_and_buy_share": 0.0,
        "click_and_collect_share": 0.0,
        "basket_value": 100.0,
        "journeys": 2.0,
    }
    assert (
        personas.persona_name({**persona, **changes}, {"basket_value": 100.0, "journeys": 2.0})
        == name
    )


@pytest.fixture(scope="module")
def sample_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed sample through the jobs `journey run` calls; its config file."""
    folder = tmp_path_factory.mktemp("personas")
    config = sample_config(REPO / "data" / "sample", folder)
    settings = load_settings(config)
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    jobs.build_journeys(settings)
    jobs.build_marts(settings)
    return config


@pytest.fixture(scope="module")
def sample_database(sample_config_file: Path) -> Path:
    return load_settings(sample_config_file).database_path


def _query(database: Path, sql: str) -> pl.DataFrame:
    with Warehouse.open(database, read_only=True) as wh:
        return wh.query(sql)


def test_every_customer_with_a_journey_has_one_persona(sample_database: Path) -> None:
    counts = _query(
        sample_database,
        "select (select count(distinct customer_key) from journeys.journeys) as customers, "
        "(select count(*) from marts.customer_personas) as rows, "
        "(select count(distinct customer_key) from marts.customer_personas) as keys, "
        "(select sum(customers) from marts.personas) as in_personas",
    )
    customers = counts.item(0, "customers")
    assert customers > 0
    assert counts.row(0) == (customers, customers, customers, customers)
    run = _query(sample_database, "select * from ops.persona_runs")
    assert run.height == 1
    assert run.item(0, "chosen_by") == "silhouette"
    assert (
        run.item(0, "personas")
        == _query(sample_database, "select count(*) from marts.personas").item()
    )


def test_persona_transitions_add_up_to_all_transitions(sample_database: Path) -> None:
    # an independent sum: every edge of segment all is some persona's, counted once, and every
    # customer is in one persona
    differences = _query(
        sample_database,
        """
        with by_persona as (
            select from_touchpoint, to_touchpoint, sum(transitions) as transitions,
                sum(customers) as customers
            from marts.persona_transitions group by all
        ), everyone as (
            select from_touchpoint, to_touchpoint, transitions, customers
            from marts.transitions where segment = 'all'
        )
        (select * from by_persona except all select * from everyone)
        union all
        (select * from everyone except all select * from by_persona)
        """,
    )
    assert differences.is_empty()
    probabilities = _query(
        sample_database,
        "select persona, from_touchpoint, sum(probability) as total "
        "from marts.persona_transitions group by all",
    )
    assert probabilities.get_column("total").round(9).unique().to_list() == [1.0]


def test_persona_funnel_dropoffs_and_patterns_add_up(sample_database: Path) -> None:
    funnel = _query(
        sample_database,
        "select stage, sum(journeys) as journeys, sum(dropoffs) as dropoffs "
        "from marts.persona_funnel group by stage order by stage",
    )
    assert_frame_equal(
        funnel,
        _query(
            sample_database, "select stage, journeys, dropoffs from marts.funnel order by stage"
        ),
        check_dtypes=False,
    )
    dropoffs = _query(
        sample_database,
        "select touchpoint, sum(journeys_through) as journeys_through, sum(exits) as exits "
        "from marts.persona_dropoffs group by touchpoint order by touchpoint",
    )
    assert_frame_equal(
        dropoffs,
        _query(
            sample_database,
            "select touchpoint, journeys_through, exits from marts.dropoffs order by touchpoint",
        ),
        check_dtypes=False,
    )
    patterns = _query(
        sample_database,
        "select pattern, sum(journeys) as journeys from marts.persona_patterns "
        "group by pattern order by pattern",
    )
    assert_frame_equal(
        patterns,
        _query(
            sample_database,
            "select pattern, count(distinct journey_id) as journeys from marts.patterns "
            "group by pattern order by pattern",
        ),
        check_dtypes=False,
    )


def test_each_persona_has_its_typical_path(sample_database: Path) -> None:
    typical = _query(
        sample_database,
        """
        select p.persona, p.typical_path, paths.path, paths.journeys,
            (select max(journeys) from marts.persona_paths o where o.persona = p.persona) as most
        from marts.personas p join marts.persona_paths paths
            on paths.persona = p.persona and paths.rank = 1
        order by p.persona
        """,
    )
    assert typical.height == _query(sample_database, "select count(*) from marts.personas").item()
    for row in typical.iter_rows(named=True):
        assert row["typical_path"] == row["path"]
        assert row["journeys"] == row["most"]


@pytest.mark.slow
def test_personas_recover_the_planted_kinds_of_customer(tmp_path: Path) -> None:
    config = resources.files("journey_analytics") / "defaults" / "simulator-clear-cut-personas.toml"
    simulator = load_simulator_config(Path(str(config))).without_noise()
    generate_sample(tmp_path / "sample", customers=2000, seed=5, config=simulator)
    settings = load_settings(sample_config(tmp_path / "sample", tmp_path / "run"))
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    jobs.build_journeys(settings)
    jobs.build_marts(settings)
    scores = jobs.evaluate_run(settings.database_path, tmp_path / "sample" / "truth", None)
    # the README reports these: 4 personas, adjusted Rand index 0.90
    assert scores["personas"]["kinds"] == 4
    assert scores["personas"]["personas"] == 4
    assert scores["personas"]["customers_scored"] == 2000
    assert scores["personas"]["adjusted_rand_index"] >= 0.8
    assert round(scores["personas"]["adjusted_rand_index"], 2) == 0.90


def test_the_personas_and_audiences_commands(sample_config_file: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["personas", "--config", str(sample_config_file)])
    assert result.exit_code == 0, result.output
    described = _query(
        load_settings(sample_config_file).database_path, "select * from marts.personas"
    )
    for row in described.iter_rows(named=True):
        assert row["name"] in result.output
        assert f"{row['customers']:,}" in result.output
    result = runner.invoke(app, ["audiences", "--config", str(sample_config_file)])
    assert result.exit_code == 0, result.output
    assert "click-and-collect-no-show" in result.output
    assert "exports:" in result.output
    # --k clusters again, here in a copy of the database
    copy = tmp_path / "journey.toml"
    database = tmp_path / "copy.duckdb"
    shutil.copy(load_settings(sample_config_file).database_path, database)
    copy.write_text(
        sample_config_file.read_text().replace(
            str(load_settings(sample_config_file).database_path), str(database)
        )
    )
    result = runner.invoke(app, ["personas", "--config", str(copy), "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "3 personas" in result.output
    runs = _query(database, "select personas, chosen_by from ops.persona_runs order by run_at")
    assert runs.rows()[-1] == (3, "config")
