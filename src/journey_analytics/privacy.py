"""Normalising and keyed hashing of personal identifiers; redaction of raw text.

E-mail, phone and card numbers never reach a table: ingest replaces them with
HMAC-SHA256 hashes under a key the operator controls. Hashing is done once per
distinct value, so its cost follows the number of people, not of events.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import polars as pl

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(r"\+?\d[\d\s\-().]{6,}\d")


def normalise_email(column: pl.Expr) -> pl.Expr:
    """Lower-cases and trims an e-mail column; empty strings become null."""
    cleaned = column.str.strip_chars().str.to_lowercase()
    return pl.when(cleaned.str.len_chars() > 0).then(cleaned).otherwise(None)


def normalise_phone(column: pl.Expr) -> pl.Expr:
    """Keeps a leading ``+`` and the digits of a phone number; empty becomes null.

    ``"+39 333-123 4567"`` and ``"+393331234567"`` normalise to the same value.
    A leading ``00`` international prefix is rewritten as ``+``.
    """
    digits = column.str.strip_chars().str.replace_all(r"[^\d+]", "")
    plus = digits.str.replace(r"^00", "+")
    return pl.when(plus.str.len_chars() > 0).then(plus).otherwise(None)


def keyed_hash(values: pl.Series, *, key: str) -> pl.Series:
    """HMAC-SHA256 (hex) of each non-null value, computed once per distinct value.

    Example:
        >>> keyed_hash(pl.Series(["a", None]), key="k").to_list()[1] is None
        True
    """
    distinct = values.drop_nulls().unique()
    key_bytes = key.encode()
    mapping = {
        value: hmac.new(key_bytes, value.encode(), hashlib.sha256).hexdigest()
        for value in distinct.to_list()
    }
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)


def redact(text: str) -> str:
    """Masks anything that looks like an e-mail address or a phone number."""
    return _PHONE_RE.sub("<phone>", _EMAIL_RE.sub("<email>", text))
