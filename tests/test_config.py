from __future__ import annotations

from pathlib import Path

import pytest

from journey_analytics.config import load_settings
from journey_analytics.errors import ConfigError
from journey_analytics.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]


def test_the_sample_config_loads_with_paths_relative_to_it() -> None:
    settings = load_settings(REPO / "journey.toml")
    assert sorted(settings.sources) == ["app", "crm", "pos", "web"]
    assert settings.resolve(settings.stores) == REPO / "data" / "sample" / "stores.csv"
    assert settings.journeys.timeout_days == 30
    assert settings.sessions.timeout_minutes["phone"] == 0


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'stores = "stores.csv"\n'
        '[sources.web]\nkind = "segment"\npath = "x.jsonl"\n'  # channel missing
        '[sources.shop]\nkind = "ftp"\n'  # unknown kind
        '[journeys]\ntimeout_days = "a month"\n'  # wrong type
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not valid:")
    assert "sources.web.segment.channel: Field required" in message
    assert "sources.shop: Input tag 'ftp' found using 'kind' does not match" in message
    assert "journeys.timeout_days: Input should be a valid number" in message
    assert "(found 'a month')" in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("stores = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_settings(broken)


def test_hash_key_from_environment_wins_and_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journey.toml"
    path.write_text(
        'stores = "s.csv"\n[sources.web]\nkind = "segment"\npath = "*.jsonl"\nchannel = "web"\n'
    )
    monkeypatch.delenv("JOURNEY_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="JOURNEY_HASH_KEY"):
        load_settings(path).hash_key()
    monkeypatch.setenv("JOURNEY_HASH_KEY", "from-env")
    assert load_settings(path).hash_key() == "from-env"


def test_taxonomy_problems_are_collected_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.csv"
    path.write_text(
        "source_kind,event_name,touchpoint,channel,stage,is_managed,is_conversion\n"
        "segment,Product Viewed,product_view,,interest,true,false\n"
        "segment,Product Viewed,product_view,,intrest,true,false\n"
        "crm,call,,phone,consideration,true,false\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_taxonomy(path)
    assert str(raised.value).splitlines() == [
        f"{path} is not a valid taxonomy file:",
        "  - line 3: stage 'intrest' is not one of awareness, interest, consideration, "
        "purchase, usage, loyalty",
        "  - line 4: touchpoint is empty",
        "  - ('segment', 'Product Viewed') is mapped more than once",
    ]


def test_an_unknown_segment_dimension_is_named_with_the_ones_there_are(tmp_path: Path) -> None:
    path = tmp_path / "segments.toml"
    path.write_text(
        'stores = "stores.csv"\n'
        '[sources.web]\nkind = "segment"\npath = "x.jsonl"\nchannel = "web"\n'
        '[graphs]\nsegments = ["store", "country"]\nperiod = "year"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert (
        "graphs.segments.1: Input should be 'status', 'first_channel', 'store', 'region', "
        "'cohort' or 'period' (found 'country')"
    ) in message
    assert "graphs.period: Input should be 'month', 'week' or 'day' (found 'year')" in message


def test_scale_and_schedule_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(
        'stores = "stores.csv"\n[sources.web]\nkind = "segment"\npath = "w.jsonl"\n'
        'channel = "web"\n[scale]\nexecutor = "spark"\nmemory_limit = "lots"\n'
        '[schedule]\ntimezone = "Europe/Atlantis"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    problems = str(raised.value).splitlines()[1:]
    assert [line.split(":")[0].strip(" -") for line in problems] == [
        "schedule",
        "scale.executor",
        "scale.memory_limit",
    ]
    assert "expected an IANA zone such as Europe/Rome, found 'Europe/Atlantis'" in problems[0]
    assert "(found 'lots')" in problems[2]
