"""The tensor solvers on CUDA (marker ``gpu``; skipped where torch sees no GPU).

GauS and the GFlowNet sampler take a ``device``; on a GPU they must return schedules that are
valid, re-checked by the exact evaluator, reported as run on CUDA, and reproducible by seed --
the same contract as on the CPU (tests/solvers), only on another device.
"""

from __future__ import annotations

import pytest
import torch

from tvm_sched.cost import Makespan, PeakMemory
from tvm_sched.solvers import get_solver
from tvm_sched.testing.dags import random_dag

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

GAUS = dict(restarts=6, steps=40, rounds=2)


@pytest.mark.parametrize("objective", [Makespan(lanes=3), PeakMemory()],
                         ids=["makespan", "peak_memory"])
def test_gaus_on_cuda_is_valid_exact_and_reproducible(objective):
    g = random_dag(30, 0.15, seed=3)
    res = get_solver("gaus", **GAUS).solve(g, objective, seed=1, device="cuda")
    assert res.info["device"].startswith("cuda")
    res.best.validate(g)
    assert res.value == objective.evaluate(g, res.best)
    assert res.value >= objective.lower_bound(g) * (1 - 1e-9)  # sums in another order
    again = get_solver("gaus", **GAUS).solve(g, objective, seed=1, device="cuda")
    assert again.best.order == res.best.order


def test_gaus_auto_device_picks_cuda():
    g = random_dag(12, 0.2, seed=0)
    res = get_solver("gaus", **GAUS).solve(g, Makespan(lanes=2), device="auto")
    assert res.info["device"].startswith("cuda")


def test_gflownet_on_cuda_is_valid_and_exact():
    g = random_dag(25, 0.15, seed=5)
    obj = Makespan(lanes=4)
    res = get_solver("gflownet").solve(g, obj, budget=5.0, seed=0, device="cuda")
    assert res.info["device"].startswith("cuda")
    res.best.validate(g)
    assert res.value == obj.evaluate(g, res.best)
    assert res.value >= obj.lower_bound(g) * (1 - 1e-9)
