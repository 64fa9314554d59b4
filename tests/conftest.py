"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil

import pytest

# ── chromium: headless browser for tests/test_dashboard_browser.py ──────────────────────────


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's ``chromium``; skipped where it is missing, except on CI.

    CI always installs chromium, so there a missing browser fails the run instead of hiding
    the browser tests behind a skip. ``CI`` counts as set when it is non-empty.
    """
    path = shutil.which("chromium")
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail(
            "chromium is not on PATH but CI is set: CI must install Debian chromium "
            "(apt-get install chromium) so the browser tests run"
        )
    pytest.skip("Debian chromium not installed (apt-get install chromium); CI runs this test")


# ── end chromium ────────────────────────────────────────────────────────────────────────────
