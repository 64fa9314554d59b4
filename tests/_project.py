"""A tiny project on disk: config, stores and source files, for tests that run the jobs."""

from __future__ import annotations

from pathlib import Path

from journey_analytics import jobs
from journey_analytics.config import Settings, load_settings

CONTACTS = "contact_id,email,phone,loyalty_id,user_id,consent_email,created_at\n"
INTERACTIONS = (
    "interaction_id,occurred_at,type,channel,email,phone,loyalty_id,store_id,product_id,"
    "category,campaign\n"
)
RECEIPTS = "receipt_id,store_id,receipt_ts,loyalty_id,payment_token,currency,total\n"
LINES = "receipt_id,line_no,sku,category,quantity,amount,line_type,order_id\n"


def project(
    tmp_path: Path, files: dict[str, str], *, key: str = "k", extra_toml: str = ""
) -> Settings:
    """Writes the files (defaults: one store, empty sources) and a config that reads
    ``web*.jsonl``, ``contacts.csv``, ``interactions*.csv``, ``receipts*.csv``, ``lines*.csv``."""
    defaults = {
        "stores.csv": "store_id,name,region,timezone\nS01,Milano,Italy,Europe/Rome\n",
        "web.jsonl": "",
        "contacts.csv": CONTACTS,
        "interactions.csv": INTERACTIONS,
        "receipts.csv": RECEIPTS,
        "lines.csv": LINES,
    }
    stems = {name.split(".")[0].split("-")[0] for name in files}
    kept = {name: text for name, text in defaults.items() if name.split(".")[0] not in stems}
    for name, text in {**kept, **files}.items():
        (tmp_path / name).write_text(text)
    config = tmp_path / "journey.toml"
    config.write_text(
        'stores = "stores.csv"\n'
        '[sources.web]\nkind = "segment"\npath = "web*.jsonl"\nchannel = "web"\n'
        '[sources.crm]\nkind = "crm"\ncontacts = "contacts.csv"\n'
        'interactions = "interactions*.csv"\n'
        '[sources.pos]\nkind = "pos"\nreceipts = "receipts*.csv"\nlines = "lines*.csv"\n'
        f'[privacy]\nhash_key = "{key}"\n' + extra_toml
    )
    return load_settings(config)


def run_all(settings: Settings) -> tuple[jobs.CoreReport, jobs.JourneyReport, dict[str, int]]:
    jobs.ingest_sources(settings)
    return jobs.build_core(settings), jobs.build_journeys(settings), jobs.build_marts(settings)


REPO = Path(__file__).resolve().parents[1]


def sample_config(sample: Path, out: Path) -> Path:
    """The repository's journey.toml pointed at another sample folder, writing into ``out``."""
    text = (REPO / "journey.toml").read_text()
    text = text.replace('"data/sample/', f'"{sample.as_posix()}/')
    text = text.replace('database = "journeys.duckdb"', f'database = "{out}/journeys.duckdb"')
    text = text.replace('reports_dir = "reports"', f'reports_dir = "{out}/reports"')
    out.mkdir(parents=True, exist_ok=True)
    path = out / "journey.toml"
    path.write_text(text)
    return path
