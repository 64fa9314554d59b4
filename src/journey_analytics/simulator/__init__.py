"""The omnichannel simulator behind ``journey sample``: source files with their ground truth.

Input: a number of customers, a seed and a :class:`SimulatorConfig`. Output: the files of
``docs/sample-format.md`` (version 2) -- reference files (one row per store / product), weekly
clickstream JSON lines (one row per Segment message), CRM contacts (one row per contact) and
weekly interactions (one row per interaction), weekly POS receipts and receipt lines, and
``truth/`` (one row per customer, identifier, canonical event and journey, plus summary.json).

Customers are generated one at a time from random streams seeded by (seed, customer number)
and their rows appended to the weekly files as they are made, so memory does not grow with the
number of customers. Each customer's events are checked against the contract's pattern and
timing rules before they are written; a broken rule stops the run.

Example::

    summary = generate_sample(Path("data/sample"), customers=500, seed=42)
    summary.noise["duplicate_rows"]
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

# The source files' columns are the ones ingest requires: one definition of each format.
from journey_analytics.ingest import (
    CONTACT_COLUMNS,
    INTERACTION_COLUMNS,
    LINE_COLUMNS,
    RECEIPT_COLUMNS,
)
from journey_analytics.simulator._catalogue import STORES, Product, catalogue
from journey_analytics.simulator._config import SimulatorConfig, load_simulator_config
from journey_analytics.simulator._delivery import Delivery, deliver_customer, money
from journey_analytics.simulator._plan import customer_rng
from journey_analytics.simulator._timeline import (
    DROPOFF_QUIET,
    Event,
    Rosters,
    check_rules,
    customer_events,
    plan_customer,
)

__all__ = [
    "PATTERNS",
    "SampleSummary",
    "SimulatorConfig",
    "generate_sample",
    "load_simulator_config",
]

PATTERNS = ("click_and_collect", "offline_only", "online_only", "ropo", "try_and_buy")
"""Pattern names of ``truth/journeys.csv``, sorted."""

_HEADERS = {
    "stores.csv": ("store_id", "name", "region", "timezone"),
    "products.csv": ("product_id", "name", "category", "price"),
    "crm/contacts.csv": CONTACT_COLUMNS,
    "crm/interactions": INTERACTION_COLUMNS,
    "pos/receipts": RECEIPT_COLUMNS,
    "pos/receipt_lines": LINE_COLUMNS,
    "truth/customers.csv": ("customer_id", "kind"),
    "truth/identifiers.csv": ("customer_id", "identifier_type", "value", "identity_group"),
    "truth/events.csv": (
        "event_id", "customer_id", "journey_id", "identity_group", "status", "occurred_at",
    ),
    "truth/journeys.csv": (
        "journey_id", "customer_id", "kind", "converted", "patterns", "variant",
        "dropoff_touchpoint", "revenue", "conversion_event_id", "n_events",
    ),
}  # fmt: skip
_OWNED_GLOBS = (
    "stores.csv",
    "products.csv",
    "clickstream/web-*.jsonl",
    "clickstream/app-*.jsonl",
    "crm/contacts.csv",
    "crm/interactions*.csv",
    "pos/receipts*.csv",
    "pos/receipt_lines*.csv",
    "truth/*.csv",
    "truth/summary.json",
)


@dataclass(frozen=True)
class SampleSummary:
    """What :func:`generate_sample` wrote.

    Attributes:
        customers: Customers in ``truth/customers.csv``.
        journeys: Journeys in ``truth/journeys.csv``.
        events: Canonical events (rows of ``truth/events.csv``), malformed ones included.
        conversions: Converted journeys.
        patterns: Pattern name -> journeys carrying it (all pattern names present).
        files: Path relative to the output directory -> data rows written (header excluded;
            duplicates and malformed rows included).
        journey_kinds: Journey kind -> journeys.
        customer_kinds: Customer kind -> customers.
        dropoff_touchpoints: Last touchpoint of a dropped journey -> journeys.
        variants: Click-and-collect variant (``collected``/``no_show``) -> journeys.
        touchpoints: Canonical touchpoint -> events.
        noise: Noise counts: ``malformed_events``, ``malformed_rows`` (and per kind),
            ``malformed_contacts``, ``duplicate_rows``, ``late_events``,
            ``out_of_order_receipts``, ``skewed_devices``.
        shared_devices: ``store_tablet_customers``, ``family_laptop_customers``.
        revenue: Revenue of converted journeys, EUR with 2 decimals.
        returned: Amount returned in stores, EUR with 2 decimals (positive).
        data_end: True time of the last event (UTC, ISO).
    """

    customers: int
    journeys: int
    events: int
    conversions: int
    patterns: dict[str, int]
    files: dict[str, int]
    journey_kinds: dict[str, int]
    customer_kinds: dict[str, int]
    dropoff_touchpoints: dict[str, int]
    variants: dict[str, int]
    touchpoints: dict[str, int]
    noise: dict[str, int]
    shared_devices: dict[str, int]
    revenue: str
    returned: str
    data_end: str


class _Files:
    """The open output files: weekly source files are opened on first use, with a header."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.handles: dict[str, TextIO] = {}
        self.rows: dict[str, int] = {}

    def write(self, path: str, lines: list[str]) -> None:
        handle = self.handles.get(path)
        if handle is None:
            handle = self._open(path)
        handle.write("".join(line + "\n" for line in lines))
        self.rows[path] += len(lines)

    def _open(self, path: str) -> TextIO:
        target = self.out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = target.open("w", encoding="utf-8", newline="")
        header = _HEADERS.get(path) or _HEADERS.get(path.rsplit("-", 3)[0])
        if not path.endswith(".jsonl"):
            assert header is not None, path
            handle.write(",".join(header) + "\n")
        self.handles[path] = handle
        self.rows[path] = 0
        return handle

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _remove_owned(out_dir: Path) -> None:
    for pattern in _OWNED_GLOBS:
        for path in sorted(out_dir.glob(pattern)):
            path.unlink()
    for folder in sorted(out_dir.glob(".part-*")):  # left by a run that was killed
        shutil.rmtree(folder)


