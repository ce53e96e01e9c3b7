"""Shared test configuration: hypothesis profiles; Ctrl-C as Python's KeyboardInterrupt.

``default`` (used unless ``HYPOTHESIS_PROFILE`` names another): no deadline (CI machines stall),
modest example counts. ``ci``: the same, derandomized so that a CI run is reproducible.
Tests that need a different count say so with their own ``@settings``.

A suite started as a background job of a non-interactive shell (``make test &``) inherits
SIGINT ignored, and so would every child it starts: the Ctrl-C tests would see nothing. The
session restores Python's handler (children then get the default action and install their own).
"""

import os
import signal

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

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
