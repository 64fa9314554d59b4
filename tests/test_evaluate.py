"""The evaluator's metrics on hand-checked cases."""

from __future__ import annotations

import polars as pl
import pytest

from journey_analytics.errors import JourneyError
from journey_analytics.evaluate import (
    RunTables,
    Truth,
    adjusted_rand_index,
    b_cubed,
    evaluate,
)


def _pairs(predicted: list[int], true: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"p": predicted, "t": true})


def test_adjusted_rand_index_matches_the_textbook_value() -> None:
    # scikit-learn's documented example: ARI([0,0,0,1,1,1], [0,0,1,1,2,2]) = 0.24242...
    assert adjusted_rand_index(_pairs([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1]), "p", "t") == (
        pytest.approx(0.2424242424242424, abs=1e-12)
    )
    assert adjusted_rand_index(_pairs([5, 5, 7], [1, 1, 2]), "p", "t") == 1.0


def test_b_cubed_by_hand() -> None:
    # true {a,b,c} {d}; predicted {a,b} {c,d}
    # precision: a 1, b 1, c 1/2, d 1/2 -> 3/4; recall: a 2/3, b 2/3, c 1/3, d 1 -> 2/3
    precision, recall = b_cubed(_pairs([1, 1, 2, 2], [1, 1, 1, 2]), "p", "t")
    assert (precision, recall) == (pytest.approx(0.75), pytest.approx(2 / 3))


def _truth() -> Truth:
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
            "customer_id": ["K1", "K1", "K1", "K2", "K2", "K2"],
            "journey_id": ["J1", "J1", "J2", "J3", "J3", "J4"],
            # K2's e6 came from a shared device: not recoverably linked to e4, e5
            "identity_group": ["g1", "g1", "g1", "g2", "g2", "g3"],
            "status": ["valid", "valid", "valid", "valid", "malformed", "valid"],
        }
    )
    journeys = pl.DataFrame(
        {
            "journey_id": ["J1", "J2", "J3", "J4"],
            "converted": [True, False, True, False],
            "patterns": ["ropo", None, "click_and_collect", None],
            "variant": [None, None, "no_show", None],
            "dropoff_touchpoint": [None, "add_to_cart", None, "product_view"],
            "revenue": [10.0, None, 20.0, None],
        }
    )
    return Truth(events, journeys, rows_written=7)


def _run() -> RunTables:
    # e5 (the conversion of J3) was malformed and never loaded; e6 is a customer of its own.
    return RunTables(
        events=pl.DataFrame(
            {
                "event_id": ["e1", "e2", "e3", "e4", "e6"],
                "customer_key": ["c1", "c1", "c1", "c2", "c3"],
            }
        ),
        steps=pl.DataFrame(
            {
                "event_id": ["e1", "e2", "e3", "e4", "e6"],
                "journey_id": ["j:e1", "j:e1", "j:e3", "j:e4", "j:e6"],
                "position": [1, 2, 1, 1, 1],
            }
        ),
        journeys=pl.DataFrame(
            {
                "journey_id": ["j:e1", "j:e3", "j:e4", "j:e6"],
                "status": ["converted", "dropped", "dropped", "dropped"],
                "conversion_event_id": ["e2", None, None, None],
                "revenue": [10.0, None, None, None],
                "last_touchpoint": ["store_purchase", "add_to_cart", "product_view", "call"],
            }
        ),
        patterns=pl.DataFrame(
            {
                "journey_id": ["j:e1", "j:e4"],
                "pattern": ["ropo", "online_only"],
                "variant": [None, None],
            }
        ),
        batches=pl.DataFrame(
            {"rows_read": [7], "rows_loaded": [5], "rows_duplicate": [1], "rows_rejected": [1]}
        ),
    )


