"""Erasure (``journey forget``): no trace of the person anywhere, everyone else unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from journey_analytics import jobs
from journey_analytics.cli import app
from journey_analytics.config import load_settings
from journey_analytics.errors import NotFoundError
from journey_analytics.warehouse import Warehouse

from ._project import REPO, run_all, sample_config

pytestmark = pytest.mark.slow

# A sample customer with a web account, a loyalty card, receipts paid by card, a CRM contact
# and one line the ingest rejected (its bad timestamp is in the quarantine with their ids).
LOYALTY_ID = "L000000445"
_PER_PERSON = {
    "journeys.journeys": "customer_key",
    "journeys.steps": "customer_key",
    "journeys.sessions": "customer_key",
}


def _snapshot(database: Path) -> dict[str, pl.DataFrame]:
    with Warehouse.open(database, read_only=True) as wh:
        return {
            "journeys.journeys": wh.read("journeys.journeys").sort("journey_id"),
            "journeys.steps": wh.read("journeys.steps").sort("event_id"),
            "journeys.sessions": wh.read("journeys.sessions").sort("session_id"),
            "marts.patterns": wh.read("marts.patterns").sort("journey_id", "pattern"),
        }


def _traces(database: Path, needles: list[str]) -> dict[str, int]:
    """Rows of every table, any column as text, that contain one of the needles."""
    found = {}
    with (
        Warehouse.open(database, read_only=True) as wh,
        wh.registered(_needles=pl.DataFrame({"needle": needles})),
    ):
        for schema in ("raw", "quarantine", "core", "journeys", "marts", "ops"):
            for table, columns in wh.tables(schema).items():
                text = " || ' ' || ".join(f"coalesce(cast({c} as varchar), '')" for c in columns)
                hits = wh.query(
                    f"select count(*) from {table} "
                    f"where exists (select 1 from _needles where contains({text}, needle))"
                ).item()
                if hits:
                    found[table] = hits
    return found


def test_forget_leaves_no_trace_and_other_customers_unchanged(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    shutil.copytree(REPO / "data" / "sample", sample)
    settings = load_settings(sample_config(sample, tmp_path))
    run_all(settings)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        key = wh.query(
            "select customer_key from core.customers where identifier_value = $v",
            {"v": LOYALTY_ID},
        ).item()
        ids = wh.query(
            "select identifier_value from core.customers where customer_key = $k", {"k": key}
        ).get_column("identifier_value")
        event_ids = wh.query(
            "select event_id from core.events where customer_key = $k", {"k": key}
        ).get_column("event_id")
        journeys_before = wh.query("select sum(journeys) from marts.paths").item()
    person_journeys = _snapshot(settings.database_path)["journeys.journeys"].filter(
        pl.col("customer_key") == key
    )
    needles = [key, *ids, *event_ids]
    assert len(_traces(settings.database_path, needles)) >= 8  # raw, core, journeys, ...
    before = _snapshot(settings.database_path)

    report = jobs.forget(settings, by="loyalty_id", value=LOYALTY_ID)

    assert (report.identifiers, report.events) == (ids.len(), event_ids.len())
    assert report.rows_deleted["quarantine.rejects"] == 1
    assert report.rows_deleted["raw.pos_receipts"] >= 1
    assert report.rows_deleted["raw.pos_lines"] >= 1
    assert _traces(settings.database_path, needles) == {}
    after = _snapshot(settings.database_path)
    for table, frame in before.items():
        if table in _PER_PERSON:
            others = frame.filter(pl.col("customer_key") != key)
        else:  # marts.patterns: by journey
            others = frame.join(person_journeys.select("journey_id"), on="journey_id", how="anti")
        assert_frame_equal(after[table], others)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        # the marts were recomputed without the person's journeys
        assert (
            wh.query("select sum(journeys) from marts.paths").item()
            == journeys_before - person_journeys.height
        )
        erasure = wh.read("ops.erasures")
    assert erasure.select("requested_by", "identifiers", "events").rows() == [
        ("loyalty_id", ids.len(), event_ids.len())
    ]
    assert json.loads(erasure.item(0, "tables")) == report.rows_deleted

    # The next morning's run loads nothing new and brings no one back. Its core build is
    # full: after the erasure, the stored links no longer hold every raw row's evidence.
    assert run_all(settings)[0].mode == "full"
    # ... and stitches from scratch: the person's links left the stored graph and the
    # evidence alike, so an update on the stored graph would not see what they held together
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        stitches = wh.query(
            "select mode, guards_fingerprint = '' from ops.identity_runs order by run_at"
        ).rows()
    assert stitches == [("full", False), ("erasure", True), ("full", False)]
    assert _traces(settings.database_path, needles) == {}
    assert_frame_equal(
        _snapshot(settings.database_path)["journeys.journeys"], after["journeys.journeys"]
    )

    # The CRM's next full export still has the person (the erasure has not reached it) and
    # one new contact: the person's row is rejected as erased, without its text.
    contacts = sample / "crm" / "contacts.csv"
    lines = contacts.read_text().splitlines(keepends=True)
    theirs = [line for line in lines if f",{LOYALTY_ID}," in line]
    assert len(theirs) == 1
    new = "C-9999999,new.customer@example.org,,L999999999,,true,2026-06-30T10:00:00Z\n"
    contacts.write_text("".join(lines) + new)
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        bad = wh.query(
            "select rows_rejected from ops.batches where file like '%contacts.csv'"
        ).item()
    reports = jobs.ingest_sources(settings)
    (export,) = [r for r in reports if r.file.endswith("contacts.csv")]
    # lines less the header: the bad rows rejected again, the person's, the new one; the rest
    # were loaded before
    assert (export.rows_read, export.rows_loaded, export.rows_erased, export.rows_rejected) == (
        len(lines),
        1,
        1,
        bad + 1,
    )
    assert export.rows_duplicate == len(lines) - bad - 2
    assert jobs.build_core(settings).mode == "incremental"
    assert _traces(settings.database_path, needles) == {}
    with Warehouse.open(settings.database_path, read_only=True) as wh:
        rejected = wh.query(
            "select reason, raw_text from quarantine.rejects where reason = 'erased'"
        )
    assert rejected.rows() == [("erased", None)]

    with pytest.raises(NotFoundError, match="nothing was erased"):
        jobs.forget(settings, by="loyalty_id", value=LOYALTY_ID)


def test_forget_from_the_command_line(tmp_path: Path) -> None:
    config = sample_config(REPO / "data" / "sample", tmp_path)
    run_all(load_settings(config))
    contact = (REPO / "data" / "sample" / "crm" / "contacts.csv").read_text().splitlines()[1]
    email = contact.split(",")[1]
    runner = CliRunner()
    # Matched after normalising: case and spaces do not matter.
    result = runner.invoke(app, ["forget", "--email", f" {email.upper()} ", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "erased one customer" in result.output
    again = runner.invoke(app, ["forget", "--email", email, "-c", str(config)])
    assert again.exit_code == 5
    both = runner.invoke(app, ["forget", "--email", email, "--phone", "1", "-c", str(config)])
    assert both.exit_code == 2
    assert "expected exactly one of" in both.output
