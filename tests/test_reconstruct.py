"""The one-pass reconstruction against the stage functions it replaces in runs, row for row."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from journey_analytics import reconstruct
from journey_analytics.graphs import transition_edges, transition_graph
from journey_analytics.jobs import end_of_data, write_journey_shards
from journey_analytics.journeys import alias_touchpoints, assign_journeys, summarise_journeys
from journey_analytics.reconstruct import Rebuilt, rebuild
from journey_analytics.sessions import assign_sessions, summarise_sessions
from journey_analytics.warehouse import Warehouse

from ._events import events as canonical_events
from .test_journey_properties import NOISE, SESSION_TIMEOUTS, TIMEOUT, event_frames

KEYS = {
    "sessions": ["session_id"],
    "steps": ["journey_id", "position"],
    "journeys": ["journey_id"],
    "edges": ["journey_id", "from_touchpoint", "to_touchpoint", "seconds"],
}


def _reference(frame: pl.DataFrame, **options: object) -> Rebuilt:
    """The calls of the stage functions, one after another."""
    aliases = options.get("aliases") or {}
    in_sessions = assign_sessions(
        frame,
        timeouts_minutes=SESSION_TIMEOUTS,
        default_timeout_minutes=30,
        max_session_minutes=options.get("max_session_minutes"),  # type: ignore[arg-type]
    )
    steps = assign_journeys(in_sessions, timeout=TIMEOUT, noise_touchpoints=NOISE)
    aliased = steps.with_columns(alias_touchpoints(pl.col("touchpoint"), aliases))  # type: ignore[arg-type]
    journeys = summarise_journeys(
        aliased,
        timeout=TIMEOUT,
        as_of=end_of_data(frame),
        drop_touchpoints=options["drop_touchpoints"],  # type: ignore[arg-type]
        collapse_repeats=options["collapse_repeats"],  # type: ignore[arg-type]
        max_length=options.get("max_length"),  # type: ignore[arg-type]
    )
    edges = transition_edges(
        aliased,
        journeys,
        drop_touchpoints=options["drop_touchpoints"],  # type: ignore[arg-type]
        collapse_repeats=options["collapse_repeats"],  # type: ignore[arg-type]
    )
    customers = steps.get_column("customer_key").n_unique()
    return Rebuilt(summarise_sessions(in_sessions), steps, journeys, edges, customers)


def _fast(frame: pl.DataFrame, *, by_group: bool = False, **options: object) -> Rebuilt:
    """``rebuild``; with ``by_group``, ``rebuild_groups``' groups put together."""
    shared: dict[str, object] = {
        "timeouts_minutes": SESSION_TIMEOUTS,
        "default_timeout_minutes": 30,
        "timeout": TIMEOUT,
        "noise_touchpoints": NOISE,
        "as_of": end_of_data(frame),
    }
    if not by_group:
        return rebuild(frame, **shared, **options)  # type: ignore[arg-type]
    pieces = {"shards": options.pop("shards", 1), "workers": options.pop("workers", 1)}
    rules = reconstruct.Rules(
        **{"max_session_minutes": None, "max_length": None, "aliases": {}, **shared, **options}  # type: ignore[arg-type]
    )
    groups = list(reconstruct.rebuild_groups(frame, rules, **pieces))  # type: ignore[arg-type]
    return Rebuilt(
        pl.concat([group.sessions for group in groups]),
        pl.concat([group.steps for group in groups]),
        pl.concat([group.journeys for group in groups]),
        reconstruct.join_edges(
            [group.edges for group in groups],
            journeys=[group.journeys.height for group in groups],
            customers=[group.customers for group in groups],
        ),
        sum(group.customers for group in groups),
    )


def _assert_same(expected: Rebuilt, found: Rebuilt) -> None:
    for name, keys in KEYS.items():
        left = getattr(expected, name)
        right = found.labelled_edges() if name == "edges" else getattr(found, name)
        # edges name their nodes with an Enum (no string per row); same values
        right = right.select(left.columns).cast(
            {column: pl.String for column, kind in right.schema.items() if kind == pl.Enum}
        )
        assert_frame_equal(left.sort(keys), right.sort(keys), check_dtypes=False)
    # the graph counted by number equals the reference's, counted by id (seconds to the last
    # bits: the reference takes them from datetimes, the rebuild from microseconds)
    by_number, by_id = reconstruct.edge_graph(found.edges), transition_graph(expected.edges)
    assert sorted(by_number.nodes(data=True)) == sorted(by_id.nodes(data=True))
    assert sorted(by_number.edges) == sorted(by_id.edges)
    for edge in by_id.edges:
        found_attributes, expected_attributes = by_number.edges[edge], by_id.edges[edge]
        assert found_attributes.keys() == expected_attributes.keys()
        for name, value in expected_attributes.items():  # None: an edge without times
            assert found_attributes[name] == (value if value is None else pytest.approx(value))


