"""``journey sample``: the simulator's public entry points (see :mod:`journey_analytics.simulator`).

Example:
    >>> from journey_analytics.sample import generate_sample, load_simulator_config
    >>> config = load_simulator_config()
    >>> config.period.days
    180
"""

from __future__ import annotations

from journey_analytics.simulator import (
    PATTERNS,
    SampleSummary,
    SimulatorConfig,
    generate_sample,
    load_simulator_config,
)

__all__ = [
    "PATTERNS",
    "SampleSummary",
    "SimulatorConfig",
    "generate_sample",
    "load_simulator_config",
]
