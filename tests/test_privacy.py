from __future__ import annotations

import hashlib
import hmac

import polars as pl
import pytest

from journey_analytics import privacy
from journey_analytics.privacy import keyed_hash, normalise_email, normalise_phone, redact


def test_keyed_hash_is_hmac_sha256_rfc4231_case_2() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    hashed = keyed_hash(pl.Series(["what do ya want for nothing?", None]), key="Jefe")
    assert hashed.to_list() == [
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        None,
    ]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "k",
        "x" * 64,  # exactly one block: used as it is
        "y" * 65,  # longer than a block: hashed first (RFC 2104)
        "clé-ünïcode-🔑" * 9,
    ],
)
@pytest.mark.parametrize("many", [False, True])
def test_keyed_hash_is_hmac_of_the_standard_library(key: str, *, many: bool) -> None:
    # a few distinct values are hashed in Python, many by DuckDB: both are HMAC
    values = ["", "anna@example.com", "+393331234567", "ünïcode ✓", "a" * 200, None, "", "ñ"]
    if many:
        values += [f"user{n}@example.com" for n in range(privacy._FEW)]
    expected = [
        None if v is None else hmac.new(key.encode(), v.encode(), hashlib.sha256).hexdigest()
        for v in values
    ]
    assert keyed_hash(pl.Series("email", values), key=key).to_list() == expected


def test_normalise_email_and_phone() -> None:
    frame = pl.DataFrame(
        {
            "email": [" Anna.Rossi@Example.COM ", "", None],
            "phone": ["+39 333-123 4567", "0039 (333) 1234567", " "],
        }
    )
    out = frame.select(normalise_email(pl.col("email")), normalise_phone(pl.col("phone")))
    assert out.to_dict(as_series=False) == {
        "email": ["anna.rossi@example.com", None, None],
        "phone": ["+393331234567", "+393331234567", None],
    }


def test_redact_masks_emails_and_phones() -> None:
    text = '{"email": "anna@example.com", "phone": "+39 333 123 4567", "sku": "P012"}'
    assert redact(text) == '{"email": "<email>", "phone": "<phone>", "sku": "P012"}'