OPTIONS = st.fixed_dictionaries(
    {
        "drop_touchpoints": st.sampled_from([NOISE, ()]),
        "collapse_repeats": st.booleans(),
        "max_session_minutes": st.sampled_from([None, 90.0]),
        "max_length": st.sampled_from([None, 3]),
        "aliases": st.sampled_from([{}, {"product_view|add_to_cart": "shop"}]),
        # in one piece, or in customer groups rebuilt apart by two threads, put together by
        # rebuild or handed back one by one
        "shards": st.sampled_from([1, 1, 3]),
        "workers": st.just(2),
        "by_group": st.booleans(),
    }
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(event_frames(), OPTIONS)
def test_rebuild_equals_the_stage_functions(
    frame: pl.DataFrame, options: dict[str, object]
) -> None:
    _assert_same(_reference(frame, **options), _fast(frame, **options))


# the columns whose text a result takes from the input's channel and touchpoint
TEXT_FROM_INPUT = {
    "sessions": ["channel", "first_touchpoint", "last_touchpoint"],
    "journeys": ["first_channel", "last_touchpoint"],
}


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(event_frames(), OPTIONS, st.sampled_from(["categorical", "enum"]))
def test_categorical_text_in_gives_the_same_rows_with_categorical_text_out(
    frame: pl.DataFrame, options: dict[str, object], kind: str
) -> None:
    # channel, touchpoint and stage held as codes (a Categorical holds 4 bytes a row, a
    # string 16): the same rows, and the text taken from them stays Categorical, even from an
    # Enum input, whose names a renamed or cut path (``…``) may not be among
    text = pl.Categorical() if kind == "categorical" else None
    coded = frame.with_columns(
        pl.col(column).cast(text or pl.Enum(frame.get_column(column).unique().sort()))
        for column in ("channel", "touchpoint", "stage")
    )
    found, as_strings = _fast(coded, **options), _fast(frame, **options)
    for table, columns in TEXT_FROM_INPUT.items():
        assert {getattr(found, table).schema[column] for column in columns} == {pl.Categorical()}
        assert {getattr(as_strings, table).schema[column] for column in columns} == {pl.String()}
    as_text = Rebuilt(
        *(
            getattr(found, name).with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))
            for name in ("sessions", "steps", "journeys")
        ),
        found.edges,
        found.customers,
    )
    _assert_same(_reference(frame, **options), as_text)


@pytest.mark.parametrize("kind", ["categorical", "enum"])
@pytest.mark.parametrize("by_group", [False, True])
def test_no_events_with_categorical_text_give_empty_tables_of_the_same_types(
    kind: str, by_group: bool
) -> None:
    # no events go through the stage functions, which read text: the same types come out
    # as from a rebuild of some events (steps as the input, the rest Categorical)
    touchpoint = pl.Categorical() if kind == "categorical" else pl.Enum(["x"])
    text = pl.Categorical() if kind == "categorical" else pl.Enum(["web", "store"])
    empty = canonical_events().cast({"channel": text, "touchpoint": touchpoint, "stage": text})
    options = {"drop_touchpoints": NOISE, "collapse_repeats": True, "shards": 2, "workers": 2}
    found = _fast(
        empty,
        by_group=by_group,
        **options,
        **({} if by_group else {"aliases": {"x|y": "shop"}, "max_length": 3}),
    )
    for table, columns in TEXT_FROM_INPUT.items():
        frame = getattr(found, table)
        assert frame.is_empty()
        assert {frame.schema[column] for column in columns} == {pl.Categorical()}
    assert found.steps.is_empty()
    assert {found.steps.schema[c] for c in ("channel", "touchpoint", "stage")} == {
        empty.schema["channel"],
        empty.schema["touchpoint"],
    }


