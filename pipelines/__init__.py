"""Prefect flows: thin wiring of the ``journey_analytics.jobs`` functions."""
