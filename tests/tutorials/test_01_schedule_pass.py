"""Runs tutorials/01_schedule_pass.py at small size in a subprocess."""

from __future__ import annotations

import re

import pytest


@pytest.mark.tutorial
@pytest.mark.integration
@pytest.mark.slow
def test_01_schedule_pass_runs_at_small_size(run_tutorial):
    text = run_tutorial("01_schedule_pass.py", timeout=300)
    for needle in ("operator graph main/block0:", "planned bytes, gaus and lpmf on liveness:",
                   "outputs match: original, scheduled and 'tvm_sched' pipeline agree",
                   "zoo inception: planned bytes"):
        assert needle in text
    before = re.search(r"planned bytes, the module's own order: ([\d,]+)", text)
    after = re.search(r"planned bytes, scheduled order: +([\d,]+)", text)
    assert before and after, text
    before, after = (int(m.group(1).replace(",", "")) for m in (before, after))
    assert 0 < after < before  # positive saving at the small size (deterministic)
    assert f"saved {before - after:,} bytes" in text
