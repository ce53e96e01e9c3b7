"""Shared by the tutorial tests: run a tutorial script at small size in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


@pytest.fixture
def run_tutorial():
    """``run_tutorial(file, timeout, **env) -> stdout``; fails the test on a non-zero exit,
    showing the end of stderr."""

    def run(file: str, timeout: float, **env: str) -> str:
        full = dict(os.environ, TVM_SCHED_TUTORIAL_SMALL="1", **env)
        out = subprocess.run([sys.executable, str(TUTORIALS / file)], env=full,
                             capture_output=True, text=True, timeout=timeout, check=False)
        assert out.returncode == 0, out.stderr[-4000:]
        return out.stdout

    return run
