"""Runs tutorials/04_gflownet.py at small size in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[2] / "tutorials" / "04_gflownet.py"


@pytest.mark.tutorial
def test_04_gflownet_runs_at_small_size():
    env = dict(os.environ, TVM_SCHED_TUTORIAL_SMALL="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(TUTORIAL)], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    for needle in ("trained 6 iterations", "tiny model: best makespan", "pretrained gflownet",
                   "latency-limited target", "peak memory: gflownet"):
        assert needle in out.stdout
