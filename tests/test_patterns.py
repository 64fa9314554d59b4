from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from journey_analytics.errors import ConfigError
from journey_analytics.journeys import assign_journeys
from journey_analytics.patterns import detect_patterns, load_rules

from ._events import events, scenario


def test_default_rules_find_each_pattern_with_its_evidence() -> None:
    steps = assign_journeys(scenario(), timeout=timedelta(days=30))
    hits = detect_patterns(steps, load_rules())
    assert hits.select("journey_id", "pattern", "variant", "evidence_event_ids").rows() == [
        ("j:app:50", "click_and_collect", "no_show", ["app:50"]),
        # a no-show order is online but not online-only: it was meant for a store
        ("j:crm:1", "try_and_buy", None, ["crm:1", "web:20"]),
        ("j:crm:30", "online_only", None, ["crm:30", "web:31"]),
        ("j:crm:40", "offline_only", None, ["crm:40", "pos:R9:sale"]),
        ("j:web:1", "click_and_collect", "collected", ["web:3", "pos:R1:pickup"]),
        # both bag views are evidence; the sign-in between them is not
        ("j:web:4", "ropo", None, ["web:4", "web:6", "pos:R2:sale"]),
    ]
    assert hits.filter(journey_id="j:web:4").get_column("revenue").item() == Decimal("80.00")


def test_category_must_match_and_window_must_hold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\nname = "ropo_same_product"\nkind = "sequence"\n'
        'first = { touchpoints = ["product_view"], channels = ["web"] }\n'
        'then = { touchpoints = ["store_purchase"] }\nwindow_days = 1\nmatch = "category"\n'
    )
    steps = assign_journeys(scenario(), timeout=timedelta(days=30))
    # the bag views are 2 days and 6 hours before the sale: outside a 1-day window
    assert detect_patterns(steps, load_rules(rules)).height == 0


def test_bad_rules_file_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"rules\.0\.sequence\.window_days"):
        load_rules_from_text(
            '[[rules]]\nname = "x"\nkind = "sequence"\nfirst = {}\n'
            'then = {}\nwindow_days = "soon"\n'
        )


def load_rules_from_text(text: str):  # type: ignore[no-untyped-def]
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.toml"
        path.write_text(text)
        return load_rules(path)


@pytest.mark.parametrize(
    ("match", "evidence"),
    [
        # same product: only the view of the bag that was bought
        ("product", ["web:2", "pos:1"]),
        # same category: both bag views, not the shoe view
        ("category", ["web:1", "web:2", "pos:1"]),
        # any: every view before the sale
        ("any", ["web:0", "web:1", "web:2", "pos:1"]),
    ],
)
def test_match_levels_product_category_any(tmp_path: Path, match: str, evidence: list[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\nname = "ropo"\nkind = "sequence"\n'
        'first = { touchpoints = ["product_view"], channels = ["web"] }\n'
        'then = { touchpoints = ["store_purchase"], channels = ["store"] }\n'
        f'window_days = 30\nmatch = "{match}"\n'
    )

    def view(event_id: str, minute: int, product: str, category: str) -> dict[str, object]:
        return {
            "event_id": event_id,
            "customer_key": "c",
            "occurred_at": f"2026-03-01 09:{minute:02d}",
            "touchpoint": "product_view",
            "product_id": product,
            "category": category,
        }

    sale = {
        "event_id": "pos:1",
        "customer_key": "c",
        "occurred_at": "2026-03-03 12:00",
        "channel": "store",
        "touchpoint": "store_purchase",
        "is_conversion": True,
        "product_id": "B2",
        "category": "bags",
    }
    frame = events(
        view("web:0", 0, "S1", "shoes"),
        view("web:1", 5, "B1", "bags"),
        view("web:2", 10, "B2", "bags"),
        sale,
    )
    steps = assign_journeys(frame, timeout=timedelta(days=30))
    hits = detect_patterns(steps, load_rules(rules))
    assert hits.select("pattern", "evidence_event_ids").rows() == [("ropo", evidence)]