def test_two_customers_whose_keys_share_a_hash_stay_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force the first hash to collide: every key hashes to 0. The second hash tells the two
    # customers apart, and the run falls back to exact customer codes.
    frame = pl.DataFrame(
        {
            "event_id": ["web:1", "web:2", "web:3"],
            "customer_key": ["a", "b", "a"],
            "occurred_at": pl.Series(
                ["2026-03-01 10:00", "2026-03-01 10:01", "2026-03-01 10:02"]
            ).str.to_datetime(time_zone="UTC"),
            "is_conversion": [False, False, False],
            "channel": ["web"] * 3,
            "touchpoint": ["product_view"] * 3,
            "order_id": pl.Series([None, None, None], dtype=pl.String),
            "revenue": pl.Series([None, None, None], dtype=pl.Decimal(18, 2)),
        }
    ).with_columns(ingested_at=pl.col("occurred_at").max())
    original = reconstruct._customer_hash

    def colliding(customers: pl.Expr, seed: int) -> pl.Expr:
        hashed = original(customers, seed)
        return hashed * 0 if seed == 0 else hashed

    monkeypatch.setattr(reconstruct, "_customer_hash", colliding)
    built = _fast(frame, drop_touchpoints=NOISE, collapse_repeats=True)
    assert sorted(built.sessions.select("session_id", "customer_key", "events").rows()) == [
        ("s:web:1", "a", 2),
        ("s:web:2", "b", 1),
    ]


def test_customers_sharing_an_order_id_are_in_one_group() -> None:
    # c2 collects c1's order O1 and c3 returns c2's O2: one component, one group, whatever
    # their own hashes; c4 is on its own.
    frame = pl.DataFrame(
        {
            "customer_key": ["c1", "c2", "c2", "c3", "c4"],
            "order_id": ["O1", "O1", "O2", "O2", None],
        }
    )
    for groups in (2, 3, 7):
        found = reconstruct._customer_groups(frame, groups).tolist()
        assert found[0] == found[1] == found[2] == found[3]
        assert found[0] == reconstruct._customer_groups(frame.head(1), groups)[0]  # c1's own
    assert reconstruct.shards_for(10_000_000) == 16
    assert reconstruct.shards_for(1) == 1


def _two_events_at_one_instant() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": ["phone:0", "app:1"],  # listed against the event-id order
            "customer_key": ["c1", "c1"],
            "occurred_at": pl.Series(["2026-03-01 08:00"] * 2).str.to_datetime(time_zone="UTC"),
            "is_conversion": [False, False],
            "channel": ["phone", "app"],
            "touchpoint": ["call", "product_view"],
            "order_id": pl.Series([None, None], dtype=pl.String),
            "revenue": pl.Series([None, None], dtype=pl.Decimal(18, 2)),
        }
    ).with_columns(ingested_at=pl.col("occurred_at").max())


def test_events_at_one_instant_keep_their_own_channel_and_touchpoint() -> None:
    # Rows equal in customer and time are ordered by event id after the sort (app:1 before
    # phone:0); their channel and touchpoint codes must move with them. Found by hypothesis:
    # the session s:app:1 once came out with the channel phone.
    built = _fast(_two_events_at_one_instant(), drop_touchpoints=NOISE, collapse_repeats=True)
    assert sorted(built.sessions.select("session_id", "channel", "first_touchpoint").rows()) == [
        ("s:app:1", "app", "product_view"),
        ("s:phone:0", "phone", "call"),
    ]
    assert built.journeys.select("journey_id", "path", "first_channel").rows() == [
        ("j:app:1", "product_view > call", "app")
    ]


def test_graph_by_numbers_equals_the_graph_by_ids() -> None:
    # Rebuilt.graph counts journeys and customers by number; the same graph by their ids
    frame = pl.concat(
        [
            _two_events_at_one_instant(),
            _two_events_at_one_instant().with_columns(
                pl.lit("c2").alias("customer_key"), ("x" + pl.col("event_id")).alias("event_id")
            ),
        ]
    )
    built = _fast(frame, drop_touchpoints=NOISE, collapse_repeats=True)
    assert built.customers == 2
    by_number, by_id = built.graph(), transition_graph(built.labelled_edges())
    assert sorted(by_number.edges(data=True)) == sorted(by_id.edges(data=True))
    assert sorted(by_number.nodes(data=True)) == sorted(by_id.nodes(data=True))
    assert by_number.edges["product_view", "call"]["customers"] == 2
    assert built.labelled_edges().filter(pl.col("customer_key") == "c2").height == 2


SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def test_rebuild_equals_the_stage_functions_on_a_loaded_sample(tmp_path: Path) -> None:
    # the committed sample's canonical events, as ingest and stitching leave them
    from journey_analytics import jobs  # noqa: PLC0415
    from journey_analytics.config import OutputSettings, load_settings  # noqa: PLC0415

    settings = load_settings(SAMPLE.parent.parent / "journey.toml").model_copy(
        update={
            "output": OutputSettings(database=str(tmp_path / "j.duckdb"), reports_dir=str(tmp_path))
        }
    )
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        events = wh.read("core.events")
    for options in (
        {"drop_touchpoints": NOISE, "collapse_repeats": True},
        {
            "drop_touchpoints": (),
            "collapse_repeats": False,
            "max_length": 4,
            "max_session_minutes": 10.0,
        },
        # in three customer groups, two at a time; and those groups handed back one by one
        {"drop_touchpoints": NOISE, "collapse_repeats": True, "shards": 3, "workers": 2},
        {
            "drop_touchpoints": NOISE,
            "collapse_repeats": True,
            "shards": 3,
            "workers": 2,
            "by_group": True,
        },
    ):
        _assert_same(_reference(events, **options), _fast(events, **options))


def test_journey_shards_are_the_rebuild_written_per_group(tmp_path: Path) -> None:
    frame = pl.concat(
        [
            _two_events_at_one_instant().with_columns(
                pl.lit(f"c{number}").alias("customer_key"),
                (f"{number}" + pl.col("event_id")).alias("event_id"),
            )
            for number in range(6)
        ]
    )
    options = {"drop_touchpoints": NOISE, "collapse_repeats": True}
    whole = _fast(frame, **options)
    rules = reconstruct.Rules(
        timeouts_minutes=SESSION_TIMEOUTS,
        default_timeout_minutes=30,
        max_session_minutes=None,
        timeout=TIMEOUT,
        noise_touchpoints=NOISE,
        as_of=end_of_data(frame),
        drop_touchpoints=NOISE,
        collapse_repeats=True,
        max_length=None,
        aliases={},
    )
    folder = tmp_path / "shards"
    for shards in (4, 2):  # a second run with fewer groups leaves no file of the first
        groups = reconstruct.rebuild_groups(frame, rules, shards=shards, workers=2)
        written = write_journey_shards(groups, folder)
    files = {table: sorted(p.name for p in (folder / table).iterdir()) for table in written.rows}
    # six customers in two groups: one file per table and group, numbered in group order
    assert files == {
        key: ["part-00000.parquet", "part-00001.parquet"]
        for key in ("sessions", "steps", "journeys")
    }
    assert written.rows == {"sessions": 12, "steps": 12, "journeys": 6}
    read = Rebuilt(
        *(pl.read_parquet(folder / table) for table in ("sessions", "steps", "journeys")),
        written.edges,
        6,
    )
    # the journeys the edges number are the files' rows, in order
    _assert_same(_reference(frame, **options), read)
    assert sorted(written.graph().edges(data=True)) == sorted(whole.graph().edges(data=True))

    def failing() -> Iterator[Rebuilt]:  # one group, then a failure
        yield from itertools.islice(reconstruct.rebuild_groups(frame, rules, shards=2), 1)
        msg = "disk full"
        raise OSError(msg)

    before = {path: path.read_bytes() for path in folder.rglob("*.parquet")}
    with pytest.raises(OSError, match="disk full"):
        write_journey_shards(failing(), folder)
    # the earlier run's files stay as they were; the new ones were only written aside
    assert {p: p.read_bytes() for p in folder.rglob("*.parquet") if ".writing" not in p.parts} == (
        before
    )


def test_importing_the_package_sets_polars_allocator_unless_the_user_did() -> None:
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = "import journey_analytics, os; print(os.environ['_RJEM_MALLOC_CONF'])"
    clean = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    # Polars puts its own defaults first and the setting found after them (the last wins)
    ours = f",narenas:{os.cpu_count()},dirty_decay_ms:5000"
    for preset, expected in (
        (None, ours),
        # what a parent process that imported Polars passes on: not a setting of the user's
        ("dirty_decay_ms:500,muzzy_decay_ms:1000", ours),
        ("background_thread:false", ",background_thread:false"),
    ):
        env = clean if preset is None else {**clean, "_RJEM_MALLOC_CONF": preset}
        found = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert found.endswith(expected)
        assert found.count("narenas") == (expected == ours)
