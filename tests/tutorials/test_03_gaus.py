"""Runs tutorials/03_gaus.py at small size in a subprocess."""

from __future__ import annotations

import pytest


@pytest.mark.tutorial
def test_03_gaus_runs_at_small_size(run_tutorial):
    out_text = run_tutorial("03_gaus.py", timeout=120)
    for needle in ("makespan: gaus", "peak memory: gaus", "stage cost, gumbel", "pipeline at II=",
                   "below the resource bound"):
        assert needle in out_text
