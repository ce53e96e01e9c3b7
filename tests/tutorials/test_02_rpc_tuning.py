"""Runs tutorials/02_rpc_tuning.py at small size in a subprocess."""

from __future__ import annotations

import os
import re

import pytest


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.tutorial
@pytest.mark.integration
@pytest.mark.rpc
@pytest.mark.slow
def test_02_rpc_tuning_runs_at_small_size(run_tutorial):
    text = run_tutorial("02_rpc_tuning.py", timeout=600, OMP_NUM_THREADS="1",
                        TVM_NUM_THREADS="1")

    # both servers registered with the tracker before tuning
    assert "tracker: 2 free 'cpu' servers" in text, text

    # the first run spread its measurements over both devices
    m = re.search(r"measured (\d+) candidates on (\d+) devices:", text)
    assert m, text
    measured, devices = int(m.group(1)), int(m.group(2))
    assert devices == 2 and measured >= 2
    shares = {d: int(n) for d, n in re.findall(r"^  (cpu#\d+): (\d+) candidates", text, re.M)}
    assert len(shares) == 2 and all(n > 0 for n in shares.values()), shares
    assert sum(shares.values()) == measured

    # the re-run resumed from the database: nothing measured, everything read back
    m = re.search(r"resume: (\d+) measured now, (\d+) read from the database; same pick: (\w+)",
                  text)
    assert m, text
    assert int(m.group(1)) == 0 and int(m.group(2)) == measured and m.group(3) == "True"

    # the memory run picked no more planned bytes than TVM's order
    m = re.search(r"memory pick: .*, planned ([\d,]+) B against TVM's order ([\d,]+) B", text)
    assert m, text
    picked, tvm_planned = (int(g.replace(",", "")) for g in m.groups())
    assert picked <= tvm_planned

    # the exported best module computes what TVM's order computes
    assert re.search(r"best module outputs match TVM's order: \d+ output\(s\), max abs diff",
                     text), text
    assert "report: " in text and "report.md" in text

    # the finally block ended both servers
    assert "stopped 2 servers and the tracker" in text
    pids = re.search(r"server pids: (\d+), (\d+)", text)
    assert pids, text
    assert all(_gone(int(p)) for p in pids.groups())
