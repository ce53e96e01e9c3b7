"""Shared test configuration: hypothesis profiles.

``default`` (used unless ``HYPOTHESIS_PROFILE`` names another): no deadline (CI machines stall),
modest example counts. ``ci``: the same, derandomized so that a CI run is reproducible.
Tests that need a different count say so with their own ``@settings``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=40,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