def _write_reference(files: _Files, products: tuple[Product, ...]) -> None:
    files.write("stores.csv", [f"{s.store_id},{s.name},{s.region},{s.timezone}" for s in STORES])
    files.write(
        "products.csv",
        [f"{p.product_id},{p.name},{p.category},{money(p.price_cents)}" for p in products],
    )


def _write_customer(files: _Files, delivery: Delivery) -> None:
    delivery.rows.sort(key=lambda row: (row.path, row.arrival))
    start = 0
    for index in range(1, len(delivery.rows) + 1):
        if index == len(delivery.rows) or delivery.rows[index].path != delivery.rows[start].path:
            files.write(delivery.rows[start].path, [r.text for r in delivery.rows[start:index]])
            start = index
    if delivery.contact:
        files.write("crm/contacts.csv", delivery.contact)
    files.write("truth/identifiers.csv", [",".join(row) for row in delivery.identifiers])
    files.write("truth/events.csv", [",".join(row) for row in delivery.events])
    files.write("truth/journeys.csv", [",".join(row) for row in delivery.journeys])


class _Tally:
    """Running counts over all customers (a few dozen integers)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.data_end: datetime | None = None
        self.last_dropoff: datetime | None = None

    def add(self, kind: str, delivery: Delivery, events: list[Event], shared: list[str]) -> None:
        c = self.counts
        c["customers"] += 1
        c[f"customer_kind.{kind}"] += 1
        for key, n in delivery.counts.items():
            c[f"noise.{key}"] += n
        for name in shared:
            c[f"shared.{name}"] += 1
        for row in delivery.journeys:
            c["journeys"] += 1
            c[f"journey_kind.{row[2]}"] += 1
            c["conversions"] += row[3] == "true"
            c.update(f"pattern.{p}" for p in row[4].split(";") if p)
            if row[5]:
                c[f"variant.{row[5]}"] += 1
            if row[6]:
                c[f"dropoff.{row[6]}"] += 1
            if row[7]:
                c["revenue_cents"] += round(float(row[7]) * 100)
        for event in events:
            c["events"] += 1
            c[f"touchpoint.{event.touchpoint}"] += 1
            if event.touchpoint == "return":
                c["returned_cents"] += sum(p.price_cents * q for p, q in event.step.lines)
        if events and (self.data_end is None or events[-1].ts > self.data_end):
            self.data_end = events[-1].ts
        dropoff_ends = [e.ts for e in events if not e.journey.converted]
        if dropoff_ends and (self.last_dropoff is None or max(dropoff_ends) > self.last_dropoff):
            self.last_dropoff = max(dropoff_ends)

    @classmethod
    def merged(cls, tallies: list[_Tally]) -> _Tally:
        """One tally of several parts' customers."""
        merged = cls()
        for tally in tallies:
            merged.counts.update(tally.counts)
            merged.data_end = _latest(merged.data_end, tally.data_end)
            merged.last_dropoff = _latest(merged.last_dropoff, tally.last_dropoff)
        return merged

    def group(self, prefix: str, keys: tuple[str, ...] = ()) -> dict[str, int]:
        found = {k.removeprefix(prefix): n for k, n in self.counts.items() if k.startswith(prefix)}
        return {key: found.get(key, 0) for key in sorted({*keys, *found})}


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return a if b is None or (a is not None and a >= b) else b


