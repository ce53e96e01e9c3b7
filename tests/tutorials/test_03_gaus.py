"""Runs tutorials/03_gaus.py at small size in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[2] / "tutorials" / "03_gaus.py"


@pytest.mark.tutorial
def test_03_gaus_runs_at_small_size():
    env = dict(os.environ, TVM_SCHED_TUTORIAL_SMALL="1")
    out = subprocess.run([sys.executable, str(TUTORIAL)], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    for needle in ("makespan: gaus", "peak memory: gaus", "stage cost, gumbel", "pipeline at II=",
                   "below the resource bound"):
        assert needle in out.stdout
