"""The notebook API on a database built from the hand-made scenario by the real jobs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import journey_analytics as ja
from journey_analytics import jobs
from journey_analytics.config import OutputSettings, load_settings
from journey_analytics.errors import NotFoundError
from journey_analytics.ingest import EVENT_SCHEMA
from journey_analytics.warehouse import Warehouse

from ._events import scenario

REPO = Path(__file__).resolve().parents[1]
# stores of the committed sample: S01 and S02 in Italy, S03 in Portugal
STORES = {"pos:R1:pickup": "S01", "pos:R2:sale": "S01", "crm:1": "S02", "pos:R9:sale": "S03"}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("explore")
    settings = load_settings(REPO / "journey.toml").model_copy(
        update={
            "output": OutputSettings(
                database=str(folder / "j.duckdb"), reports_dir=str(folder / "reports")
            )
        }
    )
    events = scenario().with_columns(
        pl.col("event_id").replace_strict(STORES, default=None).alias("store_id")
    )
    with Warehouse.open(settings.database_path) as wh:
        wh.ensure_tables()
        wh.append("core.events", events.select(list(EVENT_SCHEMA)))
    jobs.build_journeys(settings)
    jobs.build_marts(settings)
    return settings.database_path


def test_top_paths_and_what_comes_around_a_touchpoint(database: Path) -> None:
    assert ja.top_paths(database, n=2).select("path", "journeys").rows() == [
        ("call > store_purchase", 1),  # all seven closed paths are distinct: ties by name
        ("email_click > order_placed", 1),
    ]
    around = ja.paths_around(database, "product_view", before=1, after=1)
    assert around.select("before", "after", "journeys", "conversions").rows() == [
        ("START", "add_to_cart", 2, 1),  # j:web:1 orders, j:web:7 drops off
        ("START", "store_purchase", 1, 1),  # the open journey j:web:8 is left out
    ]


def test_graph_of_a_segment_and_the_comparison_of_two(database: Path) -> None:
    assert ja.segments(database).filter(pl.col("dimension") == "region").rows() == [
        ("region", "region=Italy", 3, 2),  # j:web:1 (pickup in S01), j:web:4 (S01), j:crm:1 (S02)
        ("region", "region=Portugal", 1, 1),  # j:crm:40, the sale in S03
    ]
    italy = ja.transition_graph(database, segment="region=Italy")
    assert sorted(italy.successors("START")) == ["product_view", "try_on"]
    assert italy.nodes["START"]["visits"] == 3
    compared = ja.compare_segments(database, "converted", "dropped")
    cart = compared.filter(pl.col("from_touchpoint") == "add_to_cart")
    assert cart.select("to_touchpoint", "share_first", "share_second").rows() == [
        ("DROP_OFF", 0.0, 1.0),
        ("order_placed", 1.0, 0.0),
    ]
    with pytest.raises(NotFoundError, match=r"No segment 'store=S99'.*the segments are: all, "):
        ja.transition_graph(database, segment="store=S99")


def test_pattern_evidence_share_leakage_and_marts(database: Path) -> None:
    evidence = ja.pattern_evidence(database, "j:web:1")
    assert evidence.select("touchpoint", "evidence_of").rows() == [
        ("product_view", []),
        ("add_to_cart", []),
        # not online_only: a click-and-collect order is picked up in a store
        ("order_placed", ["click_and_collect"]),
        ("store_pickup", ["click_and_collect"]),
    ]
    assert ja.pattern_share(database, by="region").rows() == [
        ("region=Italy", "click_and_collect", 1, 3, 1 / 3),
        ("region=Italy", "ropo", 1, 3, 1 / 3),
        ("region=Italy", "try_and_buy", 1, 3, 1 / 3),
        ("region=Portugal", "offline_only", 1, 1, 1.0),
    ]
    assert ja.channel_leakage(database).select(
        "from_touchpoint", "to_channel", "journeys"
    ).rows() == [("product_view", "store", 1)]
    assert ja.dropoffs(database).row(0)[:3] == ("add_to_cart", 2, 1)
    assert ja.funnel(database).get_column("stage").to_list()[0] == "awareness"
    # last touch before each of the six conversions (an order with no touch before it is its
    # own last touch); ties in credit by name
    credit = ja.attribution_credit(database, model="last_touch")
    assert credit.select("value", "conversions").rows() == [
        ("web", 2.0),
        ("app", 1.0),
        ("email", 1.0),
        ("phone", 1.0),
        ("store", 1.0),
    ]
    with pytest.raises(NotFoundError, match=r"has no table 'marts\.nothing'; did you mean one of"):
        ja.read_table(database, "marts.nothing")
    with pytest.raises(NotFoundError, match="run `journey run` first"):
        ja.top_paths(database.with_name("missing.duckdb"))


def test_pattern_hits_of_one_pattern_and_of_a_misspelt_one(database: Path) -> None:
    assert ja.pattern_hits(database, "ropo").get_column("pattern").to_list() == ["ropo"]
    # another spelling of a pattern with hits is a mistake, said with the names that have hits
    with pytest.raises(NotFoundError) as error:
        ja.pattern_hits(database, "ROPO")
    assert str(error.value) == (
        "pattern 'ROPO': no hits. Did you mean 'ropo'? Patterns with hits: click_and_collect, "
        "offline_only, online_only, ropo, try_and_buy"
    )
    # a name no rule has hits for (a rule may match nothing): no rows, no error
    assert ja.pattern_hits(database, "loyal_returner").is_empty()
