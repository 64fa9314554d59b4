"""journey-analytics: cross-channel customer journeys from clickstream, CRM and POS events."""

from __future__ import annotations

__version__ = "0.1.0"
