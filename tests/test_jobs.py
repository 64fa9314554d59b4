"""The jobs a flow task calls, run directly (no Prefect) on tiny files in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from journey_analytics import jobs
from journey_analytics.config import load_settings
from journey_analytics.errors import ConfigError, RejectRateError, SourceError
from journey_analytics.taxonomy import default_taxonomy_path
from journey_analytics.warehouse import Warehouse

from ._project import LINES, RECEIPTS, project, run_all


def test_empty_sources_give_empty_tables_not_errors(tmp_path: Path) -> None:
    core, journeys, marts = run_all(project(tmp_path, {}))
    assert (core.events, core.customers, journeys.journeys) == (0, 0, 0)
    assert marts["marts.funnel"] == 6  # the stages are there, with zero journeys
    assert marts["marts.transitions"] == marts["marts.paths"] == 0
    jobs.export_dashboard(project(tmp_path, {}))
    assert (tmp_path / "reports" / "dashboard.html").stat().st_size > 0


def test_rows_waiting_for_their_receipt_are_reported(tmp_path: Path) -> None:
    settings = project(
        tmp_path,
        {
            "receipts.csv": RECEIPTS + "R1,S01,2026-03-01 10:00:00,L1,,EUR,10\n"
            "R2,S01,2026-03-01 11:00:00,L1,,EUR,10\n",
            "lines.csv": LINES + "R1,1,P1,shoes,1,10.00,sale,\nR9,1,P1,shoes,1,10.00,sale,\n",
        },
    )
    core, journeys, _ = run_all(settings)
    assert core.events == 1
    assert core.pending == {"receipt lines without their receipt": 1, "receipts without lines": 1}
    assert (journeys.journeys, journeys.conversions) == (1, 1)


def test_a_different_hashing_key_is_refused(tmp_path: Path) -> None:
    web = (
        '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:00:00Z"}\n'
    )
    jobs.ingest_sources(project(tmp_path, {"web.jsonl": web}, key="first"))
    with pytest.raises(ConfigError, match="hashing key differs"):
        jobs.ingest_sources(project(tmp_path, {"web.jsonl": web + web}, key="second"))


def test_stores_file_problems_are_collected_with_their_lines(tmp_path: Path) -> None:
    settings = project(
        tmp_path,
        {
            "stores.csv": "store_id,name,region,timezone\nS01,A,IT,Europe/Rome\n"
            "S01,B,IT,Europe/Rome\nS02,C,PT,Europe/Lisboa\n,D,FI,Europe/Helsinki\n",
        },
    )
    with pytest.raises(SourceError) as raised:
        jobs.store_zones(settings)
    assert str(raised.value).splitlines()[1:] == [
        "  - line 3: store_id 'S01' is listed twice",
        "  - line 4: timezone of S02: expected an IANA zone such as Europe/Rome, "
        "found 'Europe/Lisboa'",
        "  - line 5: store_id is empty",
    ]


def test_missing_source_stops_before_anything_loads(tmp_path: Path) -> None:
    settings = project(tmp_path, {})
    (tmp_path / "lines.csv").unlink()
    with pytest.raises(SourceError, match=r"No file matches 'lines\*\.csv'"):
        jobs.ingest_sources(settings)
    assert not settings.database_path.exists()  # not even created


def test_a_source_with_too_many_rejects_fails_after_loading_its_valid_rows(
    tmp_path: Path,
) -> None:
    good = (
        '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:00:00Z"}\n'
    )
    settings = project(tmp_path, {"web.jsonl": good + "{bad\n{bad\n"})
    with pytest.raises(RejectRateError) as raised:
        jobs.ingest_sources(settings)
    assert str(raised.value).splitlines()[1] == (
        "  - web: 2 of 3 rows rejected (66.7%), most in web.jsonl (2)"
    )
    report = jobs.load_status(settings.database_path)
    assert report.sources.filter(source="web").get_column("rows_loaded").item() == 1


def test_rows_quarantined_as_unmapped_load_once_the_taxonomy_knows_them(tmp_path: Path) -> None:
    web = (
        '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:00:00Z"}\n'
        '{"type":"track","event":"Wishlist Added","messageId":"m2","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:01:00Z"}\n'
    )
    # half of this tiny feed is the unmapped row: the reject-rate guard is not the point here
    settings = project(tmp_path, {"web.jsonl": web}, extra_toml="[ingest]\nmax_reject_rate = 1\n")
    first = [r for r in jobs.ingest_sources(settings) if r.source == "web"]
    assert first == [jobs.BatchReport("web", "web.jsonl", "loaded", 2, 1, 0, 1)]
    assert jobs.build_core(settings).events == 1

    # the analyst maps the name; the next run loads the quarantined row into its batch
    taxonomy = tmp_path / "taxonomy.csv"
    taxonomy.write_text(
        default_taxonomy_path().read_text()
        + "segment,Wishlist Added,wishlist_add,,consideration,true,false\n"
    )
    config = tmp_path / "journey.toml"
    config.write_text('taxonomy = "taxonomy.csv"\n' + config.read_text())
    settings = load_settings(config)
    # (a core build with the new taxonomy before the row is reloaded: full, one event)
    before_reload = jobs.build_core(settings)
    assert (before_reload.mode, before_reload.events) == ("full", 1)
    second = [r for r in jobs.ingest_sources(settings) if r.source == "web"]
    assert second == [
        jobs.BatchReport("web", "web.jsonl", "reloaded", 0, 1, 0, 0),
        jobs.BatchReport("web", "web.jsonl", "skipped"),
    ]
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        assert wh.query(
            "select record_key from raw.clickstream order by record_key"
        ).to_series().to_list() == ["m1", "m2"]
        assert wh.query("select count(*) from quarantine.rejects where source = 'web'").item() == 0
        assert wh.query(
            "select rows_read, rows_loaded, rows_duplicate, rows_rejected from ops.batches "
            "where source = 'web'"
        ).rows() == [(2, 2, 0, 0)]
    # the incremental core build reads the reloaded batch again: the row is an event now
    core = jobs.build_core(settings)
    assert (core.mode, core.events, core.pending) == ("incremental", 2, {})
    # nothing left to retry: a third run changes nothing
    third = [r for r in jobs.ingest_sources(settings) if r.source == "web"]
    assert third == [jobs.BatchReport("web", "web.jsonl", "skipped")]


def test_a_file_loaded_before_unchanged_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = (
        '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:00:00Z"}\n'
    )
    settings = project(tmp_path, {"web.jsonl": web})
    jobs.ingest_sources(settings)
    sources = {"web.jsonl", "contacts.csv", "interactions.csv", "receipts.csv", "lines.csv"}
    read: list[str] = []
    read_bytes = Path.read_bytes

    def counted(path: Path) -> bytes:
        read.append(path.name)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counted)
    # same name, size and modification time as when loaded: not even hashed
    assert {r.status for r in jobs.ingest_sources(settings)} == {"skipped"}
    assert sources & set(read) == set()
    # touched (a new modification time, the same bytes): hashed, then skipped by checksum
    web_file = tmp_path / "web.jsonl"
    status = web_file.stat()
    os.utime(web_file, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    reports = [r for r in jobs.ingest_sources(settings) if r.source == "web"]
    assert reports == [jobs.BatchReport("web", "web.jsonl", "skipped")]
    assert sources & set(read) == {"web.jsonl"}
    # the batch now knows the new time: the next run reads nothing again
    read.clear()
    assert {r.status for r in jobs.ingest_sources(settings)} == {"skipped"}
    assert sources & set(read) == set()
    # rewritten with one more line: a new size, so a new batch with just the new row
    web_file.write_text(web + web.replace("m1", "m2"))
    reports = [r for r in jobs.ingest_sources(settings) if r.source == "web"]
    assert reports == [jobs.BatchReport("web", "web.jsonl", "loaded", 2, 1, 1, 0)]
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        assert wh.query(
            "select file_bytes, file_modified_ns from ops.batches where source = 'web' "
            "order by started_at"
        ).rows()[-1] == (web_file.stat().st_size, web_file.stat().st_mtime_ns)


def test_a_duplicate_of_a_row_in_the_first_write_of_a_new_table_is_dropped(
    tmp_path: Path,
) -> None:
    # DuckDB 2.0: a table created in the transaction that fills it with whole row groups
    # (122,880 rows) showed none of them to scans after the commit, so the next write's
    # duplicate check missed them. 130,000 rows fill the first write (commit_rows 100,000);
    # the second file resends one of them and adds one.
    line = (
        '{{"type":"track","event":"Product Viewed","messageId":"m{n}","anonymousId":"a{n}",'
        '"timestamp":"2026-03-01T10:00:00Z"}}\n'
    )
    first = "".join(line.format(n=n) for n in range(130_000))
    second = line.format(n=77) + line.format(n=130_000)
    settings = project(
        tmp_path,
        {"web-1.jsonl": first, "web-2.jsonl": second},
        extra_toml="[ingest]\ncommit_rows = 100000\n",
    )
    reports = {r.file: r for r in jobs.ingest_sources(settings) if r.source == "web"}
    assert (reports["web-2.jsonl"].rows_loaded, reports["web-2.jsonl"].rows_duplicate) == (1, 1)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        assert wh.query("select count(*) from raw.clickstream").item() == 130_001
        assert wh.query("select count(distinct record_key) from raw.clickstream").item() == 130_001


def test_path_aliases_and_length_cap_shape_paths_and_graphs(tmp_path: Path) -> None:
    from ._project import REPO, sample_config  # noqa: PLC0415

    config = sample_config(REPO / "data" / "sample", tmp_path)
    config.write_text(
        config.read_text().replace(
            "[paths]\n",
            '[paths]\naliases = { "product_view|add_to_cart" = "browse" }\nmax_length = 4\n',
        )
    )
    run_all(load_settings(config))
    with Warehouse.open(tmp_path / "journeys.duckdb", read_only=True) as wh:
        paths = wh.query("select path from journeys.journeys").get_column("path")
        nodes = wh.query(
            "select from_touchpoint as t from marts.transitions union "
            "select to_touchpoint from marts.transitions"
        ).get_column("t")
        steps = wh.query("select count(*) from journeys.steps where touchpoint = 'product_view'")
    items = paths.str.split(" > ")
    assert paths.len() == 791  # the journeys themselves do not change
    assert items.list.len().max() == 4
    assert not items.list.contains("product_view").any()
    assert items.list.contains("browse").sum() > 0
    # a capped path has … in third place: two items before it, one after
    capped = items.filter(items.list.contains("…"))
    assert capped.len() > 0
    assert capped.list.get(2).unique().to_list() == ["…"]
    assert "browse" in nodes.to_list()
    assert "product_view" not in nodes.to_list()
    assert steps.item() > 0  # journeys.steps keep the touchpoints as loaded


def test_a_memory_limit_caps_duckdb_and_spills_to_the_work_dir(tmp_path: Path) -> None:
    web = (
        '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
        '"timestamp":"2026-03-01T10:00:00Z"}\n'
    )
    settings = project(tmp_path, {"web.jsonl": web}, extra_toml='[scale]\nmemory_limit = "256MB"\n')
    _core, built, _marts = run_all(settings)
    assert built.journeys == 1
    with jobs._open(settings, read_only=True) as wh:
        limit, spill = wh.query(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).row(0)
    assert (limit, spill) == ("244.1 MiB", str(tmp_path / "work" / "duckdb-spill"))


def test_a_shard_refuses_rules_other_than_the_ones_its_run_planned_with(tmp_path: Path) -> None:
    # a Dask worker reads the pattern rules and journey settings itself: if they changed
    # between the plan and the shard (or the worker runs another version), the shard stops
    # instead of building journeys that disagree with the other shards and the fingerprint
    from journey_analytics.errors import JourneyError  # noqa: PLC0415

    from ._project import REPO, sample_config  # noqa: PLC0415

    settings = load_settings(sample_config(REPO / "data" / "sample", tmp_path))
    jobs.ingest_sources(settings)
    jobs.build_core(settings)
    plan = jobs.plan_journeys(settings, full=True)
    changed = settings.model_copy(
        update={"journeys": settings.journeys.model_copy(update={"timeout_days": 7})}
    )
    with pytest.raises(JourneyError, match=f"{plan.shards[0].name}: the pattern rules"):
        jobs.build_journey_shard(changed, plan.shards[0])
    assert jobs.build_journey_shard(settings, plan.shards[0]) == plan.folder  # the same: built


def test_a_full_core_build_of_whole_row_groups_sees_its_own_events(tmp_path: Path) -> None:
    # DuckDB 2.0 hides the rows of whole row groups (122,880) written to a table made anew in
    # the same transaction from later scans until a checkpoint: the full build's keying, its
    # counts and the pending rows must see all 130,000 events, and the next build too.
    line = (
        '{{"type":"track","event":"Product Viewed","messageId":"m{n}","anonymousId":"a{n}",'
        '"userId":"u{m}","timestamp":"2026-03-01T10:00:00Z"}}\n'
    )
    first = "".join(line.format(n=n, m=n // 2) for n in range(130_000))
    settings = project(tmp_path, {"web-1.jsonl": first})
    jobs.ingest_sources(settings)
    core = jobs.build_core(settings)
    assert (core.mode, core.events, core.customers, core.pending) == ("full", 130_000, 65_000, {})
    again = jobs.build_core(settings)
    assert (again.mode, again.events, again.events_written, again.pending) == (
        "incremental",
        130_000,
        0,
        {},
    )
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        keys = wh.query(
            "select count(*), count(customer_key), count(distinct customer_key) from core.events"
        ).row(0)
    assert keys == (130_000, 130_000, 65_000)