def _check_data_end(tally: _Tally) -> None:
    if tally.data_end is None:
        msg = "no events were generated; hint: generate more customers"
        raise RuntimeError(msg)
    if tally.last_dropoff is not None and tally.data_end - tally.last_dropoff < DROPOFF_QUIET:
        msg = f"a drop-off ends {tally.last_dropoff}, less than 35 days before the data's end"
        raise RuntimeError(msg)


def _summary(tally: _Tally, rows: dict[str, int]) -> SampleSummary:
    c = tally.counts
    noise = tally.group("noise.")
    noise["malformed_rows"] = sum(n for k, n in noise.items() if k.startswith("malformed_rows."))
    for key in ("malformed_events", "duplicate_rows", "late_events", "out_of_order_receipts"):
        noise.setdefault(key, 0)
    noise.pop("rows", None)
    assert tally.data_end is not None
    return SampleSummary(
        customers=c["customers"],
        journeys=c["journeys"],
        events=c["events"],
        conversions=c["conversions"],
        patterns=tally.group("pattern.", PATTERNS),
        files=dict(sorted(rows.items())),
        journey_kinds=tally.group("journey_kind."),
        customer_kinds=tally.group("customer_kind."),
        dropoff_touchpoints=tally.group("dropoff."),
        variants=tally.group("variant."),
        touchpoints=tally.group("touchpoint."),
        noise=dict(sorted(noise.items())),
        shared_devices=tally.group(
            "shared.", ("family_laptop_customers", "store_tablet_customers")
        ),
        revenue=money(c["revenue_cents"]),
        returned=money(c["returned_cents"]),
        data_end=tally.data_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _write_summary_json(
    out_dir: Path, summary: SampleSummary, config: SimulatorConfig, seed: int
) -> None:
    document = {
        "format_version": 2,
        "arguments": {"customers": summary.customers, "seed": seed},
        "config": config.model_dump(mode="json"),
        "counts": {key: value for key, value in summary.__dict__.items() if key not in ("files",)},
        "rows_written": summary.files,
    }
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    (out_dir / "truth" / "summary.json").write_text(text, encoding="utf-8", newline="")


def generate_sample(
    out_dir: Path,
    *,
    customers: int,
    seed: int,
    config: SimulatorConfig | None = None,
    workers: int = 1,
) -> SampleSummary:
    """Write a deterministic sample data set with its ground truth to ``out_dir``.

    The same arguments always give byte-identical files, whatever the number of ``workers``;
    the files of a previous run (but no other file, e.g. a README) are removed first.
    Customers are generated one at a time and streamed to disk, so memory stays flat however
    many customers are asked for. With ``workers`` > 1, that many processes each generate a
    contiguous range of customers into a folder of their own, and the files are then joined
    in customer order (customers are independent: each has random streams of its own). The
    processes are spawned, so a script that asks for workers calls this under
    ``if __name__ == "__main__":``.

    Args:
        out_dir: Directory to write to; created if missing.
        customers: Number of customers (at least 1).
        seed: Seed of the random streams.
        config: Behaviour, mix and noise; ``None`` reads ``defaults/simulator.toml``.
        workers: Processes to generate in (at least 1).

    Returns:
        Counts of what was written (also in ``truth/summary.json``).

    Raises:
        ValueError: If ``customers`` or ``workers`` is below 1.
        RuntimeError: If the generated events break a rule of the contract (a bug).

    Example::

        summary = generate_sample(tmp, customers=60, seed=1)
        summary.files["truth/customers.csv"]  # 60
    """
    if customers < 1:
        msg = f"need customers >= 1, got {customers=}"
        raise ValueError(msg)
    if workers < 1:
        msg = f"need workers >= 1, got {workers=}"
        raise ValueError(msg)
    config = load_simulator_config() if config is None else config
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_owned(out_dir)
    files = _Files(out_dir)
    try:
        _write_reference(files, catalogue())
    finally:
        files.close()
    # contiguous ranges of customer numbers, in order; never more parts than customers
    bounds = [
        1 + customers * k // min(workers, customers) for k in range(min(workers, customers) + 1)
    ]
    parts = [range(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]
    if len(parts) == 1:
        tally, rows = _generate_part(out_dir, parts[0], seed, customers, config)
    else:
        folders = [out_dir / f".part-{k:03d}" for k in range(len(parts))]
        try:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            with ProcessPoolExecutor(len(parts), mp_context=context) as pool:
                done = list(
                    pool.map(
                        _generate_part,
                        folders,
                        parts,
                        [seed] * len(parts),
                        [customers] * len(parts),
                        [config] * len(parts),
                    )
                )
            _join_parts(folders, out_dir)
            tally = _Tally.merged([part_tally for part_tally, _ in done])
            rows = {}  # summed by hand: adding Counters would drop a file of 0 rows
            for _, part_rows in done:
                for path, count in part_rows.items():
                    rows[path] = rows.get(path, 0) + count
        finally:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
    _check_data_end(tally)
    summary = _summary(tally, {**files.rows, **rows})
    _write_summary_json(out_dir, summary, config, seed)
    return summary


def _generate_part(
    out_dir: Path, numbers: range, seed: int, customers: int, config: SimulatorConfig
) -> tuple[_Tally, dict[str, int]]:
    """Generates customers ``numbers`` (of ``customers``) into ``out_dir``'s source and truth
    files; returns their tally and the data rows written per file."""
    by_category: dict[str, tuple[Product, ...]] = {}
    for product in catalogue():
        by_category[product.category] = (*by_category.get(product.category, ()), product)
    files = _Files(out_dir)
    tally = _Tally()
    rosters = Rosters(seed, customers, config)
    try:
        for name in ("crm/contacts.csv", "truth/customers.csv", "truth/identifiers.csv"):
            files.write(name, [])
        files.write("truth/events.csv", [])
        files.write("truth/journeys.csv", [])
        for number in numbers:
            _generate_customer(
                files,
                tally,
                seed=seed,
                number=number,
                customers=customers,
                config=config,
                products=by_category,
                rosters=rosters,
            )
    finally:
        files.close()
    return tally, files.rows


def _join_parts(folders: list[Path], out_dir: Path) -> None:
    """Appends the parts' files, in part order, to ``out_dir``: each file's header once (from
    the first part that has the file), so the files are those one process would write."""
    paths = {p.relative_to(f).as_posix() for f in folders for p in f.rglob("*") if p.is_file()}
    for path in sorted(paths):
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        headed = False
        with target.open("wb") as out:
            for folder in folders:
                if not (folder / path).exists():
                    continue
                with (folder / path).open("rb") as part:
                    if not path.endswith(".jsonl"):
                        header = part.readline()
                        if not headed:
                            out.write(header)
                            headed = True
                    shutil.copyfileobj(part, out, 1 << 20)


def _generate_customer(
    files: _Files,
    tally: _Tally,
    *,
    seed: int,
    number: int,
    customers: int,
    config: SimulatorConfig,
    products: dict[str, tuple[Product, ...]],
    rosters: Rosters,
) -> None:
    customer, journeys, rng = plan_customer(
        seed, number, customers=customers, config=config, products=products, rosters=rosters
    )
    events = customer_events(customer, journeys, rng, config)
    problems = check_rules(customer, journeys, events)
    if problems:
        msg = "generated sample breaks the contract:\n" + "\n".join(problems[:20])
        raise RuntimeError(msg)
    delivery = deliver_customer(
        customer,
        journeys,
        events,
        config=config,
        noise_rng=customer_rng(seed, number, "noise"),
        delivery_rng=customer_rng(seed, number, "delivery"),
    )
    files.write("truth/customers.csv", [f"{customer.customer_id},{customer.kind}"])
    _write_customer(files, delivery)
    shared = []
    if customer.tablet is not None:
        shared.append("store_tablet_customers")
    if customer.laptop is not None:
        shared.append("family_laptop_customers")
    skewed = sum(1 for d in customer.devices if d.skew_ms and d.shared != "laptop")
    delivery.counts["skewed_devices"] += skewed
    tally.add(customer.kind, delivery, events, shared)
