"""Runs tutorials/04_gflownet.py at small size in a subprocess."""

from __future__ import annotations

import pytest


@pytest.mark.tutorial
def test_04_gflownet_runs_at_small_size(run_tutorial):
    out_text = run_tutorial("04_gflownet.py", timeout=120, OMP_NUM_THREADS="1")
    for needle in ("trained 6 iterations", "tiny model: best makespan", "pretrained gflownet",
                   "latency-limited target", "peak memory: gflownet"):
        assert needle in out_text