def test_scores_of_a_small_run() -> None:
    scores = evaluate(_run(), _truth())
    identity = scores["identity"]
    # 5 valid events, all loaded; K2 split into {e4} and {e6}: recall 1,1,1 + 1/2 + 1/2 over 5
    assert identity["event_coverage"] == 1.0
    assert identity["precision"] == 1.0
    assert identity["recall"] == pytest.approx(0.8)
    # e6 is not recoverably linked to e4: against recoverable links nothing is missed
    assert identity["recall_recoverable"] == 1.0
    # J3 lost its order event to a malformed row: not exact, though its one loaded event is
    # alone in j:e4 (exact_loaded counts it)
    assert (scores["journeys"]["exact"], scores["journeys"]["exact_loaded"]) == (3, 4)
    assert scores["journeys"]["step_coverage"] == 1.0
    assert scores["patterns"]["ropo"] == {"true": 1, "found": 1, "precision": 1.0, "recall": 1.0}
    # the c&c journey lost its order event: not found; online_only was a false hit
    assert scores["patterns"]["click_and_collect"]["recall"] == 0.0
    # j:e4 has no conversion; it maps to J3 through its first event, which is not online-only
    assert scores["patterns"]["online_only"] == {
        "true": 0,
        "found": 1,
        "precision": 0.0,
        "recall": None,
    }
    # J2 ends at add_to_cart as found; J4 truly ends at product_view, found ending at call
    # J2 ends at add_to_cart as found; J4 truly ends at product_view, found ending at call;
    # of the 3 found drop-offs one is right
    assert scores["dropoffs"] == {
        "true_dropoffs": 2,
        "found_dropoffs": 3,
        "right_touchpoint": 1,
        "accuracy": 0.5,
        "precision": 1 / 3,
    }
    assert scores["totals"] == {
        "true_conversions": 2,
        "found_conversions": 1,
        "true_revenue": 30.0,
        "found_revenue": 10.0,
    }
    assert scores["accounting"]["nothing_lost"] is True
    assert scores["accounting"]["malformed_events"] == 1


def test_split_journeys_duplicate_hits_and_missing_steps_count_against_the_run() -> None:
    truth = Truth(
        events=pl.DataFrame(
            {
                "event_id": ["e1", "e2", "e3", "e4"],
                "customer_id": ["K1"] * 4,
                "journey_id": ["T1", "T1", "T1", "T2"],
                "identity_group": ["g"] * 4,
                "status": ["valid"] * 4,
                "occurred_at": ["2026-01-01", "2026-01-02", "2026-01-03", "2026-03-01"],
            }
        ),
        journeys=pl.DataFrame(
            {
                "journey_id": ["T1", "T2"],
                "converted": [True, False],
                "patterns": ["ropo", None],
                "variant": [None, None],
                "dropoff_touchpoint": [None, "product_view"],
                "revenue": [10.0, None],
            }
        ),
        rows_written=None,
    )
    run = RunTables(
        events=pl.DataFrame({"event_id": ["e1", "e2", "e3", "e4"], "customer_key": ["c"] * 4}),
        # T1 split in two, both halves carrying ROPO; e4 was loaded but left out of journeys
        steps=pl.DataFrame(
            {
                "event_id": ["e1", "e2", "e3"],
                "journey_id": ["j:e1", "j:e1", "j:e3"],
                "position": [1, 2, 1],
            }
        ),
        journeys=pl.DataFrame(
            {
                "journey_id": ["j:e1", "j:e3", "j:x"],
                "status": ["converted", "converted", "dropped"],
                "conversion_event_id": ["e2", "e3", None],
                "revenue": [5.0, 5.0, None],
                "last_touchpoint": ["a", "b", "product_view"],
            }
        ),
        patterns=pl.DataFrame(
            {
                "journey_id": ["j:e1", "j:e3", "j:x"],
                "pattern": ["ropo", "ropo", "ropo"],
                "variant": [None] * 3,
            }
        ),
        batches=pl.DataFrame(
            {"rows_read": [4], "rows_loaded": [4], "rows_duplicate": [0], "rows_rejected": [0]}
        ),
    )
    scores = evaluate(run, truth)
    assert scores["journeys"]["exact"] == 0
    assert scores["journeys"]["step_coverage"] == 0.75
    # three ROPO rows: one right, one a second hit on T1, one mapped to no true journey
    assert scores["patterns"]["ropo"] == {"true": 1, "found": 3, "precision": 1 / 3, "recall": 1.0}
    # T2's last event is in no journey: not found as a drop-off
    assert scores["dropoffs"]["right_touchpoint"] == 0


def test_a_truth_of_another_simulation_is_refused() -> None:
    run = _run()
    other = _truth()
    other = Truth(other.events.with_columns(pl.col("event_id") + "x"), other.journeys, None)
    with pytest.raises(JourneyError, match="is --truth the simulation"):
        evaluate(run, other)
